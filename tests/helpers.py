"""Test helpers: checkpoints built from the independent reference's random weights (no torch),
and running code in a fresh Python with torch blocked."""
import contextlib
import os
import subprocess
import sys
import threading
import zlib

import numpy as np

import reference as ref
from slimedge import checkpoint


def seeded(*key) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32("-".join(map(str, key)).encode()))


def make_checkpoint(path, variant, m, n, layers=1, *, classes=None, norm=True, seed=0,
                    gate_activation="sigmoid", activation="tanh"):
    """Write a checkpoint with random weights; returns (path, weights per layer, extra tensors)."""
    rng = seeded(variant, m, n, layers, classes, seed)
    weights = [ref.random_weights(variant, m if k == 0 else n, n, rng, scale=1.0 / np.sqrt(n))
               for k in range(layers)]
    tensors = {f"layers.{k}.{name}": w for k, lw in enumerate(weights) for name, w in lw.items()}
    config = {"kind": "slim_lstm", "lstm": {"variant": {"name": variant}, "input_size": m,
                                            "hidden_size": n, "num_layers": layers,
                                            "gate_activation": gate_activation,
                                            "activation": activation}}
    extra = {}
    if classes:
        extra = {"head.weight": rng.normal(size=(classes, n)) / np.sqrt(n),
                 "head.bias": rng.normal(size=classes) * 0.1}
        config.update(kind="classifier", head={"num_classes": classes,
                                               "labels": [str(k) for k in range(classes)]})
        if norm:
            extra.update({"norm.mean": rng.normal(size=m), "norm.std": rng.uniform(0.5, 2.0, m)})
            config["normalization"] = {"kind": "standard"}
    tensors.update(extra)
    checkpoint.write(path, config, tensors)
    # checkpoints hold float32: give the reference exactly the stored values
    f32 = lambda a: np.asarray(a, np.float32).astype(np.float64)  # noqa: E731
    weights = [{k: f32(v) for k, v in lw.items()} for lw in weights]
    return path, weights, {k: f32(v) for k, v in extra.items()}


def reference_outputs(variant, weights, extra, frames, h0=None, c0=None, **kw):
    """Float64 per-step outputs y (T, B, K or n) and final (h, c) from tests/reference.py."""
    x = np.asarray(frames, np.float64)
    if "norm.mean" in extra:
        x = (x - extra["norm.mean"]) / extra["norm.std"]
    out, h, c = ref.sequence(variant, weights, x, h0, c0, **kw)
    if "head.weight" in extra:
        out = out @ extra["head.weight"].T + extra["head.bias"]
    return out, h, c


def run_without_torch(code: str, *, also: tuple[str, ...] = (), timeout: float = 120) -> str:
    """Run ``code`` in a fresh Python in which ``import torch`` (and of each module in ``also``)
    fails; returns its stdout, and fails the test with its stderr when it exits non-zero."""
    blocked = "".join(f"sys.modules[{m!r}] = None\n" for m in ("torch", *also))
    prelude = "import sys\n" + blocked  # any import of a blocked module now fails
    out = subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True,
                         timeout=timeout)
    assert out.returncode == 0, out.stderr
    return out.stdout


def in_threads(work, n: int = 8) -> list:
    """``work(i)`` for i in range(n), each in its own thread, all released at once by a barrier;
    the results in order (for checking threads against a serial run)."""
    results: list = [None] * n
    barrier = threading.Barrier(n)

    def target(i):
        barrier.wait()
        results[i] = work(i)

    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


@contextlib.contextmanager
def environ(values: dict[str, str]):
    """Set environment variables for the block, then put back what was there (or nothing)."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def c_runner(path):
    """A C export compiled and stepped by the runtime's ``c`` backend, as export validation runs
    it: ``run(feeds) -> outputs`` for float32 x (B, m), h, c (L, B, n) of any batch."""
    from slimedge.exporters.validate import open_file

    return open_file(path, "c").run
