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


def _blocks(readme: Path, lang: str) -> list[str]:
    import re

    return re.findall(rf"^```{lang}\n(.*?)^```", readme.read_text(), re.S | re.M)


def test_c_example_readme_runs_as_written(tmp_path):
    """examples/c needed a frames.txt nobody said how to make (its snippet looped over an
    undefined `sequences`): its Python block writes it, then its commands run to a printed
    label per utterance."""
    for tool in ("make", "cc"):
        if shutil.which(tool) is None:
            pytest.skip(f"no {tool}")
    work = tmp_path / "c"
    shutil.copytree(ROOT / "examples" / "c", work)
    (shell,), (python,) = _blocks(work / "README.md", "sh"), _blocks(work / "README.md", "python")
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    (bin_ / "slimedge").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m slimedge "$@"\n')
    (bin_ / "slimedge").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-c", python], cwd=work, env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    r = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", shell], cwd=work, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    per_sequence = [line.split() for line in r.stdout.splitlines()
                    if len(line.split()) == 3 and all(w.isdigit() for w in line.split())]
    assert [int(s[0]) for s in per_sequence[:5]] == [0, 1, 2, 3, 4], r.stdout
    assert (work / "model.so").is_file()
