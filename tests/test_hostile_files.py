"""Hostile files and options (issue 22, items 5, 6, 10): each is opened in a child process under
a memory limit and a timeout, and must be refused with a SlimedgeError naming the file, before
anything large is allocated or anything blocks. The files are small."""
import os
import struct
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

from helpers import make_checkpoint
from slimedge import exporters, formats, runtime
from slimedge.errors import ModelFileError, UsageError

MEMORY = 1536 << 20  # address space of the child: far below what the unchecked files take
TIMEOUT = 60


def child(code: str, timeout: float = TIMEOUT) -> str:
    """Run ``code`` in a fresh Python under MEMORY and TIMEOUT; returns the SlimedgeError it
    raised as "REFUSED <class>: <message>" (or "OK"). A traceback, crash or hang fails the test."""
    prelude = textwrap.dedent(f"""\
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, ({MEMORY}, {MEMORY}))
        from slimedge.errors import SlimedgeError
        try:
        """)
    body = textwrap.indent(textwrap.dedent(code), "    ")
    tail = ("\nexcept SlimedgeError as e:\n    print('REFUSED', type(e).__name__ + ':', e)\n"
            "else:\n    print('OK')\n")
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", prelude + body + tail], capture_output=True,
                         text=True, timeout=timeout, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip()


def tflite_with_metadata(path, entries: int, data: int) -> None:
    """A TFLite flatbuffer whose ``entries`` Metadata entries all name one buffer of ``data``
    bytes (a reader copying each entry's bytes takes entries x data)."""
    out = bytearray(struct.pack("<I", 28) + b"TFL3")
    out += struct.pack("<9H", 18, 12, 0, 0, 0, 0, 4, 0, 8) + b"\0\0"  # Model vtable at 8
    vec_buffers, vec_meta = 40, 48
    out += struct.pack("<iII", 28 - 8, vec_buffers - 32, vec_meta - 36)  # Model table at 28
    m0 = vec_meta + 4 + 4 * entries  # Buffer vtable, then the Buffer table
    out += struct.pack("<II", 1, (m0 + 8) - (vec_buffers + 4))
    m1 = m0 + 16  # Metadata vtable, then the tables
    tables = [m1 + 8 + 12 * k for k in range(entries)]
    out += struct.pack("<I", entries) + b"".join(
        struct.pack("<I", t - (vec_meta + 4 + 4 * k)) for k, t in enumerate(tables))
    strings = m1 + 8 + 12 * entries
    names = [f"m{k}".encode() for k in range(entries)]
    name_at, at = [], strings
    for n in names:
        name_at.append(at)
        at += (4 + len(n) + 1 + 3) // 4 * 4
    data_at = at
    out += struct.pack("<3H", 6, 8, 4) + b"\0\0"
    out += struct.pack("<iI", 8, data_at - (m0 + 8 + 4))
    out += struct.pack("<4H", 8, 12, 4, 8)
    for k, t in enumerate(tables):
        out += struct.pack("<iII", t - m1, name_at[k] - (t + 4), 0)
    for n in names:
        blob = struct.pack("<I", len(n)) + n + b"\0"
        out += blob + b"\0" * ((-len(blob)) % 4)
    assert len(out) == data_at
    out += struct.pack("<I", data) + b"\x01" * data
    path.write_bytes(bytes(out))


@pytest.mark.parametrize("entries,data,message", [
    (6_000, 1_000, "6,000 Metadata entries"),
    (1_000, 700_000, "Metadata entries hold more bytes"),
])
def test_a_tflite_file_whose_metadata_would_take_gigabytes(tmp_path, entries, data, message):
    path = tmp_path / "bomb.tflite"
    tflite_with_metadata(path, entries, data)
    assert path.stat().st_size < 1 << 20
    got = child(f"from slimedge import formats\nformats.info({str(path)!r})")
    assert got.startswith("REFUSED ModelFileError:") and "bomb.tflite" in got and message in got, got


def test_an_npz_zip_bomb_is_refused_before_it_is_inflated(tmp_path):
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        with z.open("X.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(
                f, {"descr": "<f4", "fortran_order": False, "shape": (1000, 100, 200)})
            zeros = bytes(1 << 20)
            for _ in range(80_000_000 // len(zeros)):
                f.write(zeros)
        z.writestr("y.npy", b"")
    assert path.stat().st_size < 1 << 20
    got = child(f"from slimedge.data.npz import load_npz\nload_npz({str(path)!r})")
    assert got.startswith("REFUSED DataError:") and "bomb.npz" in got and "zip bomb" in got, got


def test_an_npz_with_thousands_of_members_is_refused(tmp_path):
    path = tmp_path / "many.npz"
    np.savez(path, **{f"a{k}": np.zeros(1) for k in range(1000)}, X=np.zeros((2, 3)), y=[0, 1])
    got = child(f"from slimedge.data.npz import load_npz\nload_npz({str(path)!r})")
    assert got.startswith("REFUSED DataError:") and "1,002 members" in got, got


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile")
    ckpt, _, _ = make_checkpoint(d / "m.safetensors", "LSTM1", 5, 8, 1, classes=3)
    return exporters.export(ckpt, d / "m.onnx", format="onnx").path


def test_fifos_are_refused_everywhere_a_model_is_read(tmp_path):
    fifo = tmp_path / "model.onnx"
    os.mkfifo(fifo)
    for code in (f"from slimedge import formats\nformats.info({str(fifo)!r})",
                 f"from slimedge import runtime\nruntime.load({str(fifo)!r})"):
        got = child(code)
        assert got.startswith("REFUSED UsageError:") and "a FIFO" in got, got
    out = subprocess.run([sys.executable, "-m", "slimedge", "profile", str(fifo)], text=True,
                         capture_output=True, timeout=TIMEOUT,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.returncode == 2 and "FIFO" in out.stdout + out.stderr, out.stdout + out.stderr


def test_threads_and_batch_sizes_are_capped(onnx_file):
    cap = formats.LIMITS["threads"]
    for threads in (0, cap + 1, 100_000):
        with pytest.raises(UsageError, match=f"threads must be at least 1 and at most {cap}"):
            runtime.load(onnx_file, "onnxruntime", threads=threads)
    got = child(f"from slimedge import runtime\n"
                f"runtime.load({str(onnx_file)!r}, 'onnxruntime', threads=100_000)")
    assert got.startswith("REFUSED UsageError:"), got
    model = runtime.load(onnx_file, "onnxruntime", threads=1)
    for batch in (-1, formats.LIMITS["batch"] + 1, 10**12, 2.5):
        with pytest.raises(UsageError, match="number of streams must be a whole number"):
            model.streams(batch)
    for batch in (0, formats.LIMITS["batch"] + 1, 10**12):
        with pytest.raises(UsageError, match="batch"):
            model.bind(batch)
    assert model.streams(3).step(np.zeros((3, 5), np.float32)).shape == (3, 3)


def test_threads_are_capped_on_the_command_line(onnx_file, tmp_path):
    """`slimedge run`, `profile` and `train` refuse --threads above the cap with exit 2."""
    from typer.testing import CliRunner

    from slimedge.cli import app

    cap = formats.LIMITS["threads"]
    for args in (["run", str(onnx_file), "--input", str(tmp_path / "x.npy")],
                 ["profile", str(onnx_file)], ["train", "-o", str(tmp_path / "t.safetensors")]):
        r = CliRunner().invoke(app, [*args, "--threads", str(cap + 1)])
        out = " ".join(r.output.split())
        assert r.exit_code == 2 and "threads" in out and f"{cap}" in out, (args, r.output)


def test_string_class_names_map_in_linear_time(tmp_path):
    """Issue 22, item 12: y as class names was mapped by a list scan per entry (a 4.8 MB file took
    137 s); 200,000 names of 60,000 classes now take a few seconds (a minute before)."""
    path = tmp_path / "names.npz"
    y = np.array([f"c{k % 60_000:05d}" for k in range(200_000)])
    np.savez(path, X=np.zeros((len(y), 1, 1), np.float32), y=y)
    got = child(f"from slimedge.data.npz import load_npz\nload_npz({str(path)!r})", timeout=30)
    assert got == "OK" or "names.npz" in got, got


def reseal(path, data: bytes) -> None:
    """Write ``data`` with its digest recomputed: a hostile file that passes verification (the
    digest is not a signature)."""
    from slimedge import integrity

    path.write_bytes(data)
    integrity.seal(path)


def test_a_tflite_file_that_crashes_tflm_is_refused_not_a_crash(tmp_path):
    """Issue 22, item 10: one operator input pointing past the tensor table, the digest
    recomputed: TFLM reads out of bounds and kills the process (SIGSEGV). The file is tried in a
    separate process first, so loading it is a ModelFileError and this process lives on."""
    from slimedge.formats.tflite import micro

    if not micro.available():
        pytest.skip("tflite-micro not installed")
    ckpt, _, _ = make_checkpoint(tmp_path / "m.safetensors", "LSTM4a", 4, 6, 2, classes=3)
    good = exporters.export(ckpt, tmp_path / "m.tflite", format="tflite", compat="tflm").path
    data = bytearray(good.read_bytes())
    from tflite_micro.python.tflite_micro import runtime as rt

    ops = rt.convert_bytearray_to_object(bytearray(data)).subgraphs[0].operators
    inputs = next(list(map(int, op.inputs)) for op in ops if len(op.inputs) == 3)
    vector = struct.pack(f"<{1 + len(inputs)}i", len(inputs), *inputs)
    assert data.count(vector) == 1
    at = data.index(vector) + 4 * 2  # the operator's second input: a weight
    data[at:at + 4] = struct.pack("<i", 0x3FFFFFFF)
    bad = tmp_path / "crash.tflite"
    reseal(bad, bytes(data))
    crashed = subprocess.run(  # what TFLM does with it in a process of its own
        [sys.executable, "-c", "import sys\nfrom tflite_micro.python.tflite_micro import runtime\n"
         "runtime.Interpreter.from_bytes(open(sys.argv[1], 'rb').read(), arena_size=1 << 20)",
         str(bad)], capture_output=True, timeout=TIMEOUT)
    assert crashed.returncode < 0, crashed
    got = child(f"from slimedge import runtime\nruntime.load({str(bad)!r}, 'tflm')")
    assert got.startswith("REFUSED ModelFileError:") and "crash.tflite" in got, got
    assert "crashed (SIGSEGV)" in got, got
    x = np.random.default_rng(0).standard_normal((1, 5, 4)).astype(np.float32)
    want = runtime.load(good, "litert").run(x) if runtime.backend_module("litert").available() \
        else None
    got_good = runtime.load(good, "tflm").run(x)  # the file it came from still loads and runs
    if want is not None:
        np.testing.assert_allclose(got_good, want, atol=1e-5)


def test_an_onnx_graph_that_fails_in_a_step_is_a_clean_error(tmp_path):
    """Issue 22, item 9: a sealed ONNX file whose Gather reads a state row that is not there
    (index 7 of 2 layers) loads, and onnxruntime refuses its first step: a ModelFileError naming
    the file and what onnxruntime said, not onnxruntime's RuntimeError."""
    import onnx
    from onnx import numpy_helper

    from slimedge.errors import ModelFileError

    ckpt, _, _ = make_checkpoint(tmp_path / "m.safetensors", "LSTM4a", 5, 6, 2, classes=3)
    model = onnx.load(exporters.export(ckpt, tmp_path / "m.onnx", format="onnx").path)
    gathered = {n.input[1] for n in model.graph.node if n.op_type == "Gather"}
    index = next(t for t in model.graph.initializer if t.name in gathered)
    index.CopyFrom(numpy_helper.from_array(np.array(7, np.int64), index.name))
    bad = tmp_path / "gather.onnx"
    reseal(bad, model.SerializeToString())
    m = runtime.load(bad, "onnxruntime")
    with pytest.raises(ModelFileError, match=r"gather\.onnx: onnxruntime failed to run a step of "
                                             r"it: .*Gather.*out of"):
        m.run(np.zeros((1, 3, 5), np.float32))


def grafted_onnx(tmp_path, name, nodes, initializers, *, sparse=()):
    """A sealed step graph whose ``y`` is the export's plus ``extra * 0`` (``extra`` a (1, 3)
    tensor the grafted ``nodes`` compute): it steps to the export's answers while making
    onnxruntime compute whatever ``nodes`` ask for."""
    import onnx
    from onnx import helper, numpy_helper

    ckpt, _, _ = make_checkpoint(tmp_path / "g.safetensors", "LSTM4a", 5, 6, 2, classes=3)
    model = onnx.load(exporters.export(ckpt, tmp_path / "g.onnx", format="onnx").path)
    for node in model.graph.node:
        node.output[:] = ["y.export" if o == "y" else o for o in node.output]
    model.graph.initializer.extend(numpy_helper.from_array(np.asarray(v), k)
                                   for k, v in {**initializers, "zero": np.float32(0)}.items())
    model.graph.sparse_initializer.extend(sparse)
    model.graph.node.extend([*nodes, helper.make_node("Mul", ["extra", "zero"], ["extra0"]),
                             helper.make_node("Add", ["y.export", "extra0"], ["y"])])
    path = tmp_path / name
    reseal(path, model.SerializeToString())
    return path


def test_an_onnx_file_that_makes_a_tensor_from_values_is_refused(tmp_path):
    """Issue 22, item 5: a 4 kB sealed ONNX step graph whose ConstantOfShape asks onnxruntime for
    a 40,000 x 40,000 tensor (6.4 GB) in every step; refused before onnxruntime loads it."""
    from onnx import helper, numpy_helper

    nodes = [helper.make_node("ConstantOfShape", ["shape"], ["big"],
                              value=numpy_helper.from_array(np.ones(1, np.float32))),
             helper.make_node("Gather", ["big", "row"], ["big0"], axis=0),
             helper.make_node("Gather", ["big0", "cols"], ["extra"], axis=1)]
    path = grafted_onnx(tmp_path, "shape.onnx", nodes,
                        {"shape": np.array([40_000, 40_000]), "row": np.array([0]),
                         "cols": np.array([0, 1, 2])})
    assert path.stat().st_size < 8_000
    got = child(f"import numpy as np\nfrom slimedge import runtime\n"
                f"runtime.load({str(path)!r}, 'onnxruntime').run(np.zeros((1, 2, 5), np.float32))")
    assert got.startswith("REFUSED ModelFileError:") and "shape.onnx" in got, got
    assert "operator ConstantOfShape is not one a slimedge step graph uses" in got, got


def test_an_onnx_file_that_broadcasts_to_gigabytes_is_refused(tmp_path):
    """Issue 22, item 5: Add of a (20000, 1) and a (1, 20000) weight, allowed operators only,
    makes a 1.6 GB tensor from 160 kB; shape inference at batch 1 refuses it by its size."""
    from onnx import helper

    nodes = [helper.make_node("Add", ["col", "row"], ["big"]),
             helper.make_node("Gather", ["big", "first"], ["big0"], axis=0),
             helper.make_node("Gather", ["big0", "cols"], ["extra"], axis=1)]
    path = grafted_onnx(tmp_path, "broadcast.onnx", nodes,
                        {"col": np.ones((20_000, 1), np.float32),
                         "row": np.ones((1, 20_000), np.float32), "first": np.array([0]),
                         "cols": np.array([0, 1, 2])})
    got = child(f"import numpy as np\nfrom slimedge import runtime\n"
                f"runtime.load({str(path)!r}, 'onnxruntime').run(np.zeros((1, 2, 5), np.float32))")
    assert got.startswith("REFUSED ModelFileError:") and "broadcast.onnx" in got, got
    assert "'big' would hold 400,000,000 values at batch 1" in got, got


def test_an_onnx_sparse_initializer_is_refused(tmp_path):
    """Issue 22, item 5: a sparse initializer of 20,000 x 20,000 with one value, made dense on
    load (1.6 GB; onnxruntime's own limit is 2 GB)."""
    from onnx import helper, numpy_helper

    sparse = helper.make_sparse_tensor(
        numpy_helper.from_array(np.ones(1, np.float32), "sparse"),
        numpy_helper.from_array(np.array([0], np.int64), "sparse.indices"), [20_000, 20_000])
    nodes = [helper.make_node("Gather", ["sparse", "first"], ["s0"], axis=0),
             helper.make_node("Gather", ["s0", "cols"], ["extra"], axis=1)]
    path = grafted_onnx(tmp_path, "sparse.onnx", nodes,
                        {"first": np.array([0]), "cols": np.array([0, 1, 2])}, sparse=[sparse])
    got = child(f"from slimedge import runtime\nruntime.load({str(path)!r}, 'onnxruntime')")
    assert got.startswith("REFUSED ModelFileError:") and "sparse.onnx" in got, got
    assert "sparse initializers" in got, got


@pytest.mark.parametrize("shape,offsets,header_size", [
    ([100_000, 100_000], [0, 40_000_000_000], None),  # 40 GB stated, 8 bytes held
    ([100_000, 100_000], [0, 8], None),  # a shape its bytes do not fill
    ([2], [0, 8], 1 << 40),  # a header said to be 1 TB long
])
def test_a_safetensors_header_that_states_gigabytes_is_refused(tmp_path, shape, offsets,
                                                               header_size):
    """Issue 22, item 5 (a regression guard: the safetensors library already refuses these, as
    SECURITY.md says): a checkpoint whose header states more than the file holds is refused
    without allocating what it states."""
    import json

    header = json.dumps({"__metadata__": {"slimedge": "{}"},
                         "t": {"dtype": "F32", "shape": shape, "data_offsets": offsets}}).encode()
    path = tmp_path / "big.safetensors"
    path.write_bytes(struct.pack("<Q", header_size or len(header)) + header + bytes(8))
    for code in (f"from slimedge import checkpoint\ncheckpoint.read({str(path)!r})",
                 f"from slimedge import runtime\nruntime.load({str(path)!r}, 'numpy')"):
        got = child(code)
        assert got.startswith("REFUSED") and "big.safetensors" in got, got


@pytest.mark.parametrize("over,copies", [(0, 1), (1, 1), (0, 15), (0, 16)])
def test_the_onnx_size_bound_is_the_one_security_md_states(tmp_path, over, copies):
    """The bounds of SECURITY.md, to the value: at batch 1 a tensor may hold 8 (m + layers n + K)
    + P values (P: the values the initializers hold), and all of them together 16 times that. A
    broadcast Add of a (2, 1) and a (1, b) weight to exactly the bound loads and steps as the
    export does; one value more is refused; so are 16 more such tensors (15 load)."""
    import onnx
    from onnx import helper

    m, n, layers, k = 5, 6, 2, 3  # grafted_onnx's model
    ckpt, _, _ = make_checkpoint(tmp_path / "p.safetensors", "LSTM4a", m, n, layers, classes=k)
    base = exporters.export(ckpt, tmp_path / "p.onnx", format="onnx").path
    p0 = sum(int(np.prod(t.dims)) for t in onnx.load(base).graph.initializer)
    q = 8 * (m + layers * n + k) + p0 + 5  # + first (1), cols (3), zero (1)
    b = q + 2 + over  # 2 b = bound (+ 1) where bound = q + 2 + b
    nodes = [helper.make_node("Add", ["col", "row"], ["big"]),
             *(helper.make_node("Add", ["col", "row"], [f"big.{j}"]) for j in range(copies - 1)),
             helper.make_node("Gather", ["big", "first"], ["big0"], axis=0),
             helper.make_node("Gather", ["big0", "cols"], ["extra"], axis=1)]
    path = grafted_onnx(tmp_path, "edge.onnx", nodes,
                        {"col": np.ones((2, 1), np.float32), "row": np.ones((1, b), np.float32),
                         "first": np.array([0]), "cols": np.array([0, 1, 2])})
    bound = 8 * (m + layers * n + k) + sum(
        int(np.prod(t.dims)) for t in onnx.load(path).graph.initializer)
    assert 2 * b == bound + over
    x = np.random.default_rng(0).standard_normal((1, 4, m)).astype(np.float32)
    if over:
        with pytest.raises(ModelFileError, match=rf"'big' would hold {2 * b:,} values at batch 1, "
                                                 rf"more than the {bound:,}"):
            runtime.load(path, "onnxruntime")
    elif copies == 16:  # the export's own tensors and the gathers on top: more than 16 bounds
        with pytest.raises(ModelFileError, match=rf"its tensors would hold [\d,]+ values in all "
                                                 rf"at batch 1, more than the {16 * bound:,}"):
            runtime.load(path, "onnxruntime")
    else:
        np.testing.assert_array_equal(runtime.load(path, "onnxruntime").run(x),
                                      runtime.load(base, "onnxruntime").run(x))
