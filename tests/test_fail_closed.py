"""The integrity check fails closed (issue 22, item 7): a digest entry that does not parse is an
error, a file with no digest (or the placeholder) loads only when the user says so, and the
format writers seal what they write."""
import shutil

import pytest

from helpers import environ, make_checkpoint
from slimedge import checkpoint, exporters, integrity, ir, runtime
from slimedge.errors import IntegrityError, ModelFileError, UnsealedError
from slimedge.exporters import c as cx


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A sealed checkpoint, ONNX export and C export (with its headers)."""
    d = tmp_path_factory.mktemp("sealed")
    ckpt, _, _ = make_checkpoint(d / "m.safetensors", "LSTM6", 5, 8, 1, classes=3)
    onnx_path = exporters.export(ckpt, d / "m.onnx", format="onnx").path
    (d / "c").mkdir()
    cx.write(ir.lower(checkpoint.read(ckpt), fold_normalization=True), d / "c" / "m.c")
    return {"checkpoint": ckpt, "onnx": onnx_path, "c": d / "c" / "m.c"}


def copy(files, kind, tmp_path):
    src = files[kind]
    if kind == "c":
        shutil.copytree(src.parent, tmp_path / "c")
        return tmp_path / "c" / src.name
    return shutil.copy(src, tmp_path / src.name)


def load(path):
    return checkpoint.read(path) if path.suffix == ".safetensors" else runtime.load(path)


def edit_digest(path, new: bytes):
    data = path.read_bytes()
    digest = integrity.recorded(path).encode()
    assert data.count(digest) == 1
    path.write_bytes(data.replace(digest, new))


@pytest.mark.parametrize("kind", ["checkpoint", "onnx", "c"])
def test_writers_seal_and_the_files_load_checked(files, kind, tmp_path):
    path = copy(files, kind, tmp_path)
    assert integrity.recorded(path) not in (None, integrity.PLACEHOLDER)
    assert integrity.verify(path)
    load(path)


@pytest.mark.parametrize("kind", ["checkpoint", "onnx", "c"])
def test_a_flipped_bit_in_the_digest_is_an_error_not_a_skip(files, kind, tmp_path):
    path = copy(files, kind, tmp_path)
    digest = integrity.recorded(path)
    edit_digest(path, (chr(ord(digest[0]) ^ 0x40) + digest[1:]).encode())  # '3' -> 's', 'a' -> '!'
    with pytest.raises(IntegrityError, match=r"m\.\w+: corrupted: its 'file_sha256' entry is not 64"):
        load(path)


@pytest.mark.parametrize("kind", ["checkpoint", "onnx", "c"])
def test_a_file_without_a_digest_loads_only_when_told(files, kind, tmp_path):
    path = copy(files, kind, tmp_path)
    edit_digest(path, integrity.PLACEHOLDER.encode())  # the check would be off
    with pytest.raises(UnsealedError, match=r"m\.\w+: records no integrity digest.*"
                                            r"SLIMEDGE_ALLOW_UNSEALED=1.*verify=False"):
        load(path)
    with environ({integrity.ENV_ALLOW_UNSEALED: "1"}):
        load(path)
    if kind != "checkpoint":
        runtime.load(path, verify=False)


def test_onnx_external_data_is_refused(files, tmp_path):
    """Weights kept in a file beside the .onnx are outside its digest: refused, even resealed."""
    import onnx

    model = onnx.load(files["onnx"])
    path = tmp_path / "m.onnx"
    onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
                    location="weights.bin", size_threshold=0)
    assert (tmp_path / "weights.bin").stat().st_size > 0
    integrity.seal(path)  # a forger recomputes the digest
    for verify in (True, False):
        with pytest.raises(ModelFileError, match=r"m\.onnx: its tensors keep their data in "
                                                 r"external files"):
            runtime.load(path, "onnxruntime", verify=verify)
    runtime.load(files["onnx"], "onnxruntime")  # the export itself holds its weights


def test_a_checkpoint_is_never_overwritten_by_a_companion_file(files, tmp_path):
    """Issue 22, item 11: exporting m.h (a checkpoint) to C as m.c would write m.h over it."""
    from slimedge.errors import UsageError

    ckpt = shutil.copy(files["checkpoint"], tmp_path / "m.h")
    before = open(ckpt, "rb").read()
    with pytest.raises(UsageError, match=r"m\.c: its companion file m\.h would overwrite the model"):
        exporters.export(ckpt, tmp_path / "m.c", format="c", validate=False)
    assert open(ckpt, "rb").read() == before
    assert not (tmp_path / "m.c").exists()


LABELS = ['"file_sha256": "' + "a" * 64 + '"', 'file_sha256": "' + "0" * 64 + '"', "file_sha256"]


@pytest.mark.parametrize("fmt", ["onnx", "tflite", "c"])
def test_labels_holding_the_digest_entry_do_not_block_exports(tmp_path, fmt, monkeypatch):
    """Issue 22, item 12: a class label that reads like the digest entry made every export a
    file with two entries ("cannot tell which is its digest"). The writers escape the name in
    strings (JSON ``\\u005f``, C ``\\137``): one entry, and the labels read back unchanged."""
    from slimedge.formats.c import toolchain

    if fmt == "c" and not toolchain.have_compiler():
        pytest.skip("no C compiler")
    if not runtime.backend_module({"onnx": "onnxruntime", "tflite": "litert", "c": "c"}[fmt]
                                  ).available():
        pytest.skip(f"no backend for {fmt}")
    monkeypatch.setenv(toolchain.ENV_CACHE, str(tmp_path / "cache"))
    ckpt, _, _ = make_checkpoint(tmp_path / "m.safetensors", "LSTM6", 3, 4, 1, classes=3)
    c = checkpoint.read(ckpt)
    config = {k: v for k, v in c.config.items() if k not in (integrity.KEY, "format")}
    config["head"] = {**config["head"], "labels": LABELS}
    labelled = checkpoint.write(tmp_path / "l.safetensors", config, c.tensors)
    assert runtime.load(labelled, "numpy").labels == LABELS
    (tmp_path / fmt).mkdir()
    out = exporters.export(labelled, tmp_path / fmt / f"l.{fmt}", format=fmt).path
    assert integrity.verify(out)
    assert runtime.load(out).labels == LABELS
