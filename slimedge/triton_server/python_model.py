"""The Python-backend model of a slimedge Triton repository: one Stream per correlation id.

Triton's Python backend runs this in its stub process (the repository's ``model.py`` imports
:class:`TritonPythonModel`), so slimedge and the runtime backend of the model file must be
installed in that Python. The sequence batcher (oldest strategy) hands :meth:`execute` a list of
requests from different sequences, each with its frame ``x`` (1, m) and the controls START, END
and CORRID; :class:`Sequences` starts a fresh :class:`~slimedge.runtime.Stream` on START, steps
every request of the list in one ``Model.step_streams`` call, and drops a stream on END or after
``idle_s`` without a request (Triton drops the sequence then too). A request that cannot be
stepped (no state for its id, a frame of the wrong shape or with NaN/inf) gets its own error
response and leaves its stream's state as it was (zeros, if it carried START); the others in
the batch are stepped.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

SWEEP_EVERY_S = 1.0


class Sequences:
    """Each live sequence's stream by correlation id, stepped in batches."""

    def __init__(self, model, idle_s: float = 60.0, clock=time.monotonic) -> None:
        self.model, self.idle_s, self.clock = model, float(idle_s), clock
        self.streams: dict[int, list] = {}  # correlation id -> [Stream, last request time]
        self._swept = clock()

    def __len__(self) -> int:
        return len(self.streams)

    def step(self, corrids, starts, ends, frames) -> list:
        """One output (K,) or one error message (str) per request, in order. Requests of one
        sequence in one call are stepped in their order."""
        now = self.clock()
        if now - self._swept >= SWEEP_EVERY_S:
            self._sweep(now)
        m = self.model.input_size
        out: list = [None] * len(corrids)
        frames = [x if isinstance(x, np.ndarray) else np.asarray(x) for x in frames]
        shapes = [x.shape for x in frames]
        ok = [s in ((1, m), (m,)) for s in shapes]
        X = np.zeros((len(frames), m), np.float32)  # every frame of the right shape, one array
        if any(ok):
            rows = [i for i, good in enumerate(ok) if good]
            with np.errstate(over="ignore"):
                X[rows] = np.concatenate([frames[i].reshape(1, m) for i in rows])
        finite = np.isfinite(X).all(axis=1)
        group: list[tuple[int, int, object, bool]] = []
        seen: set[int] = set()
        for i, (cid, start, end) in enumerate(zip(corrids, starts, ends)):
            cid = int(cid)
            if cid in seen:  # a second request of one sequence: after the first is stepped
                self._run(group, X, out)
                group, seen = [], set()
            entry = self.streams.get(cid)
            if start:  # a fresh state, even when this request's frame is refused below
                entry = self.streams[cid] = [self.model.stream(), now]
            elif entry is None:
                out[i] = (f"sequence {cid}: no state (a sequence's first request carries START; "
                          f"one that ended, or sat idle over {self.idle_s:g} s, is dropped)")
                continue
            entry[1] = now
            if not (ok[i] and finite[i]):  # a refused frame leaves the state as it was
                out[i] = (f"sequence {cid}: input x has shape {shapes[i]}, expected (1, {m}) (one "
                          f"frame per request)" if not ok[i]
                          else f"sequence {cid}: input x holds NaN or inf")
                if end:  # Triton ends the sequence all the same
                    self.streams.pop(cid, None)
                continue
            seen.add(cid)
            group.append((i, cid, entry[0], bool(end)))
        self._run(group, X, out)
        return out

    def _run(self, group, X: np.ndarray, out) -> None:
        if not group:
            return
        rows = [g[0] for g in group]
        ys = self.model.step_streams([g[2] for g in group], X[rows])
        for (i, cid, _, end), y in zip(group, ys):
            out[i] = y
            if end:
                self.streams.pop(cid, None)

    def _sweep(self, now: float) -> None:
        self._swept = now
        for cid in [c for c, (_, last) in self.streams.items() if now - last > self.idle_s]:
            del self.streams[cid]


class TritonPythonModel:
    """The class Triton's Python backend instantiates (see the module's docstring)."""

    def initialize(self, args: dict) -> None:
        from slimedge import runtime

        config = json.loads(args["model_config"])
        params = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
        path = Path(args["model_repository"]) / str(args["model_version"]) / params["slimedge_model"]
        model = runtime.load(path, backend=params.get("slimedge_backend") or "auto",
                             threads=int(params.get("slimedge_threads") or 1))
        self.sequences = Sequences(model, float(params.get("slimedge_idle_s") or 60.0))

    def execute(self, requests):
        import triton_python_backend_utils as pb_utils

        def control(r, name):
            return pb_utils.get_input_tensor_by_name(r, name).as_numpy().reshape(-1)[0]

        frames = [pb_utils.get_input_tensor_by_name(r, "x").as_numpy() for r in requests]
        results = self.sequences.step([control(r, "CORRID") for r in requests],
                                      [control(r, "START") for r in requests],
                                      [control(r, "END") for r in requests], frames)
        responses = []
        for res in results:
            if isinstance(res, str):
                responses.append(pb_utils.InferenceResponse(output_tensors=[],
                                                            error=pb_utils.TritonError(res)))
            else:
                responses.append(pb_utils.InferenceResponse(
                    output_tensors=[pb_utils.Tensor("y", res[None].astype(np.float32))]))
        return responses

    def finalize(self) -> None:
        self.sequences.streams.clear()
