"""The C backend's trust boundary (issue 22): loading a C export compiles and runs code, so only
bytes the sealed ``.c`` covers are compiled (its ``.h`` and kernel header by the digests it
records), a prebuilt library beside it is never loaded to find out what it is, and the library
cache is private, keyed by everything that went in and checked before a library is loaded. Each
attack plants code that would leave a marker file if it ever ran."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from helpers import environ, make_checkpoint, seeded
from slimedge import integrity, ir, runtime
from slimedge.errors import CacheError, IntegrityError
from slimedge.exporters import c as cx
from slimedge.formats.c import reader as c_reader
from slimedge.formats.c import toolchain

M, N, K = 5, 8, 4


def planted_code(marker) -> str:
    """C that creates ``marker`` when its library is loaded (a constructor)."""
    return ("\n#include <stdio.h>\n__attribute__((constructor)) static void planted(void) {\n"
            f"    FILE *f = fopen(\"{marker}\", \"w\");\n    if (f) fclose(f);\n}}\n")


@pytest.fixture(scope="module")
def sealed(tmp_path_factory):
    """A sealed float C export (m.c, m.h, the kernel header) and its numpy reference."""
    d = tmp_path_factory.mktemp("sealed")
    ckpt, _, _ = make_checkpoint(d / "m.safetensors", "LSTM1", M, N, 1, classes=K)
    out = d / "export"
    out.mkdir()
    cx.write(ir.lower(ckpt, fold_normalization=True), out / "m.c")
    integrity.seal(out / "m.c")
    return out, runtime.load(ckpt, "numpy")


@pytest.fixture
def export(sealed, tmp_path, monkeypatch):
    """A fresh copy of the sealed export, with a private cache of this test."""
    monkeypatch.setenv(toolchain.ENV_CACHE, str(tmp_path / "cache"))
    monkeypatch.delenv(toolchain.ENV_PREBUILT, raising=False)
    d = tmp_path / "export"
    shutil.copytree(sealed[0], d)
    return d / "m.c"


FRAMES = seeded("trust").normal(size=(6, M)).astype(np.float32)


def test_the_header_is_covered_and_a_planted_constructor_never_runs(export, sealed, tmp_path):
    marker = tmp_path / "ran"
    h = export.with_suffix(".h")
    h.write_text(h.read_text() + planted_code(marker))
    with pytest.raises(IntegrityError, match=r"m\.h: corrupted.*header_sha256"):
        runtime.load(export, "c")
    assert not marker.exists()
    # one changed byte in a macro is refused the same way
    h.write_text(h.read_text().replace(planted_code(marker), "").replace("_SIZE 8", "_SIZE 9", 1))
    with pytest.raises(IntegrityError, match=r"m\.h: corrupted"):
        runtime.load(export, "c")
    assert not marker.exists()


def test_the_kernel_header_is_covered(export, tmp_path):
    """The export's own kernel header is not compiled unless it is the one recorded; this
    package's copy (the one recorded) is used in its place."""
    marker = tmp_path / "ran"
    k = export.with_name(c_reader.KERNELS)
    k.write_text(k.read_text() + planted_code(marker))
    model = runtime.load(export, "c")
    model.stream().step(FRAMES[0])
    assert not marker.exists()
    k.unlink()
    runtime.load(export, "c")  # the package's own, recorded copy


def test_an_export_without_header_digests_loads_only_when_told(export):
    """Written by an older slimedge: its headers cannot be checked, so it is refused naming the
    option; verify=False loads it."""
    text = export.read_text()
    for key in (c_reader.HEADER_DIGEST, c_reader.KERNELS_DIGEST):
        start = text.index(f'\\"{key}\\": \\"')
        text = text[:start] + text[start + len(key) + 75:]
        assert key not in text
    export.write_text(text)
    integrity.seal(export)
    with pytest.raises(IntegrityError, match=r"m\.c: its config records no digest.*--no-verify"):
        runtime.load(export, "c")
    assert runtime.load(export, "c", verify=False).backend == "c"


def _planted_library(tmp_path, marker, name="planted.so", extra=""):
    src = tmp_path / "planted.c"
    src.write_text(planted_code(marker) + extra)
    lib = tmp_path / name
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)
    return lib


def test_a_planted_library_beside_the_source_is_never_loaded(export, sealed, tmp_path):
    marker = tmp_path / "ran"
    planted = _planted_library(tmp_path, marker)
    shutil.copy(planted, export.with_suffix(toolchain.library_suffix()))
    model = runtime.load(export, "c")  # not allowed: ignored
    assert "compiled" in model.session.detail and not marker.exists()
    with environ({toolchain.ENV_PREBUILT: "1"}):  # allowed, but not built from this export
        model = runtime.load(export, "c")
    assert "compiled" in model.session.detail and not marker.exists()
    np.testing.assert_allclose(model.run(FRAMES), sealed[1].run(FRAMES), atol=1e-5, rtol=0)


def test_the_cache_must_be_private(export, tmp_path, monkeypatch):
    cache = tmp_path / "open"
    monkeypatch.setenv(toolchain.ENV_CACHE, str(cache))
    runtime.load(export, "c")
    folder = cache / "c"
    assert (folder.stat().st_mode & 0o777) == 0o700  # created private
    folder.chmod(0o755)
    with pytest.raises(CacheError, match=r"open to other users.*chmod 700"):
        runtime.load(export, "c")
    folder.chmod(0o700)
    if os.geteuid() == 0:  # only root can give a folder away
        os.chown(folder, 54321, -1)
        with pytest.raises(CacheError, match=r"belongs to another user"):
            runtime.load(export, "c")
        os.chown(folder, 0, -1)
    runtime.load(export, "c")


def test_a_planted_or_damaged_cache_entry_is_rebuilt_and_never_loaded(export, sealed, tmp_path):
    lib = toolchain.build(export)
    marker = tmp_path / "ran"
    planted = _planted_library(tmp_path, marker)
    shutil.copy(planted, lib)  # a library put under the entry's name: its bytes do not match it
    model = runtime.load(export, "c")
    assert not marker.exists()
    np.testing.assert_allclose(model.run(FRAMES), sealed[1].run(FRAMES), atol=1e-5, rtol=0)
    lib = toolchain.build(export)
    data = lib.read_bytes()
    lib.write_bytes(data[:len(data) // 2])  # a truncated entry: rebuilt, not a failure for good
    again = toolchain.build(export)
    assert again == lib and again.read_bytes() == data


def test_the_cache_key_holds_the_target_cpu_of_march_native(export, monkeypatch):
    monkeypatch.delenv(toolchain.ENV_CFLAGS, raising=False)
    assert "-march=native" in toolchain.DEFAULT_CFLAGS
    here = toolchain.build(export)
    monkeypatch.setattr(toolchain, "_cpu", ["another machine's CPU"])
    assert toolchain.build(export) != here
    monkeypatch.setenv(toolchain.ENV_CFLAGS, "-O2")  # no native target: no CPU in the key
    plain = toolchain.build(export)
    monkeypatch.setattr(toolchain, "_cpu", ["a third CPU"])
    assert toolchain.build(export) == plain


def test_the_readme_prebuilt_route_works_on_an_exported_file(sealed, tmp_path, monkeypatch):
    """README: `slimedge export -f c`, `make -C examples/c lib MODEL=model.c`, then
    runtime.load uses model.so when allowed ($SLIMEDGE_C_PREBUILT=1)."""
    monkeypatch.setenv(toolchain.ENV_CACHE, str(tmp_path / "cache"))
    ckpt = sealed[0].parent / "m.safetensors"
    out = tmp_path / "build"
    subprocess.run([sys.executable, "-m", "slimedge", "export", str(ckpt), "-f", "c", "-o",
                    str(out / "model.c")], check=True, capture_output=True, timeout=300)
    root = os.path.join(os.path.dirname(__file__), "..", "examples", "c")
    subprocess.run(["make", "-s", "-C", root, "lib", f"MODEL={out / 'model.c'}"], check=True,
                   capture_output=True, timeout=300)
    assert (out / "model.so").is_file()
    with environ({toolchain.ENV_PREBUILT: "1"}):
        model = runtime.load(out / "model.c", "c")
    assert model.session.detail.endswith(f"prebuilt {out / 'model.so'}"), model.session.detail
    np.testing.assert_allclose(model.run(FRAMES), sealed[1].run(FRAMES), atol=1e-5, rtol=0)


def test_a_fifo_named_c_in_an_export_folder_does_not_hang(export):
    os.mkfifo(export.with_name("zz.c"))
    code = (f"from slimedge import runtime\nprint(runtime.load({str(export.parent)!r}, 'c')"
            f".session.path.name)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "m.c"
