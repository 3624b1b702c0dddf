"""The examples as a newcomer meets them (issue 25): examples/mcu's INDEX replayed utterance 0
after the first build (build/frames.h did not depend on it), and its frames.py failed with a raw
ModuleNotFoundError under a python3 without slimedge."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from slimedge import zoo

ROOT = Path(__file__).resolve().parents[1]
MCU = ROOT / "examples" / "mcu"


def _make_frames(build: Path, index: int) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run(["make", "-C", str(MCU), f"BUILD={build}", f"INDEX={index}",
                        f"MODEL={zoo.default_model_path('c')}", f"PYTHON={sys.executable}",
                        f"{build}/frames.h"], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return (build / "frames.h").read_text()


def test_mcu_index_rebuilds_the_frames(tmp_path):
    if shutil.which("make") is None:
        pytest.skip("no make")
    first = _make_frames(tmp_path, 0)
    assert "test utterance 0 " in first
    second = _make_frames(tmp_path, 1)
    assert "test utterance 1 " in second and second != first
    assert _make_frames(tmp_path, 0) == first  # and back again


def test_mcu_frames_without_slimedge_names_the_fix(tmp_path):
    code = ("import runpy, sys; sys.modules['slimedge'] = None; "
            f"sys.argv = ['frames.py', '-o', {str(tmp_path / 'f.h')!r}]; "
            f"runpy.run_path({str(MCU / 'frames.py')!r}, run_name='__main__')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert "frames.py needs slimedge" in r.stderr and "PYTHON=/path/to/.venv/bin/python" in r.stderr
