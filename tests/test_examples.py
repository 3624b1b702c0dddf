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


def _elf_sizes(elf: Path) -> tuple[int, int]:
    """(code and constants, .bss) of a firmware: arm-none-eabi-size's text + data, and bss."""
    out = subprocess.run(["arm-none-eabi-size", str(elf)], capture_output=True, text=True,
                         check=True).stdout.splitlines()[1].split()
    return int(out[0]) + int(out[1]), int(out[2])


def test_mcu_example_readme_runs_as_written(tmp_path):
    """examples/mcu's commands, as its README writes them, in a copy of the folder: the float-API
    firmware and the integer-only one (the firmware used the float API even for an int8 export,
    so no example showed the integer path on a device) each print the README's result; the
    integer one links no floating-point code (no soft-float helper, no FPU instruction); the
    README's image sizes are these builds' (with the compiler it names)."""
    from slimedge.devices import toolchains

    for tool in ("make", "arm-none-eabi-gcc", "arm-none-eabi-size", "arm-none-eabi-nm",
                 "qemu-system-arm"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (.ci/run installs it)")
    work = tmp_path / "mcu"
    shutil.copytree(MCU, work, ignore=shutil.ignore_patterns("build"))
    readme = (work / "README.md").read_text()
    install, commands = _blocks(work / "README.md", "sh")
    assert install.startswith("apt-get install -y --no-install-recommends ")  # needs root: not run
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    for name, run in (("slimedge", f'"{sys.executable}" -m slimedge'), ("python3", f'"{sys.executable}"')):
        (bin_ / name).write_text(f'#!/bin/sh\nexec {run} "$@"\n')  # an environment with slimedge
        (bin_ / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", commands], cwd=work, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    import re

    (printed,) = re.findall(r"^```\n(frames: .*?)^```", readme, re.S | re.M)
    results = [line for line in r.stdout.splitlines()
               if line.startswith(("frames: ", "predicted: ", "expected: "))]
    assert results == printed.splitlines() * 2, r.stdout  # make run, then make run-int
    elf, elf_int = work / "build" / "firmware.elf", work / "build" / "firmware-int.elf"
    symbols = subprocess.run(["arm-none-eabi-nm", str(elf_int)], capture_output=True, text=True,
                             check=True).stdout
    floating = re.findall(r"\b(__aeabi_[fd]\w*|__\w*(?:sf|df)\w*|\w*_quantize_input|\w*_step_io)\b",
                          symbols)
    assert not floating, floating
    assert "_step_q" in symbols
    asm = subprocess.run(["arm-none-eabi-objdump", "-d", str(elf_int)], capture_output=True,
                         text=True, check=True).stdout
    assert not re.search(r"\tv(add|sub|mul|div|ldr|str|cvt|mov)\.?f?", asm)  # no FPU instruction
    # the README's sizes, with the compiler it names
    if " 12.2." in toolchains.version("arm-none-eabi-gcc"):
        rows = {name: (flash, bss) for name, flash, bss in re.findall(
            r"^\| `(firmware[-\w]*\.elf)` .*?\| full integer .*?\| ([\d,]+) bytes \| ([\d,]+) bytes",
            readme, re.M)}
        assert set(rows) == {"firmware.elf", "firmware-int.elf"}
        for name, path in (("firmware.elf", elf), ("firmware-int.elf", elf_int)):
            flash, bss = rows[name]
            assert _elf_sizes(path) == (int(flash.replace(",", "")), int(bss.replace(",", "")))
