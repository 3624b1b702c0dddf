"""Run a repository's Python-backend model on the ``tritonserver`` that nvidia-pytriton bundles.

The full Triton server (with its onnxruntime backend) is a container, not a package; the
``nvidia-pytriton`` wheel ships a ``tritonserver`` binary with only the Python backend, and pins
numpy < 2, so it lives in a virtual environment of its own: ``make triton-env`` makes
``.venv-triton`` in the checkout (``$SLIMEDGE_TRITON_ENV`` names another) with the pinned
``scripts/triton-requirements.txt``. :class:`Server` starts that binary on free loopback ports
with the Python backend's stub for the environment's Python, loads only the ``*_python`` model
(the bundled binary cannot load the onnxruntime one), waits until it is ready, and stops it.
The stub process imports slimedge, numpy and the model's runtime backend from the environment
(``make triton-env`` installs this checkout into it, editable; the stub finds the environment as
its ``python3`` on the PATH).

    python -m slimedge.triton_server.bundled REPO MODEL_python     # serve until Ctrl-C
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from ..errors import MissingDependency, UsageError

ENV_VAR = "SLIMEDGE_TRITON_ENV"
CHECKOUT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_S = 60.0
_PROBE = ("import importlib.util, json, site, sys, sysconfig; s = importlib.util.find_spec("
          "'slimedge'); print(json.dumps({'version': '%d.%d' % sys.version_info[:2], 'site': "
          "site.getsitepackages(), 'libdir': sysconfig.get_config_var('LIBDIR'), 'ldlibrary': "
          "sysconfig.get_config_var('LDLIBRARY'), 'slimedge': s and s.submodule_search_locations"
          " and list(s.submodule_search_locations)}))")


def env_path() -> Path:
    """The virtual environment holding nvidia-pytriton and tritonclient."""
    return Path(os.environ.get(ENV_VAR) or CHECKOUT / ".venv-triton")


def env_python() -> Path:
    """That environment's Python; MissingDependency saying how to make it when it is missing."""
    py = env_path() / "bin" / "python"
    if not py.exists():
        raise MissingDependency(f"{env_path()}: no Triton environment (nvidia-pytriton and "
                                f"tritonclient in a venv of their own, numpy < 2): run `make "
                                f"triton-env` in the checkout, or set ${ENV_VAR} to one")
    return py


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """The bundled ``tritonserver`` serving ``models`` of ``repository`` on loopback ports
    (``http_port``, ``grpc_port``); a context manager that starts and stops it."""

    def __init__(self, repository: str | os.PathLike, models: list[str], *,
                 log: str | os.PathLike | None = None, extra_env: dict | None = None) -> None:
        self.repository, self.models = Path(repository), list(models)
        self.log_path, self.extra_env = log, dict(extra_env or {})
        self.process: subprocess.Popen | None = None
        self.http_port = self.grpc_port = 0
        self._workdir: tempfile.TemporaryDirectory | None = None

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def __enter__(self) -> "Server":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self, timeout: float = STARTUP_TIMEOUT_S) -> None:
        py = env_python()
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        probe = json.loads(subprocess.run([str(py), "-c", _PROBE], check=True, env=env,
                                          capture_output=True, text=True, cwd="/").stdout)
        mine = str(CHECKOUT / "slimedge")
        if mine not in (probe["slimedge"] or []):  # the stub imports the env's slimedge
            raise MissingDependency(f"{env_path()}: its Python imports slimedge from "
                                    f"{probe['slimedge'] or 'nowhere'}, not this checkout's "
                                    f"{mine}; run `make triton-env` here (it installs the "
                                    f"checkout into the env, editable)")
        site = Path(probe["site"][0])
        root = site / "pytriton" / "tritonserver"
        stub = root / "python_backend_stubs" / probe["version"] / "triton_python_backend_stub"
        if not stub.exists():
            raise MissingDependency(f"{env_path()}: nvidia-pytriton's tritonserver and a Python "
                                    f"backend stub for Python {probe['version']} are missing; "
                                    f"run `make triton-env`")
        self._workdir = tempfile.TemporaryDirectory(prefix="slimedge-triton-")
        backends = Path(self._workdir.name) / "backends"
        shutil.copytree(root / "backends", backends)
        shutil.copy2(stub, backends / "python" / "triton_python_backend_stub")
        libs = [str(site / "nvidia_pytriton.libs")]
        if probe["libdir"] and (Path(probe["libdir"]) / str(probe["ldlibrary"])).exists():
            libs.append(probe["libdir"])  # the stub embeds this Python's own libpython
        env["LD_LIBRARY_PATH"] = ":".join([*libs, *filter(None, [env.get("LD_LIBRARY_PATH")])])
        env["PATH"] = f"{py.parent}:{env['PATH']}"
        env.update(self.extra_env)
        self.http_port, self.grpc_port = free_port(), free_port()
        while self.grpc_port == self.http_port:
            self.grpc_port = free_port()
        cmd = [str(root / "bin" / "tritonserver"), f"--model-repository={self.repository}",
               f"--backend-directory={backends}", "--model-control-mode=explicit",
               *(f"--load-model={m}" for m in self.models), f"--http-port={self.http_port}",
               f"--grpc-port={self.grpc_port}", "--http-address=127.0.0.1",
               "--grpc-address=127.0.0.1", "--allow-metrics=false", "--exit-timeout-secs=10"]
        out = open(self.log_path, "wb") if self.log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        if out is not subprocess.DEVNULL:
            out.close()
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                tail = (Path(self.log_path).read_text(errors="replace")[-3000:]
                        if self.log_path else "(no log: pass log=PATH)")
                self.stop()
                raise RuntimeError(f"tritonserver did not become ready on {self.repository} "
                                   f"(exit {self.process.returncode}); its log ends:\n{tail}")
            time.sleep(0.1)

    def ready(self) -> bool:
        try:
            for m in self.models:
                url = f"http://127.0.0.1:{self.http_port}/v2/models/{m}/ready"
                with urllib.request.urlopen(url, timeout=1) as r:
                    if r.status != 200:
                        return False
            return True
        except (urllib.error.URLError, OSError):
            return False

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; returns the exit status."""
        p = self.process
        if p is not None and p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)  # the server and its Python stubs
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None
        return None if p is None else p.returncode


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 2:
        raise SystemExit("usage: python -m slimedge.triton_server.bundled REPOSITORY MODEL [MODEL ...]")
    repo = Path(args[0])
    for m in args[1:]:
        if not (repo / m / "config.pbtxt").is_file():
            raise SystemExit(str(UsageError(f"{repo / m}: no config.pbtxt (not a model of this "
                                            f"repository)")))
    with tempfile.TemporaryDirectory() as d, Server(repo, args[1:], log=Path(d) / "log") as s:
        print(f"tritonserver serving {', '.join(s.models)} from {repo}: HTTP "
              f"127.0.0.1:{s.http_port}, gRPC {s.grpc_url} (Ctrl-C stops it)", flush=True)
        try:
            s.process.wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
