"""The fused time loop (models/fused_cpu.py and its engines: torch, numba, triton) against the
reference loop: float64 gradcheck for every catalogue variant and a sample of user-defined
structures on the torch and numba engines, float32 gradients at a real size, the numba engine's
float32 tanh against NumPy, the Triton kernels through Triton's interpreter, and the dispatch."""
import itertools
import os
import random

import numpy as np
import pytest
import torch

from slimedge import variants
from slimedge.models import SlimLSTM, fused_cpu
from slimedge.models.fused_cpu import _FusedLayer, make_plan

# the structures of tests/test_user_variants.py: every non-empty set of terms, a gate also fixed
FORMS = [w + r + b for w in ("", "W") for r in ("", "U", "u") for b in ("", "b")][1:]
GATE_FORMS = FORMS + [0.5, 1.0, 0.0]
ACTS = [("sigmoid", "tanh"), ("hard_sigmoid", "relu"), ("sigmoid", "sigmoid"), ("hard_sigmoid", "tanh")]


def _structures(k, seed):
    combos = [dict(i=i, f=f, o=o, c=c) for i, f, o, c in
              itertools.product(GATE_FORMS, GATE_FORMS, GATE_FORMS, FORMS) if i != 0.0 and o != 0.0]
    return random.Random(seed).sample(combos, k)


USER = _structures(40, 15)


def _layer_inputs(spec, acts, m=2, n=3, B=3, T=4, lengths=None, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    cell = SlimLSTM(spec, m, n, gate_activation=acts[0], activation=acts[1]).cells[0].to(dtype)
    with torch.no_grad():
        for prm in cell.parameters():
            prm.copy_(torch.rand(prm.shape, generator=g, dtype=dtype) * 1.6 - 0.8)
    rand = lambda *s: torch.randn(*s, generator=g, dtype=dtype).requires_grad_()  # noqa: E731
    mask = None if lengths is None else \
        (torch.arange(T)[:, None] < torch.tensor(lengths)[None]).unsqueeze(-1)
    params = [None if prm is None else prm.detach().clone().requires_grad_()
              for prm in (cell.W, cell.U, cell.u, cell.b)]
    plan = make_plan(cell.spec, n, *acts)
    return cell, [rand(T, B, m), rand(B, n), rand(B, n), *params], mask, plan


def _gradcheck(spec, acts, lengths=None, seed=0, engine="torch"):
    _, inputs, mask, plan = _layer_inputs(spec, acts, lengths=lengths, seed=seed)

    def f(*args):
        return _FusedLayer.apply(*args, mask, plan, engine)

    # hard_sigmoid's and relu's kinks: finite differences there disagree with any derivative,
    # and the random pre-activations can land within eps of them only with probability ~1e-6
    assert torch.autograd.gradcheck(f, tuple(inputs), eps=1e-6, atol=1e-6, nondet_tol=0.0), spec
    assert engine not in fused_cpu.FAILED, fused_cpu.FAILED[engine]  # no fallback to torch


@pytest.mark.parametrize("name", list(variants.VARIANTS))
def test_gradcheck_every_catalogue_variant(name):
    _gradcheck(variants.get(name), ACTS[0])
    _gradcheck(variants.get(name), ACTS[list(variants.VARIANTS).index(name) % 3 + 1],
               lengths=[4, 1, 2], seed=1)


# The numba engine compiles its loops per structure and activation pair (seconds each), so its
# sample is smaller: every catalogue variant with the default activations, every activation pair
# on structures with and without fixed gates and u terms, and 8 user-defined structures.
@pytest.mark.parametrize("name", list(variants.VARIANTS))
def test_gradcheck_numba_every_catalogue_variant(name):
    _gradcheck(variants.get(name), ACTS[0], engine="numba")
    _gradcheck(variants.get(name), ACTS[0], lengths=[4, 1, 2], seed=1, engine="numba")


@pytest.mark.parametrize("acts", ACTS[1:])
def test_gradcheck_numba_every_activation_pair(acts):
    for name in ("LSTM11", "LSTM6"):
        _gradcheck(variants.get(name), acts, lengths=[4, 1, 2], engine="numba")


@pytest.mark.parametrize("k", range(0, len(USER), 10))
def test_gradcheck_user_structures(k):
    for j, slots in enumerate(USER[k:k + 10]):
        spec = variants.define("Mine", **slots)
        _gradcheck(spec, ACTS[j % 4], lengths=[4, 2, 3] if j % 2 else None, seed=k + j)


@pytest.mark.parametrize("k", range(0, 8, 4))
def test_gradcheck_numba_user_structures(k):
    for j, slots in enumerate(USER[k:k + 4]):
        spec = variants.define("Mine", **slots)
        _gradcheck(spec, ACTS[j % 4], lengths=[4, 2, 3] if j % 2 else None, seed=k + j,
                   engine="numba")


def test_numba_float32_tanh_and_sigmoid_within_3e_7_of_numpy():
    """The engine's float32 tanh (a Padé approximant, fused_numba's docstring) over every float32
    from -20 to 20 in steps of 2^-12, and the sigmoid built on it."""
    from slimedge.models import fused_numba

    x = np.arange(-20 * 4096, 20 * 4096 + 1, dtype=np.float32) / np.float32(4096)
    A = x.reshape(-1, 1, 1, 1).astype(np.float32)
    for kind, want in ((2, np.tanh(x.astype(np.float64))),
                       (0, 1 / (1 + np.exp(-x.astype(np.float64))))):
        fwd, _ = fused_numba._kernels(np.dtype(np.float32), kind, kind, (False,) * 3,
                                      (False, False, False, True), (False,) * 4, (False,) * 4)
        T = A.shape[0]
        a = A.copy()
        S, C, G = (np.zeros((T, 1, 1), np.float32), np.zeros((T + 1, 1, 1), np.float32),
                   np.zeros((T, 1, 1), np.float32))
        # one step per row of x: c' = 0·c + 1·act(x), h' = g(c'); slot 0 is the cell candidate
        const = np.array([0, 0, 0, 1, 1, 0, 1, 0], np.float32)
        for t in range(0, T, 4096):  # h of the step before feeds nothing (no u): any order
            fwd(a, *np.zeros((2, 4, 1), np.float32), np.zeros((1, 1), np.float32), S, C, G,
                np.zeros((1, 1), np.bool_), t, min(t + 4096, T),
                np.array([0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]), const)
        err = np.abs(a[:, 0, 0, 0].astype(np.float64) - want).max()
        assert err <= 3e-7, (kind, err)


def _train_grads(model, x, lengths=None, seed=0, state=None):
    torch.manual_seed(seed)  # dropout between layers draws the same mask on either path
    y, (h, c) = model(x, state, lengths=lengths)
    w = torch.linspace(-1, 1, y.shape[-1], dtype=y.dtype, device=y.device)
    loss = (y * w).mean() + h.square().mean() + 0.1 * c.mean()
    return [y, h, c, *torch.autograd.grad(loss, [*model.parameters(), x])]


@pytest.mark.parametrize("name", list(variants.VARIANTS))
def test_float32_gradients_equal_reference_at_real_size(name):
    """(T, B, m, n) = (28, 32, 28, 128), two layers with dropout, padded batch."""
    torch.manual_seed(0)
    ref = SlimLSTM(name, 28, 128, 2, dropout=0.2, impl="reference").train()
    fused = SlimLSTM(name, 28, 128, 2, dropout=0.2, impl="fused").train()
    fused.load_state_dict(ref.state_dict())
    x = torch.randn(32, 28, 28).requires_grad_()
    lengths = torch.randint(1, 29, (32,))
    lengths[0] = 28
    a, b = _train_grads(ref, x, lengths), _train_grads(fused, x, lengths)
    assert fused._engine(x) == "numba" and "numba" not in fused_cpu.FAILED
    for k, (p, q) in enumerate(zip(a, b)):
        scale = float(p.detach().abs().max()) + 1e-12
        assert float((p - q).detach().abs().max()) <= 2e-5 * scale, (name, k)
    assert "_FusedLayerBackward" in _graph(b[0]) and "_FusedLayerBackward" not in _graph(a[0])



@pytest.mark.parametrize("name", ["LSTM6", "LSTM_C6"])
def test_float32_rows_taken_together_equal_reference(name):
    """One learned slot and no padding: the numba kernels take r batch rows as one row of r·n
    (fused_numba.rows_per_pass), here 8 rows of 128 and 5 of 200; every output and gradient as
    the reference loop's, two layers, and h and c of every batch row."""
    from slimedge.models import fused_numba

    for B, n, r in ((32, 128, 8), (15, 200, 5)):
        torch.manual_seed(1)
        ref = SlimLSTM(name, 28, n, 2, impl="reference")
        fused = SlimLSTM(name, 28, n, 2, impl="fused")
        fused.load_state_dict(ref.state_dict())
        x = torch.randn(B, 28, 28).requires_grad_()
        state = tuple(torch.randn(2, B, n) for _ in range(2))

        a, b = (_train_grads(model, x, state=state) for model in (ref, fused))
        assert fused_numba.rows_per_pass(fused.cells[0]._fused_plan, B, None) == r
        assert "numba" not in fused_cpu.FAILED
        for k, (p, q) in enumerate(zip(a, b)):
            scale = float(p.detach().abs().max()) + 1e-12
            assert float((p - q).detach().abs().max()) <= 2e-5 * scale, (name, B, k)

def _graph(t) -> set[str]:
    """The names of the autograd nodes behind ``t``."""
    seen, todo = set(), [t.grad_fn]
    while todo:
        f = todo.pop()
        if f is not None and f.name() not in seen:
            seen.add(f.name())
            todo += [g for g, _ in f.next_functions]
    return seen


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning", "ignore:.*torch.jit.trace. is deprecated")
def test_dispatch_env_and_tracing(monkeypatch):
    model = SlimLSTM("LSTM6", 3, 4)
    x = torch.randn(2, 5, 3, requires_grad=True)
    assert "_FusedLayerBackward" in _graph(model(x)[0]) and model._engine(x) == "numba"
    assert model._engine(x.double()) == "torch" and model._engine(x.half()) == "torch"
    ref = SlimLSTM("LSTM6", 3, 4, impl="reference")
    assert "_FusedLayerBackward" not in _graph(ref(x)[0]) and ref._engine(x) is None
    monkeypatch.setenv("SLIMEDGE_RECURRENCE", "reference")
    assert "_FusedLayerBackward" not in _graph(model(x)[0])
    assert SlimLSTM("LSTM6", 3, 4, impl="fused")._engine(x) == "numba"  # explicit beats env
    monkeypatch.setenv("SLIMEDGE_RECURRENCE", "quick")
    with pytest.raises(ValueError, match="SLIMEDGE_RECURRENCE"):
        model(x)
    monkeypatch.delenv("SLIMEDGE_RECURRENCE")
    with pytest.raises(ValueError, match="impl"):
        SlimLSTM("LSTM6", 3, 4, impl="fast")
    model.requires_grad_(False)
    x = x.detach()
    traced = torch.jit.trace(lambda t: model(t)[0], x, check_trace=False)
    assert "FusedLayer" not in str(traced.graph)  # tracing records the reference ops
    assert torch.allclose(traced(x), model(x)[0], atol=1e-6)


@pytest.mark.parametrize("name, dtype", [("LSTM10", torch.float32), ("LSTM0", torch.float32),
                                         ("LSTM_C6", torch.float32), ("LSTM4a", torch.float64)])
def test_reused_buffers_never_overwrite_what_is_still_held(name, dtype, monkeypatch):
    """Every buffer pooled (fused_cpu._Buffers; float64 runs the torch engine): steps in a row
    equal the reference loop and reuse the memory, an output held across calls keeps its values,
    and a graph kept with retain_graph=True gives the same gradients after other calls."""
    monkeypatch.setattr(fused_cpu._Buffers, "MIN_BYTES", 0)
    torch.manual_seed(0)
    ref = SlimLSTM(name, 5, 16, 2, impl="reference").to(dtype)
    fused = SlimLSTM(name, 5, 16, 2, impl="fused").to(dtype)
    fused.load_state_dict(ref.state_dict())
    # the last batch is shorter: it takes the front of the same buffers
    xs = [torch.randn(4, T, 5, dtype=dtype, requires_grad=True) for T in (9, 9, 6)]
    tol = 2e-5 if dtype == torch.float32 else 1e-10
    for x, lengths in zip(xs, [None, torch.tensor([9, 3, 9, 1]), None]):
        got, want = _train_grads(fused, x, lengths), _train_grads(ref, x, lengths)
        for k, (p, q) in enumerate(zip(want, got)):
            assert float((p - q).detach().abs().max()) <= tol * (float(p.detach().abs().max()) + 1e-12), k
        del got  # nothing of this step is held now
    pools = [cell._fused_plan.__dict__["_buffers"].kept for cell in fused.cells]
    assert all(len(kept) == 1 for pool in pools for kept in pool.values())
    assert {tag for tag, _ in pools[0]} >= {"A", "S", "C", "dZ"}

    with torch.no_grad():
        y1, _ = fused(xs[0])
        held = y1.clone()
        y2, _ = fused(xs[1])
    assert torch.equal(y1, held) and not torch.equal(y1, y2)

    y, (h, c) = fused(xs[0])
    loss = y.square().mean() + h.sum() + c.mean()
    first = torch.autograd.grad(loss, list(fused.parameters()), retain_graph=True)
    _train_grads(fused, xs[1])
    _train_grads(fused, xs[2], torch.tensor([2, 6, 6, 4]))
    again = torch.autograd.grad(loss, list(fused.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(first, again))


def test_pooled_buffers_after_inference_mode_and_outputs_changed_in_place(monkeypatch):
    monkeypatch.setattr(fused_cpu._Buffers, "MIN_BYTES", 0)
    assert fused_cpu._POOLING  # this torch counts storage users as the pool expects
    torch.manual_seed(0)
    model = SlimLSTM("LSTM10", 3, 8)
    x = torch.randn(2, 5, 3)
    with torch.inference_mode():
        model(x)
    y = model(x)[0]  # buffers made in inference mode would refuse this forward's writes
    y.sum().backward()
    y = model(x)[0]
    y.mul_(2)  # an output is an ordinary tensor
    with torch.no_grad():
        model(x)[0].add_(1)


def test_a_model_that_ran_copies_and_pickles_without_its_buffers(monkeypatch):
    import copy
    import io

    monkeypatch.setattr(fused_cpu._Buffers, "MIN_BYTES", 0)
    model = SlimLSTM("LSTM10", 3, 8)
    x = torch.randn(2, 5, 3)
    y = model(x)[0]
    y.sum().backward()
    assert model.cells[0]._fused_plan.__dict__["_buffers"].kept
    saved = io.BytesIO()
    torch.save(model, saved)
    saved.seek(0)
    for other in (copy.deepcopy(model), torch.load(saved, weights_only=False)):
        assert not other.cells[0]._fused_plan.__dict__["_buffers"].kept
        assert torch.equal(other(x)[0], y)


def test_fused_training_is_deterministic():
    def run():
        torch.manual_seed(3)
        model = SlimLSTM("LSTM11", 5, 16, 2, dropout=0.3)
        opt = torch.optim.Adam(model.parameters(), 1e-2)
        for _ in range(3):
            y, _ = model(torch.randn(8, 12, 5), lengths=torch.randint(1, 13, (8,)))
            opt.zero_grad()
            y.square().mean().backward()
            opt.step()
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    assert torch.equal(run(), run())


# ---- the Triton kernels, on the CPU through Triton's interpreter ---------------------------------
# without U, then with U: one launch per sequence each way (U·h inside the kernels), and for the
# structures with U also one launch per step beside an addmm_ (hidden sizes over MAX_N_IN_KERNEL)
STRUCTURES = ["LSTM10", "LSTM11", "LSTM_C6"] + [
    dict(i="Wu", f=0.0, o="b", c="u"), dict(i=1.0, f="Wub", o="W", c="Wb"),
    dict(i="ub", f=0.25, o=0.5, c="Wu")] + ["LSTM0", "LSTM5", "LSTM4a", "LSTM6"] + [
    dict(i="Ub", f="u", o=1.0, c="WU"), dict(i="WUb", f=0.5, o="Wu", c="Wub")]


@pytest.mark.parametrize("which,in_kernel", [(w, True) for w in range(len(STRUCTURES))] +
                         [(w, False) for w in range(6, len(STRUCTURES))])
def test_triton_kernels_equal_torch_engine_in_interpreter(which, in_kernel, monkeypatch):
    pytest.importorskip("triton")
    os.environ["TRITON_INTERPRET"] = "1"  # read when the kernels are defined: before the import
    from slimedge.models import fused_triton

    spec = STRUCTURES[which]
    spec = variants.get(spec) if isinstance(spec, str) else variants.define("Mine", **spec)
    if not in_kernel:
        monkeypatch.setattr(fused_triton, "MAX_N_IN_KERNEL", 4)
    assert fused_triton.supports(spec, 5) == (which < 6 or in_kernel)
    launches = []
    for name in ("_forward_kernel", "_backward_kernel"):  # count the launches, then launch
        kernel = getattr(fused_triton, name)
        monkeypatch.setattr(fused_triton, name, _Counted(kernel, launches))
    monkeypatch.setattr(fused_cpu, "FAILED", {})
    for k, acts in enumerate(ACTS[:3]):
        lengths = [5, 2, 4] if k != 1 else None
        _, inputs, mask, plan = _layer_inputs(spec, acts, n=5, T=5, lengths=lengths, seed=k)
        results = []
        for engine in ("torch", "triton"):
            launches.clear()
            out = _FusedLayer.apply(*inputs, mask, plan, engine)
            loss = (out[0] * torch.linspace(-1, 1, 5, dtype=torch.float64)).sum() \
                + out[1].square().sum() + 0.3 * out[2].sum()
            grads = torch.autograd.grad(loss, [t for t in inputs if t is not None])
            results.append([*out, *grads])
        # one launch each way for the whole sequence, or one per step (T = 5) each way
        assert len(launches) == (2 if fused_triton.supports(spec, 5) else 10)
        assert "triton" not in fused_cpu.FAILED, fused_cpu.FAILED
        for j, (p, q) in enumerate(zip(*results)):
            # the kernels' fixed constants (0.2 of hard_sigmoid, fixed gates) are float32
            torch.testing.assert_close(q, p, atol=1e-6, rtol=1e-6, msg=f"{spec.name} {acts} {j}")
    assert fused_cpu.ENGINES["triton"] == (fused_triton.triton_forward, fused_triton.triton_backward)


class _Counted:
    """A Triton kernel whose launches (kernel[grid](...)) are counted."""

    def __init__(self, kernel, launches: list):
        self.kernel, self.launches = kernel, launches

    def __getitem__(self, grid):
        self.launches.append(grid)
        return self.kernel[grid]


@pytest.mark.gpu  # deselected without a CUDA device (tests/conftest.py)
@pytest.mark.parametrize("n", [128, 160])  # U·h in the kernels, then per step beside cuBLAS
def test_triton_engine_on_a_gpu_equals_reference(n):
    """On a real GPU: every catalogue variant's outputs and gradients through the Triton kernels
    (float32) against the reference loop on the CPU (float64), padded batch, two layers."""
    pytest.importorskip("triton")
    for name in variants.VARIANTS:
        torch.manual_seed(0)
        ref = SlimLSTM(name, 28, n, 2, impl="reference").double()
        gpu = SlimLSTM(name, 28, n, 2, impl="fused").cuda()
        gpu.load_state_dict(ref.state_dict())
        x = torch.randn(32, 28, 28, dtype=torch.float64).requires_grad_()
        lengths = torch.randint(1, 29, (32,))
        lengths[0] = 28
        xg = x.detach().float().cuda().requires_grad_()
        a, b = _train_grads(ref, x, lengths), _train_grads(gpu, xg, lengths.cuda())
        assert gpu._engine(xg) == "triton" and "triton" not in fused_cpu.FAILED, fused_cpu.FAILED
        for k, (p, q) in enumerate(zip(a, b)):
            scale = float(p.detach().abs().max()) + 1e-12
            assert float((p - q.double().cpu()).detach().abs().max()) <= 1e-4 * scale, (name, n, k)


def test_an_engine_that_fails_falls_back_to_torch_with_a_warning(monkeypatch):
    def broken(*args):
        raise RuntimeError("no kernel here")

    monkeypatch.setitem(fused_cpu.ENGINES, "broken", (broken, broken))
    monkeypatch.setattr(fused_cpu, "FAILED", {})
    spec = variants.get("LSTM11")
    _, inputs, mask, plan = _layer_inputs(spec, ACTS[0], lengths=[4, 2, 3])
    want = _FusedLayer.apply(*inputs, mask, plan, "torch")
    with pytest.warns(RuntimeWarning, match="broken engine failed .*no kernel here"):
        got = _FusedLayer.apply(*inputs, mask, plan, "broken")
    assert all(torch.equal(a, b) for a, b in zip(got, want)) and "broken" in fused_cpu.FAILED
    with pytest.raises(RuntimeError, match="no kernel"):  # the torch engine's own errors surface
        monkeypatch.setitem(fused_cpu.ENGINES, "torch", (broken, broken))
        _FusedLayer.apply(*inputs, mask, plan, "torch")
