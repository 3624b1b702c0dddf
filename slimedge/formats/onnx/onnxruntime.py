"""The ``onnxruntime`` backend: an exported ``.onnx`` step graph in an InferenceSession.

Each binding binds its own preallocated NumPy buffers to the session with IO binding (OrtValues
over the arrays' memory), so a step is one ``run_with_iobinding`` that reads the inputs in place
and writes the outputs in place: no per-step allocation or feed dictionaries. Two IO bindings per
binding, one for each arrangement of the state arrays, so the new state becomes the next input
without a copy (``advance``). One session serves
every binding; onnxruntime's ``Run`` is thread-safe. ``threads`` sets the session's intra-op
threads (inter-op: 1); the CUDA provider is used when onnxruntime's GPU build is installed (or
``device="cuda"``), with the CPU provider as fallback.

A dynamically quantised graph (``DynamicQuantizeLinear``, one activation scale per call) is
stepped one row at a time, so that a stream's outputs never depend on the other streams in its
batch (stepped together, a 16-stream batch moved outputs by 40% of their size).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

from ...errors import UsageError
from ..binding import METADATA_KEY, Buffers, ModelFileError, check_io, parse_config, sizes


def available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def open(path: Path, *, threads: int | None = None, device: str | None = None) -> "Session":
    return Session(Path(path), threads, device)


class Session:
    def __init__(self, path: Path, threads: int | None, device: str | None) -> None:
        import onnxruntime as ort

        have_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
        if device is None:
            device = "cuda" if have_cuda else "cpu"
        if device not in ("cpu", "cuda"):
            raise UsageError(f"the onnxruntime backend runs on 'cpu' or 'cuda', not {device!r}")
        if device == "cuda" and not have_cuda:
            raise UsageError("device 'cuda' asked for, but this onnxruntime build has no CUDA "
                             "provider (install onnxruntime-gpu)")
        providers = (["CUDAExecutionProvider"] if device == "cuda" else []) + ["CPUExecutionProvider"]
        opts = ort.SessionOptions()
        opts.inter_op_num_threads = 1
        if threads:
            opts.intra_op_num_threads = int(threads)
        opts.log_severity_level = 3
        from ..._io import read_regular
        from .reader import check_no_external_data

        check_no_external_data(read_regular(path, "model file"), path)
        try:
            self._session = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
        except Exception as e:  # onnxruntime raises its own exception types for a bad file
            raise ModelFileError(f"{path}: not a loadable ONNX model (truncated or another kind "
                                 f"of file?): {str(e).strip()}") from None
        try:
            meta = self._session.get_modelmeta().custom_metadata_map
        except UnicodeDecodeError as e:  # a damaged metadata string
            raise ModelFileError(f"{path}: its metadata is not UTF-8 text ({e.reason}); the file "
                                 f"is damaged") from None
        self.config = parse_config(path, meta.get(METADATA_KEY), "ONNX model")
        if (self.config.get("export") or {}).get("state_layout", "layers_first") != "layers_first":
            raise ModelFileError(f"{path}: a Triton repository's model (its state h, c batch "
                                 f"first, for Triton's implicit state), not a step graph the "
                                 f"runtime steps; load the .onnx export it was made from (the "
                                 f"repository's *_python model holds one)")
        check_io(path, self.config,
                 {i.name: tuple(i.shape) for i in self._session.get_inputs()},
                 {o.name: tuple(o.shape) for o in self._session.get_outputs()})
        for i in self._session.get_inputs():
            if i.type != "tensor(float)":
                raise ModelFileError(f"{path}: input {i.name!r} is {i.type}, expected tensor(float)")
        self.device = device
        self.detail = (f"onnxruntime {ort.__version__}, "
                       f"{' + '.join(p for p in self._session.get_providers())}")
        self._ort = ort
        # DynamicQuantizeLinear takes one scale for its whole input: in a batch, one stream's
        # frame would change the others' outputs. Such graphs step each row on its own.
        export = self.config.get("export") or {}
        self.rows_independent = export.get("quantize") != "dynamic"
        if not self.rows_independent:
            self.detail += ", rows stepped one at a time (dynamic quantisation scales per call)"

    @property
    def ort_session(self):
        """The underlying ``onnxruntime.InferenceSession``."""
        return self._session

    def bind(self, batch: int) -> Buffers:
        if batch > 1 and not self.rows_independent:
            return RowwiseBinding(self, batch, *sizes(self.config))
        return Binding(self, batch, *sizes(self.config))


class Binding(Buffers):
    def __init__(self, session: Session, batch: int, *dims: int) -> None:
        super().__init__(batch, *dims)
        ort, sess = session._ort, session._session
        self._values = []  # keep the OrtValues (views of our arrays) alive
        self._ios = []
        for arrays in self.arrangements():
            io = sess.io_binding()
            for k, name in enumerate(("x", "h", "c", "y", "h_next", "c_next")):
                v = ort.OrtValue.ortvalue_from_numpy(arrays[k])
                self._values.append(v)
                (io.bind_ortvalue_input if k < 3 else io.bind_ortvalue_output)(name, v)
            self._ios.append(io)
        try:  # the C call itself: the Python wrapper only forwards (about 1 µs a step)
            self._run, self._args = sess._sess.run_with_iobinding, [io._iobinding for io in self._ios]
        except AttributeError:  # pragma: no cover - another onnxruntime layout
            self._run, self._args = sess.run_with_iobinding, self._ios

    def run(self) -> None:
        self._run(self._args[self.flipped], None)


class RowwiseBinding(Buffers):
    """A batch stepped one row at a time through a batch-1 binding, for graphs whose rows are not
    independent, so a stream's outputs never depend on the other streams in its batch."""

    def __init__(self, session: Session, batch: int, *dims: int) -> None:
        super().__init__(batch, *dims)
        self._one = Binding(session, 1, *dims)

    def run(self) -> None:
        one = self._one
        for i in range(self.batch):
            one.x[0] = self.x[i]
            one.h[:, 0] = self.h[:, i]
            one.c[:, 0] = self.c[:, i]
            one.run()
            self.y[i] = one.y[0]
            self.h_next[:, i] = one.h_next[:, 0]
            self.c_next[:, i] = one.c_next[:, 0]


def run_graph(path, *, threads: int = 1):
    """``run(feeds) -> outputs`` by name for any ONNX graph at ``path`` (float32 feeds), one
    onnxruntime call per run on the CPU: for graphs the streaming runtime does not step (a
    sequence graph, validated on export)."""
    import numpy as np
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = int(threads)
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]

    def run(feeds: dict) -> dict:
        feeds = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in feeds.items()}
        return dict(zip(names, sess.run(names, feeds)))
    return run
