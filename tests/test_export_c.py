"""C export: float files reproduce the float64 references for every variant, the int8-weight and
full-integer files stay within their stated bounds, everything builds warning-free under -Werror
with gcc and clang, the metadata reads back without a compiler, and the example program streams
the shipped model like the runtime does."""
import ctypes
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from helpers import c_runner, environ, make_checkpoint, reference_outputs, run_without_torch, seeded
from slimedge import checkpoint, integrity, ir, variants
from slimedge.errors import CompilerNotFound
from slimedge.exporters import c as cx
from slimedge.exporters import validate
from slimedge.exporters.c import emit_int8w, fixedpoint, fusion, source
from slimedge.formats.c import reader as c_reader
from slimedge.formats.c import toolchain

ALL = list(variants.VARIANTS)
M, N, T = 5, 8, 100
CONFIGS = {"1-layer": (1, None, False), "2-layer+head+norm": (2, 3, True)}
WERROR = ["-std=c99", "-Wall", "-Wextra", "-pedantic", "-Werror"]
# gcc always; clang where installed (CI installs it: test_clang_is_installed_under_ci)
COMPILERS = [cc for cc in ("gcc", "clang") if shutil.which(cc)]
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "c"


# every library the tests build uses the runtime's flags plus -Werror: each export compiled here
# is also a warning-free build with the host compiler (test_exports_build_without_warnings adds
# -O2, and clang)
SESSION_CFLAGS = " ".join([*toolchain.DEFAULT_CFLAGS, *WERROR])


@pytest.fixture(scope="session", autouse=True)
def c_cache(tmp_path_factory):
    """One library cache for the session (each export is compiled once), -Werror builds."""
    env = {toolchain.ENV_CACHE: str(tmp_path_factory.getbasetemp() / "slimedge-cache"),
           toolchain.ENV_CFLAGS: SESSION_CFLAGS}
    with environ(env):
        yield


class Exports:
    """Checkpoints and their C exports, made once per session."""

    def __init__(self, root: Path) -> None:
        self.root, self.cache = root, {}

    def get(self, variant, config, gate="sigmoid", quantize="none"):
        key = (variant, config, gate, quantize)
        if key not in self.cache:
            layers, classes, norm = CONFIGS[config]
            d = self.root / f"{variant}-{config}-{gate}"
            d.mkdir(exist_ok=True)
            ckpt, w, extra = make_checkpoint(d / "m.safetensors", variant, M, N, layers,
                                             classes=classes, norm=norm, gate_activation=gate)
            path = d / f"m_{quantize}.c"
            if quantize == "none":
                cx.write(ir.lower(ckpt, fold_normalization=True), path)
            elif quantize == "dynamic":
                cx.write_int8_weights(ir.lower(ckpt), path, mode="step", splits=None,
                                      options=SimpleNamespace(calibration_samples=None))
            self.cache[key] = (path, ckpt, w, extra)
        return self.cache[key]


@pytest.fixture(scope="session")
def exports(tmp_path_factory):
    return Exports(tmp_path_factory.mktemp("c-export"))


def test_clang_is_installed_under_ci():
    """CI (SLIMEDGE_NO_SKIPS=1) installs clang: a missing one fails here instead of its -Werror
    builds quietly not running."""
    if "clang" not in COMPILERS and os.environ.get("SLIMEDGE_NO_SKIPS") == "1":
        pytest.fail("SLIMEDGE_NO_SKIPS=1 but clang is not installed: its -Werror builds would not run")
    if "clang" not in COMPILERS:
        pytest.skip("clang not installed")


# ---- float: every variant against both float64 references -------------------------------------
@pytest.mark.parametrize("gate", ["sigmoid", "hard_sigmoid"])
@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("variant", ALL)
def test_float_export_reproduces_reference(exports, variant, config, gate):
    """Per step (each from the reference's state) within 1e-5 of the float64 step IR, scaled by
    |c| where LSTM4a/5a's cell state grows past 1 (as the other exporters' tests); closed loop no
    more than twice the float32 interpreter's own drift."""
    path, ckpt, w, extra = exports.get(variant, config, gate)
    layers, batch = CONFIGS[config][0], 3
    run = c_runner(path)
    g = ir.lower(ckpt)
    frames = seeded("frames", variant, config).normal(size=(T, batch, M)).astype(np.float32)
    h0, c0 = (seeded("state", variant).normal(size=(2, layers, batch, N)) * 0.5).astype(np.float32)
    ref = validate.reference(g, frames, h0, c0, with_state=True)
    ry, rh, rc = reference_outputs(variant, w, extra, frames, h0, c0, gate_activation=gate)
    np.testing.assert_allclose(ref["y"], ry, atol=1e-9, rtol=0)  # the IR is the equations
    step = validate.run_per_step(run, "step", frames, ref["h"].astype(np.float32),
                                 ref["c"].astype(np.float32))
    scale = max(1.0, float(np.abs(ref["c_next"]).max()))
    for k in ("y", "h_next", "c_next"):
        assert np.abs(step[k] - ref[k]).max() <= 1e-5 * scale, k
    loop = validate.run_closed_loop(run, "step", frames, h0, c0)
    r32 = ir.rollout(g, frames, (h0, c0))
    floor = max(np.abs(r32.y - ry).max(), np.abs(r32.state[0] - rh).max(),
                np.abs(r32.state[1] - rc).max())
    for got, want in ((loop["y"], ry), (loop["h_next"][-1], rh), (loop["c_next"][-1], rc)):
        assert np.abs(got - want).max() <= max(1e-5, 2 * floor)


def test_a_file_holds_only_its_variants_work(exports):
    """LSTM6 (i = 1, f = 0.4, o = 1): no gate matmul, no sigmoid, no multiply by a 1.0 gate."""
    path, ckpt, _, _ = exports.get("LSTM6", "1-layer")
    text = path.read_text()
    g = ir.lower(ckpt, fold_normalization=True)
    # one stream's step (matvecs) and a block of streams' (matrix products), the same ops
    assert text.count("slimedge_matvec_f32(") == len(g.matmul_shapes()) == 2  # W_c·x, U_c·h
    assert text.count("slimedge_matmat_f32(") == 1  # both in one call for a block of streams
    assert "expf" not in text and text.count("tanhf(") == 2  # one stream's
    assert text.count("slimedge_tanh_block(") == 2  # a block's
    # the fixed gate f = 0.4 is a named constant, the gates at 1.0 are not multiplied at all
    assert "static const float l0_const_f = 0.400000006f;" in text
    assert "* l0_const_f" in text and "* 1.0f" not in text
    lstm0, _, _, _ = exports.get("LSTM0", "1-layer")
    assert lstm0.read_text().count("expf") == 3  # the i, f, o sigmoids (one stream's)
    assert lstm0.read_text().count("slimedge_sigmoid_block(") == 3  # (a block's)


def _chained(graph, groups) -> list[str]:
    """The tanh/sigmoid nodes of ``groups`` (fused loops) that read, through their own loop's
    values, the result of another tanh/sigmoid of that loop."""
    out = []
    for g in groups.values():
        derived: set[str] = set()
        for n in graph.nodes[g.start:g.end + 1]:
            if n.op in ("tanh", "sigmoid") and derived & set(n.inputs):
                out.append(n.outputs[0])
            if n.op in ("tanh", "sigmoid") or derived & set(n.inputs):
                derived |= set(n.outputs)
    return out


@pytest.mark.parametrize("variant", ALL)
def test_a_blocks_loops_never_chain_two_activations(exports, variant):
    """A block of streams' element-wise loops (fusion.plan with chains): no loop holds a tanh or
    sigmoid of another's result (tanh(c') after the gates: such a loop, vectorised, waits on
    itself), and still every element-wise op in a loop; one stream's loops fuse them."""
    _, ckpt, _, _ = exports.get(variant, "2-layer+head+norm")
    g = ir.lower(ckpt, fold_normalization=True)
    size = lambda v: int(g.shapes[v][-1])  # noqa: E731
    block, row = (fusion.plan(g.nodes, size, chains) for chains in (True, False))
    assert _chained(g, block) == []
    assert len(_chained(g, row)) == 2  # tanh(c') of each layer, in one stream's loops
    covered = lambda groups: sorted(k for gr in groups.values()  # noqa: E731
                                    for k in range(gr.start, gr.end + 1))
    assert covered(block) == covered(row) and len(block) == len(row) + 2


# ---- many streams: a batch runs in blocks of streams -------------------------------------------
BATCHES = (1, 3, 17, 64, 100)  # one, fewer than a vector of streams, odd, whole blocks, a partial one
WIDE = 40  # hidden size: U·h has >= SMALL_INPUT inputs (the int8 dot-product path)


def closed_loop(run, frames, h0, c0, k):
    """The first k streams stepped in one batch per step, carrying their own state."""
    return validate.run_closed_loop(run, "step", frames[:, :k], h0[:, :k], c0[:, :k])


@pytest.mark.parametrize("quantize", ["none", "dynamic", "dynamic-dot"])
@pytest.mark.parametrize("variant", ALL)
def test_batched_step_equals_one_stream_at_a_time(tmp_path, monkeypatch, variant, quantize):
    """PREFIX_step_io with a batch (blocks of streams, each matmul one small matrix product;
    int8 weights: each row read once per four streams) against the same export compiled with
    -DSLIMEDGE_NO_BLOCKED (the batch one stream at a time, the row function, as a
    microcontroller runs it), 12 steps of a closed loop, 2 layers, a head: every batch size
    (3, 17, 64, 100) gives each stream the same bits (its result does not depend on its batch),
    and so does the batch in reverse order (nor on its place in it),
    one stream alone the per-stream step's bits, and a batch agrees with the per-stream step to
    float32 rounding (the sums run in another order: 2e-5; int8 weights 2e-4);
    float files also within 1e-5 of the float64 step IR, per step. ``dynamic-dot``: every int8
    matrix through the block's dot products (by default only large ones, 128 KB and more)."""
    if quantize == "dynamic-dot":
        monkeypatch.setattr(emit_int8w, "BLOCK_INT8_BYTES", 0)
    ckpt, _, _ = make_checkpoint(tmp_path / "m.safetensors", variant, M, WIDE, 2, classes=3)
    path = tmp_path / "m.c"
    if quantize == "none":
        cx.write(ir.lower(ckpt, fold_normalization=True), path)
    else:
        cx.write_int8_weights(ir.lower(ckpt), path, mode="step", splits=None,
                              options=SimpleNamespace(calibration_samples=None))
    assert f"{c_reader.read_config(path)['export']['prefix']}_rows(" in path.read_text()
    blocked = c_runner(path)
    with environ({toolchain.ENV_CFLAGS: f"{SESSION_CFLAGS} -DSLIMEDGE_NO_BLOCKED"}):
        per_stream = c_runner(path)
    B, steps = max(BATCHES), 12
    rng = seeded("batched", variant, quantize)
    frames = rng.normal(size=(steps, B, M)).astype(np.float32)
    h0, c0 = (rng.normal(size=(2, 2, B, WIDE)) * 0.5).astype(np.float32)
    full = closed_loop(blocked, frames, h0, c0, B)
    # nor on its place in it: the streams in reverse order (each in another lane of a block of
    # streams, another block), each the same bits
    back = closed_loop(blocked, *(np.ascontiguousarray(a[:, ::-1]) for a in (frames, h0, c0)), B)
    for key in ("y", "h_next", "c_next"):
        np.testing.assert_array_equal(back[key][..., ::-1, :], full[key], err_msg=key)
    alone = closed_loop(per_stream, frames, h0, c0, B)
    for k in BATCHES[:-1]:  # one stream alone runs the row function, as before: the same bits
        part = closed_loop(blocked, frames, h0, c0, k)
        for key in ("y", "h_next", "c_next"):
            want = (alone if k == 1 else full)[key][..., :k, :]
            np.testing.assert_array_equal(part[key], want, err_msg=f"{key}, {k} streams")
    # int8 weights: a last-bit difference may round an input element to the next int16 step
    # (2^-15 of the largest), a difference the closed loop carries on
    tol = 2e-5 if quantize == "none" else 2e-4
    for key in ("y", "h_next", "c_next"):
        scale = max(1.0, float(np.abs(alone[key]).max()))
        assert np.abs(full[key] - alone[key]).max() <= tol * scale, key
    if quantize == "none":  # per step, each from the float64 reference's state
        ref = validate.reference(ir.lower(ckpt), frames, h0, c0, with_state=True)
        step = validate.run_per_step(blocked, "step", frames, ref["h"].astype(np.float32),
                                     ref["c"].astype(np.float32))
        scale = max(1.0, float(np.abs(ref["c_next"]).max()))
        for key in ("y", "h_next", "c_next"):
            assert np.abs(step[key] - ref[key]).max() <= 1e-5 * scale, key


# ---- int8 weights (quantize "dynamic") ---------------------------------------------------------
def rounded_weights(graph):
    """``graph`` with every matmul weight replaced by its int8 rounding times the row's scale."""
    for n in graph.nodes:
        if n.op == "matmul":
            W = graph.initializers[n.inputs[1]]
            s = np.abs(W).max(axis=1, keepdims=True) / 127
            graph.initializers[n.inputs[1]] = np.clip(np.rint(W / s), -127, 127) * s
    return graph


@pytest.mark.parametrize("width", ["narrow", "wide"])
@pytest.mark.parametrize("variant", ALL)
def test_int8_weights_within_stated_bound(exports, tmp_path, variant, width):
    """The int8-weight file is the float model with its weights rounded to int8 (one scale per
    row), plus, in matmuls of 32 inputs or more (the wide models, n = 40), the per-call 15-bit
    rounding of their input vector: against the float64 step of exactly those rounded weights it
    is within 2e-4, and against the float model within 0.03 per step on these models (weights
    uniform in ±1/sqrt(n): a row's rounding error is at most half its scale, 1/254 of its largest
    weight)."""
    n = N if width == "narrow" else 40
    if width == "narrow":
        path, ckpt, _, _ = exports.get(variant, "2-layer+head+norm", quantize="dynamic")
    else:
        ckpt, _, _ = make_checkpoint(tmp_path / "w.safetensors", variant, M, n, 2, classes=3)
        path = tmp_path / "w.c"
        cx.write_int8_weights(ir.lower(ckpt), path, splits=None, options=None)
        assert "int16_t aq[40]" in path.read_text()  # layer 1's and the head's matmuls
    info = c_reader.read_config(path)["export"]
    assert info["quantize"] == "dynamic" and info["max_abs_weight_error"] > 0
    run = c_runner(path)
    frames = seeded("q", variant).normal(size=(30, 2, M)).astype(np.float32)
    h0, c0 = (seeded("qs", variant).normal(size=(2, 2, 2, n)) * 0.5).astype(np.float32)
    for graph, bound in ((rounded_weights(ir.lower(ckpt)), 2e-4), (ir.lower(ckpt), 0.03)):
        ref = validate.reference(graph, frames, h0, c0, with_state=True)
        got = validate.run_per_step(run, "step", frames, ref["h"].astype(np.float32),
                                    ref["c"].astype(np.float32))
        for k in ("y", "h_next", "c_next"):
            assert np.abs(got[k] - ref[k]).max() <= bound, (k, bound)


# ---- full integer ------------------------------------------------------------------------------
def synthetic_splits(m, seed=0):
    """A small data set of seeded normal frames (calibration for the random test models)."""
    from slimedge.data.sequences import SequenceData
    from slimedge.data.splits import DataSplits

    rng = seeded("splits", m, seed)
    seqs = [rng.normal(size=(int(rng.integers(5, 20)), m)).astype(np.float32) for _ in range(40)]
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in seqs])])
    d = SequenceData(np.concatenate(seqs), offsets, rng.integers(0, 3, 40), ["a", "b", "c"])
    return DataSplits("synthetic", d, d, d)


def integer_export(d: Path, variant, layers=2, classes=3, gate="sigmoid", activation="tanh"):
    ckpt, _, _ = make_checkpoint(d / f"{variant}-{gate}-{activation}.safetensors", variant, M, N,
                                 layers, classes=classes, gate_activation=gate,
                                 activation=activation)
    path = d / f"{variant}_{gate}_{activation}_int.c"
    info = cx.write_integer(ir.lower(ckpt), path, mode="step", splits=synthetic_splits(M),
                            options=SimpleNamespace(calibration_samples=None))
    return path, ckpt, info


@pytest.mark.parametrize("variant", ALL)
def test_integer_export_tracks_float(tmp_path, variant):
    """Every variant's integer step, from the float64 reference's own states on the calibration
    data, within 0.05 of it per step (int8 h rounds to 1/254 of its range; measured at most 0.024
    on these models): a wrong scale, sign or table gives errors of order 1."""
    path, ckpt, info = integer_export(tmp_path, variant, gate="hard_sigmoid" if variant in
                                      ("LSTM1", "LSTM5", "LSTM11") else "sigmoid")
    assert info["quantize"] == "int8" and len(info["scales"]["h"]) == 2
    run = c_runner(path)
    g = ir.lower(ckpt)
    frames = synthetic_splits(M).train.sequence(0)[:, None].astype(np.float32)
    ref = validate.reference(g, frames, np.zeros((2, 1, N)), np.zeros((2, 1, N)), with_state=True)
    got = validate.run_per_step(run, "step", frames, ref["h"].astype(np.float32),
                                ref["c"].astype(np.float32))
    for k in ("y", "h_next", "c_next"):
        assert np.abs(got[k] - ref[k]).max() <= 0.05, k


def test_integer_export_calibrates_on_data_or_given_ranges(tmp_path):
    from slimedge.exporters.calibration import calibrate

    ckpt, _, _ = make_checkpoint(tmp_path / "m.safetensors", "LSTM10", M, N, 1, classes=3)
    g = ir.lower(ckpt)
    with pytest.raises(ValueError, match="calibrates its scales on real data"):
        cx.write_integer(g, tmp_path / "none.c", splits=None, options=None)
    data = synthetic_splits(M)
    a = cx.write_integer(g, tmp_path / "a.c", splits=data,
                         options=SimpleNamespace(calibration_samples=None, seed=0))
    b = cx.write_integer(g, tmp_path / "b.c", splits=None, options=SimpleNamespace(
        ranges=calibrate(g, data.train, samples=None)))
    assert a["calibration"]["sequences"] == 40 and b["calibration"]["ranges"] == "given by the caller"
    assert a["scales"] == b["scales"] and a["weights_sha256"] == b["weights_sha256"]


@pytest.fixture(scope="session")
def shipped(tmp_path_factory):
    """The shipped model, its data, and its float and full-integer C exports."""
    from slimedge import data, zoo

    p = zoo.default_model_path()
    ckpt = checkpoint.read(p)
    splits = data.load_as_recorded(ckpt.config["info"].get("data"))
    d = tmp_path_factory.mktemp("shipped")
    cx.write(ir.lower(p, fold_normalization=True), d / "fsdd.c")
    info = cx.write_integer(ir.lower(p), d / "fsdd_int.c", mode="step", splits=splits,
                            options=SimpleNamespace(calibration_samples=128))
    return SimpleNamespace(path=p, ckpt=ckpt, splits=splits, dir=d, float=d / "fsdd.c",
                           int=d / "fsdd_int.c", info=info)


def accuracy(run, d, state_shape):
    """Accuracy at each sequence's last frame, all sequences stepped as one padded batch."""
    x, lengths, y = d.batch(np.arange(len(d)))
    frames = np.ascontiguousarray(np.asarray(x, np.float32).transpose(1, 0, 2))
    zero = np.zeros((state_shape[0], len(d), state_shape[1]), np.float32)
    r = ir.rollout(run, frames, (zero, zero.copy()), lengths=lengths)
    return float(np.mean(r.at_end(lengths).argmax(-1) == np.asarray(y)))


def test_full_integer_accuracy_within_a_point_of_float(shipped):
    shape = (1, 64)
    f_acc = accuracy(c_runner(shipped.float), shipped.splits.test, shape)
    q_acc = accuracy(c_runner(shipped.int), shipped.splits.test, shape)
    assert f_acc == pytest.approx(shipped.ckpt.config["info"]["test"]["accuracy"], abs=1e-9)
    assert abs(q_acc - f_acc) <= 0.01, (q_acc, f_acc)
    assert shipped.info["calibration"]["sequences"] == 128
    bounds = shipped.info["nonlinearities"]["max_abs_error"]
    assert 0 < bounds["tanh"] < 5e-5 and 0 < bounds["sigmoid"] < 5e-5


def _function(text: str, name: str) -> str:
    """The text of C function ``name`` (signature to its closing brace at column 0)."""
    start = text.index(f" {name}(")
    start = text.rindex("\n", 0, start) + 1
    return text[start:text.index("\n}\n", start) + 3]


def test_integer_step_has_no_floating_point(tmp_path, shipped):
    """The integer API's functions, and every kernel they call, have no floating point."""
    path, _, _ = integer_export(tmp_path, "LSTM0", gate="hard_sigmoid")
    kernels = (path.parent / c_reader.KERNELS).read_text()
    assert kernels == (shipped.int.parent / c_reader.KERNELS).read_text() == c_reader.kernels_text()
    units = [(kernels, f"slimedge_{name}") for name in
             ("rq", "sat", "rq64", "sat64", "tanh_q15", "sigmoid_q15",
              "matvec_s8")]
    for p in (shipped.int, path):
        text, prefix = p.read_text(), c_reader.read_config(p)["export"]["prefix"]
        units += [(text, f"{prefix}_{name}") for name in ("row_q", "step_batch_q", "step_q",
                                                          "reset_q")]
        called = set(re.findall(r"\b(slimedge_\w+)\(", _function(text, f"{prefix}_row_q")))
        assert called <= {name for _, name in units}, called
    for text, name in units:
        body = _function(text, name)
        for word in ("float", "double", "expf", "tanhf", "f)", ".0f"):
            assert word not in body, (name, word)
    assert "float" in _function(shipped.int.read_text(), "fsdd_int_step_io")  # the wrappers


def test_integer_io_agrees_with_the_float_wrappers(shipped):
    """PREFIX_step_batch_q on integers equals PREFIX_step_io on the same values as floats."""
    meta = c_reader.read_config(shipped.int)
    lib, _ = toolchain.load(shipped.int, meta, allow_prebuilt=False)
    B, L, n, m, K = 3, 1, 64, 13, 10
    rng = seeded("intio")
    x = (rng.normal(size=(B, m)) * 50).astype(np.float32)
    xq = np.zeros((B, m), np.int8)
    for b in range(B):
        lib.fsdd_int_quantize_input(x[b].ctypes.data_as(ctypes.c_void_p),
                                    xq[b].ctypes.data_as(ctypes.c_void_p))
    hq = rng.integers(-127, 128, (L, B, n)).astype(np.int8)
    cq = rng.integers(-30000, 30000, (L, B, n)).astype(np.int16)
    s_h, s_c = meta["export"]["scales"]["h"][0], meta["export"]["scales"]["c"][0]
    h = (hq * np.float32(s_h)).astype(np.float32)
    c = (cq * np.float32(s_c)).astype(np.float32)
    out = c_runner(shipped.int)({"x": x, "h": h, "c": c})
    yq = np.zeros((B, K), np.int32)
    lib.fsdd_int_step_batch_q(B, *(a.ctypes.data_as(ctypes.c_void_p) for a in (xq, hq, cq, yq)))
    np.testing.assert_array_equal(out["h_next"], hq * np.float32(s_h))
    np.testing.assert_array_equal(out["c_next"], cq * np.float32(s_c))
    np.testing.assert_array_equal(out["y"], yq * np.float32(2.0 ** -16))
    text = (shipped.dir / "fsdd_int.h").read_text()
    assert f"#define FSDD_INT_H_SCALE_0 {source.c_float(s_h)}" in text
    assert "#define FSDD_INT_Y_FRAC_BITS 16" in text


def test_nonlinearities_in_c_match_their_stated_bound(tmp_path):
    """The C tanh and sigmoid equal the bit-exact model in fixedpoint.py at every Q16 input in
    [-12, 12], whose error against the exact functions is the bound the export states."""
    path, _, info = integer_export(tmp_path, "LSTM0")
    probe = tmp_path / "probe.c"
    probe.write_text(f'#include "{path.name}"\n'
                     f"void probe(int n, const int32_t *z, int32_t *t, int32_t *s);\n"
                     f"void probe(int n, const int32_t *z, int32_t *t, int32_t *s)\n{{\n"
                     f"    for (int i = 0; i < n; i++) {{ t[i] = slimedge_tanh_q15(z[i]); "
                     f"s[i] = slimedge_sigmoid_q15(z[i]); }}\n}}\n")
    toolchain.compile_library(probe, tmp_path / "probe.so")
    lib = ctypes.CDLL(str(tmp_path / "probe.so"))
    z = np.arange(-12 * 65536, 12 * 65536 + 1, dtype=np.int32)
    t, s = np.zeros_like(z), np.zeros_like(z)
    lib.probe(len(z), *(a.ctypes.data_as(ctypes.c_void_p) for a in (z, t, s)))
    np.testing.assert_array_equal(t, fixedpoint.tanh_q15(z))
    np.testing.assert_array_equal(s, fixedpoint.sigmoid_q15(z))
    x = z / 65536.0
    bounds = info["nonlinearities"]["max_abs_error"]
    assert np.abs(t / 32768.0 - np.tanh(x)).max() <= bounds["tanh"]
    assert np.abs(s / 32768.0 - 1 / (1 + np.exp(-x))).max() <= bounds["sigmoid"] + 1e-12


def test_block_activations_match_their_stated_bound(tmp_path):
    """A block of streams' tanh and sigmoid (float weights: slimedge_tanh_block, a rational
    function) within the bounds the kernel header states of the exact functions, at every
    float32 step of 2^-12 in [-24, 24] and at large inputs; odd, and within [-1, 1] and [0, 1]."""
    probe = tmp_path / "probe.c"
    probe.write_text('#include <stddef.h>\n#include "slimedge_kernels.h"\n'
                     "void probe(int n, const float *z, float *t, float *s);\n"
                     "void probe(int n, const float *z, float *t, float *s)\n{\n"
                     "    for (int i = 0; i < n; i++) { t[i] = slimedge_tanh_block(z[i]); "
                     "s[i] = slimedge_sigmoid_block(z[i]); }\n}\n")
    toolchain.compile_library(probe, tmp_path / "probe.so")
    lib = ctypes.CDLL(str(tmp_path / "probe.so"))
    z = np.concatenate([np.arange(-24 * 4096, 24 * 4096 + 1) / 4096.0,
                        [-1e30, -1e4, 1e4, 1e30]]).astype(np.float32)
    t, s = np.zeros_like(z), np.zeros_like(z)
    lib.probe(len(z), *(a.ctypes.data_as(ctypes.c_void_p) for a in (z, t, s)))
    x = z.astype(np.float64)
    assert np.abs(t - np.tanh(x)).max() <= 3.3e-7
    assert np.abs(s - (1 + np.tanh(x / 2)) / 2).max() <= 2e-7  # (the sigmoid, exactly)
    grid = t[:-4]  # symmetric about 0
    np.testing.assert_array_equal(grid[::-1], -grid)
    assert np.abs(t).max() <= 1.0 and s.min() >= 0.0 and s.max() <= 1.0


# ---- builds: -Werror with gcc and clang -----------------------------------------------------------
@pytest.fixture(scope="session")
def build_set(exports, tmp_path_factory):
    """Exports covering every op and mode: every variant in float, int8-weight and full integer,
    plus hard-sigmoid gates, relu and sigmoid activations, three layers without a head."""
    d = tmp_path_factory.mktemp("werror")
    paths = []
    for v in ALL:
        paths.append(exports.get(v, "2-layer+head+norm")[0])
        paths.append(exports.get(v, "1-layer", quantize="dynamic")[0])
        paths.append(integer_export(d, v)[0])
    for act in ("relu", "sigmoid"):
        ckpt, _, _ = make_checkpoint(d / f"{act}.safetensors", "LSTM11", M, N, 3,
                                     gate_activation="hard_sigmoid", activation=act)
        for q, fn in (("none", cx.write), ("dynamic", cx.write_int8_weights)):
            paths.append(d / f"{act}_{q}.c")
            graph = ir.lower(ckpt, fold_normalization=q == "none")
            fn(graph, paths[-1]) if q == "none" else fn(graph, paths[-1], splits=None, options=None)
        paths.append(integer_export(d, "LSTM11", layers=3, classes=None, gate="hard_sigmoid",
                                    activation=act)[0])
    return paths


BUILDS = [(cc, f) for cc in COMPILERS for f in (["-O2"], list(toolchain.DEFAULT_CFLAGS))
          if cc != "gcc" or f == ["-O2"]]


@pytest.mark.parametrize("cc,flags", BUILDS, ids=[f"{cc}{'-O2' if f == ['-O2'] else '-runtime'}"
                                                  for cc, f in BUILDS])
def test_exports_build_without_warnings(build_set, tmp_path, cc, flags):
    """Every export, its header on its own, and the example program compile under
    -std=c99 -Wall -Wextra -pedantic -Werror (gcc with the runtime's flags: every library this
    session builds, see SESSION_CFLAGS)."""
    units = list(build_set)
    for p in build_set[:3]:  # a float, an int8-weight and a full-integer header on their own
        units.append(tmp_path / f"{p.stem}_h.c")
        units[-1].write_text(f'#include "{p.with_suffix(".h")}"\ntypedef int {p.stem}_nonempty;\n')
    # two compiler processes (one per core), each building half the units
    procs = [subprocess.Popen([cc, *WERROR, *flags, "-c", *map(str, units[k::2])], cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for k in range(2)]
    for proc in procs:
        _, err = proc.communicate()
        assert proc.returncode == 0, err[-3000:]
    if flags != ["-O2"]:
        return
    res = subprocess.run(["make", "-s", "-C", str(EXAMPLE), f"MODEL={build_set[0]}",
                          f"BUILD={tmp_path}", f"CC={cc}", "all", "bench"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]


TWO_MODEL_MAIN = r"""
#include <stdio.h>
#include "fa.h"
#include "fb.h"
#include "qa.h"
#include "qb.h"

/* any model through the descriptor: reset, then step the frames, printing y each step */
static void run(const slimedge_model *m, int steps, const float *frames)
{
    static float h[4096], c[4096], y[64];
    slimedge_reset(m, h, c);
    for (int t = 0; t < steps; t++) {
        slimedge_step(m, frames + t * m->input_size, h, c, y);
        printf("%s", m->name);
        for (int k = 0; k < m->output_size; k++) printf(" %.9g", y[k]);
        printf("\n");
    }
}

int main(int argc, char **argv)
{
    static const slimedge_model *const models[] = {&fa_model, &fb_model, &qa_model, &qb_model};
    static float frames[4096];
    int steps = 0;
    FILE *f = fopen(argv[argc - 1], "r");
    while (steps < 4096 && fscanf(f, "%f", &frames[steps]) == 1) steps++;
    fclose(f);
    for (int k = 0; k < 4; k++) run(models[k], steps / models[k]->input_size, frames);
    return 0;
}
"""


@pytest.mark.parametrize("cc", COMPILERS)
def test_two_models_link_into_one_program_with_one_copy_of_the_kernels(tmp_path, cc):
    """Four exports (two float, two full-integer, different variants) and a main that steps each
    through the one descriptor API link into one program under -Werror: no symbol clash (each
    object defines only its prefix's global symbols and, full integer, the kernels' tanh table as
    a weak symbol), the table once in the program, and every model's outputs equal its own
    runtime's."""
    d = tmp_path / "fw"
    d.mkdir()
    for name, variant in (("fa", "LSTM6"), ("fb", "LSTM0"), ("qa", "LSTM10"), ("qb", "LSTM5")):
        ckpt, _, _ = make_checkpoint(tmp_path / f"{name}.safetensors", variant, M, N, 2, classes=3)
        if name.startswith("f"):
            cx.write(ir.lower(ckpt, fold_normalization=True), d / f"{name}.c")
        else:
            cx.write_integer(ir.lower(ckpt), d / f"{name}.c", splits=synthetic_splits(M),
                             options=SimpleNamespace(calibration_samples=None))
    (d / "main.c").write_text(TWO_MODEL_MAIN)
    units = ["fa", "fb", "qa", "qb"]
    for u in units + ["main"]:
        subprocess.run([cc, *WERROR, "-O2", "-c", f"{u}.c", "-o", f"{u}.o"], cwd=d, check=True)
    for u in units:  # global symbols: the model's own, or the kernels' (weak)
        out = subprocess.run(["nm", "-g", "--defined-only", f"{u}.o"], cwd=d, check=True,
                             capture_output=True, text=True).stdout.split("\n")
        syms = [line.split() for line in out if line.strip()]
        assert syms and all(name.startswith(f"{u}_") or (name.startswith("slimedge_")
                                                          and kind in "VW")
                            for _, kind, name in syms), syms
    exe = d / "fw"
    subprocess.run([cc, "-o", str(exe), *(f"{u}.o" for u in units + ["main"]), "-lm"], cwd=d,
                   check=True)
    table = subprocess.run(["nm", str(exe)], check=True, capture_output=True, text=True).stdout
    kernels = [line.split()[-1] for line in table.splitlines() if " slimedge_" in line]
    assert kernels == ["slimedge_tanh_table"]  # the one table; the functions are all inlined
    frames = seeded("fw").normal(size=(6, M)).astype(np.float32) * 2
    (d / "frames.txt").write_text(" ".join(f"{v:.9g}" for v in frames.ravel()))
    printed = subprocess.run([str(exe), str(d / "frames.txt")], check=True, capture_output=True,
                             text=True).stdout.splitlines()
    assert len(printed) == 4 * len(frames)
    for u in units:
        got = np.array([[float(v) for v in line.split()[1:]] for line in printed
                        if line.split()[0] == u])
        run = c_runner(d / f"{u}.c")
        h = np.zeros((2, 1, N), np.float32)
        c = np.zeros((2, 1, N), np.float32)
        want = []
        for x in frames:
            out = run({"x": x[None], "h": h, "c": c})
            h, c = out["h_next"], out["c_next"]
            want.append(out["y"][0])
        np.testing.assert_allclose(got, np.array(want), atol=1e-4, rtol=0, err_msg=u)


# ---- metadata, names, errors ------------------------------------------------------------------------
def test_metadata_reads_back_without_a_compiler(exports, monkeypatch, tmp_path):
    path, ckpt, _, _ = exports.get("LSTM5", "2-layer+head+norm")
    monkeypatch.setenv("PATH", str(tmp_path))  # no compiler, no make: reading needs neither
    monkeypatch.delenv("CC", raising=False)
    meta = c_reader.read_config(path)
    want = json.loads(ir.lower(ckpt, fold_normalization=True).metadata_json())
    assert integrity.KEY in meta and meta[integrity.KEY] != integrity.PLACEHOLDER  # sealed
    want[integrity.KEY] = meta[integrity.KEY]
    assert {k: v for k, v in meta.items() if k != "export"} == want
    assert meta["export"]["format"] == "c" and meta["export"]["quantize"] == "none"
    assert meta["export"]["prefix"] == "m_none" and meta["export"]["mode"] == "step"
    assert c_reader.read_config(path.with_suffix(".h")) == meta
    # writing needs no compiler either; running says what to install
    out = tmp_path / "w.c"
    cx.write(ir.lower(ckpt, fold_normalization=True), out)
    assert c_reader.read_config(out)["export"]["prefix"] == "w"
    with pytest.raises(CompilerNotFound, match="install gcc or clang.*--no-validate"):
        c_runner(out)
    monkeypatch.setenv("CC", "no-such-cc --flag")
    with pytest.raises(CompilerNotFound, match="'no-such-cc' is not an executable"):
        c_runner(out)
    assert isinstance(CompilerNotFound("x"), ValueError)


def test_config_is_in_the_library_too(exports):
    path, _, _, _ = exports.get("LSTM10", "1-layer")
    meta = c_reader.read_config(path)
    lib, _ = toolchain.load(path, meta, allow_prebuilt=False)
    assert toolchain.embedded_config(lib, meta["export"]["prefix"]) == meta


def test_folder_holding_one_export(tmp_path, exports):
    from slimedge.errors import ModelFileError

    src_path, _, _, _ = exports.get("LSTM6", "1-layer")
    with pytest.raises(ModelFileError, match="no slimedge C export"):
        c_reader.resolve(tmp_path)
    (tmp_path / "notes.c").write_text("int main(void) { return 0; }\n")
    with pytest.raises(ModelFileError, match=r"notes\.c: not a slimedge C export"):
        c_reader.read_config(tmp_path / "notes.c")
    for name in ("a", "b"):
        shutil.copy(src_path, tmp_path / f"{name}.c")
    with pytest.raises(ModelFileError, match=r"2 slimedge C exports \(a\.c, b\.c\)"):
        c_reader.resolve(tmp_path)
    (tmp_path / "b.c").unlink()
    assert c_reader.resolve(tmp_path) == tmp_path / "a.c"
    assert c_reader.read_config(tmp_path) == c_reader.read_config(src_path)
    with pytest.raises(ModelFileError, match=r"missing\.c: cannot read it"):
        c_reader.read_config(tmp_path / "missing.c")


def test_step_mode_only(exports, tmp_path):
    _, ckpt, _, _ = exports.get("LSTM0", "1-layer")
    g = ir.lower(ckpt)
    for fn in (cx.write, cx.write_int8_weights, cx.write_integer):
        with pytest.raises(ValueError, match="step mode only"):
            fn(g, tmp_path / "s.c", mode="sequence")
    assert not list(tmp_path.iterdir())


def test_names_and_labels_are_escaped(tmp_path):
    """An awkward file name becomes a valid identifier prefix; labels with quotes, backslashes,
    trigraph look-alikes, comment markers and non-ASCII text compile -Werror and read back."""
    ckpt, _, _ = make_checkpoint(tmp_path / "m.safetensors", "LSTM_C6", M, N, 1, classes=5)
    g = ir.lower(ckpt, fold_normalization=True)
    labels = ['say "hi"', "back\\slash", "what??=", "*/ /* end", "zéro ✓"]
    g.config["head"]["labels"] = labels
    path = tmp_path / "7 odd-name.v2.c"
    cx.write(g, path)
    meta = c_reader.read_config(path)
    assert meta["export"]["prefix"] == "m_7_odd_name_v2" and meta["head"]["labels"] == labels
    for cc in COMPILERS:
        res = subprocess.run([cc, *WERROR, "-O2", "-c", str(path), "-o", os.devnull],
                             capture_output=True, text=True)
        assert res.returncode == 0, res.stderr[-2000:]
    lib, _ = toolchain.load(path, meta, allow_prebuilt=False)
    got = (ctypes.c_char_p * 5).in_dll(lib, "m_7_odd_name_v2_labels")
    assert [s.decode("utf-8") for s in got] == labels
    assert (tmp_path / "7 odd-name.v2.h").read_text().count("M_7_ODD_NAME_V2_HAS_LABELS 1") == 1


def test_exporting_and_reading_need_no_torch(tmp_path):
    run_without_torch(f"""
from pathlib import Path
from slimedge import ir, zoo
from slimedge import runtime
from slimedge.exporters import c as cx
from slimedge.formats.c import read_config
p, d = zoo.default_model_path(), Path({str(tmp_path)!r})
cx.write(ir.lower(p, fold_normalization=True), d / "f.c")
cx.write_int8_weights(ir.lower(p), d / "q.c", splits=None, options=None)
assert read_config(d / "q.c")["export"]["quantize"] == "dynamic"
print(runtime.load(d / "f.c", verify=False) is not None)
""")


# ---- through export(), and the example program ------------------------------------------------------
def test_export_writes_and_validates_c(shipped, tmp_path):
    from slimedge import exporters

    result = exporters.export(shipped.path, tmp_path / "digits.c", format="c")
    assert result.validation.passed and result.validation.max_abs_diff["y"] <= 1e-5
    assert (tmp_path / "digits.h").is_file()
    assert c_reader.read_config(tmp_path / "digits.c")["export"]["prefix"] == "digits"


def test_example_streams_like_the_runtime(shipped, tmp_path):
    """examples/c built with the host compiler prints, per frame and per sequence, the labels the
    runtime gives on the ONNX export of the same model (frames written with 9 digits: exact)."""
    from slimedge import exporters, runtime

    onnx_file = exporters.export(shipped.path, tmp_path / "fsdd.onnx").path
    model = runtime.load(onnx_file)
    seqs = [shipped.splits.test.sequence(k).astype(np.float32) for k in range(0, 300, 12)]
    frames = tmp_path / "frames.txt"
    with frames.open("w") as f:
        f.write("# the fsdd test split, every 12th sequence\n")
        for seq in seqs:
            f.writelines(" ".join(f"{v:.9g}" for v in frame) + "\n" for frame in seq)
            f.write("\n")
    res = subprocess.run(["make", "-s", "-C", str(EXAMPLE), f"MODEL={shipped.float}",
                          f"BUILD={tmp_path}"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    exe = tmp_path / "stream-fsdd"
    per_seq = subprocess.run([str(exe), str(frames)], capture_output=True, text=True, check=True)
    per_frame = subprocess.run([str(exe), "-f", str(frames)], capture_output=True, text=True,
                               check=True)
    got_seq = [line.split() for line in per_seq.stdout.splitlines()]
    got_frame = [line.split() for line in per_frame.stdout.splitlines()]
    assert len(got_seq) == len(seqs) and len(got_frame) == sum(len(s) for s in seqs)
    k = 0
    for i, seq in enumerate(seqs):
        ys = model.run(seq)
        top2 = np.sort(ys, axis=-1)[:, -2:]
        for t, y in enumerate(ys):
            assert got_frame[k][:2] == [str(i), str(t)]
            if top2[t, 1] - top2[t, 0] > 1e-4:  # not a near-tie that float rounding may flip
                assert got_frame[k][2] == model.labels[int(y.argmax())], (i, t)
            k += 1
        assert got_seq[i] == [str(i), str(len(seq)), model.labels[int(ys[-1].argmax())]]
    bad = tmp_path / "bad.txt"
    bad.write_text("1 2 3\n")
    res = subprocess.run([str(exe), str(bad)], capture_output=True, text=True)
    assert res.returncode == 2 and "line 1: expected 13 numbers" in res.stderr
