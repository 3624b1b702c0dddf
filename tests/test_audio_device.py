"""Audio in, digit out on an emulated Cortex-M4: the C export's front-end + model measured in
unicorn (per second of audio, flash, RAM) and checked bit for bit against the host build, and
examples/mcu's audio firmware under QEMU printing the host's digit and outputs hash."""
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from slimedge import devices
from slimedge.devices import audio as daudio
from slimedge.devices import timing
from slimedge.devices.reference import Export
from slimedge.errors import DeviceError
from slimedge.exporters import export
from test_audio_c import FSDD, audio_model, clips, feature_splits

ROOT = Path(__file__).resolve().parent.parent
MCU = ROOT / "examples" / "mcu"
# the microfrontend of the feasibility study (facts.md): 60 ms windows every 20 ms at 8 kHz
MF8 = {"kind": "microfrontend", "sample_rate": 8000, "window_ms": 60, "hop_ms": 20,
       "upper_hz": 3800.0}
needs_m4 = pytest.mark.skipif(not devices.available("cortex-m4"),
                              reason="the cortex-m4 tools are not installed")


@pytest.fixture(scope="module")
def int8_export(tmp_path_factory):
    """A random LSTM0 (n = 16) behind the 60/20 ms microfrontend, full integer."""
    d = tmp_path_factory.mktemp("audio-dev")
    path = audio_model(d, MF8, n=16)
    return export(path, d / "m.c", format="c", quantize="int8", data=feature_splits(MF8),
                  accuracy_tolerance=1.0).path


@needs_m4
def test_the_audio_stage_on_the_device_is_bit_exact_and_measured(int8_export):
    pcm = clips(2)
    r = daudio.measure(int8_export, "cortex-m4", pcm)
    ch = r["check"]
    assert ch["passed"] and ch["exact"] and ch["outputs_max_abs_diff_vs_host"] == 0.0
    assert ch["frontend_max_abs_diff_vs_python"] == 0.0 and ch["predicted"] == ch["host_predicted"]
    assert r["audio_seconds"] == pytest.approx(sum(len(x) for x in pcm) / 8000)
    assert r["frames"] == sum((len(x) - 480) // 160 + 1 for x in pcm)
    per = r["per_second_of_audio"]
    for part in ("frontend", "model", "together"):
        assert per[part]["instructions"] > 0 and per[part]["cycles"] >= per[part]["instructions"]
        assert per[part]["rtf"] == pytest.approx(per[part]["cycles"] / timing.CLOCK_HZ["cortex-m4"])
    assert per["frontend"]["cycles"] + per["model"]["cycles"] == pytest.approx(per["together"]["cycles"])
    flash = r["flash_bytes"]
    # together: both, and the glue (the input's normalisation and quantisation, the outputs)
    assert max(flash["frontend"]["total"], flash["model"]["total"]) < flash["together"]["total"] \
        < flash["frontend"]["total"] + flash["model"]["total"] + 1024
    ram = r["ram_bytes"]["together"]
    m = Export.read(int8_export)
    # the listener: the window's 480 int16 samples, fill and head, 40 noise estimates, the
    # model's int8 h and int16 c
    assert ram["state"] == 480 * 2 + 8 + 40 * 4 + m.n * 3
    assert 0 < ram["stack"] < 4096
    assert ram["total"] == sum(ram[k] for k in ("state", "pcm_buffer", "outputs", "stack", "data_bss"))
    # the FFT's buffer (257 packed complex values) is in the stack, not beside it
    assert ram["frontend_scratch_in_stack"] == 257 * 4 < ram["stack"]
    assert r["ram_bytes"]["model"]["state"] == m.n * 3


def extreme_signals(seconds: float = 0.5) -> list[np.ndarray]:
    """int16 PCM at the ends of the range: DC at -32768, full-scale Nyquist and square waves,
    full-scale noise and random rails, silence, +-2 LSB noise, and the validation's test signal
    (a tone, noise from -60 to 0 dBFS, a clipped tone)."""
    from slimedge.exporters.validate_audio import probe_signal
    rng = np.random.default_rng(7)
    n = int(seconds * 8000)
    square = np.where(np.sin(np.arange(n) * 0.3) >= 0, 32767, -32768).astype(np.int16)
    return [np.full(n, -32768, np.int16),
            np.resize(np.array([32767, -32768], np.int16), n),
            np.resize(np.array([-32768, -32768, 32767, 32767], np.int16), n),
            square,
            rng.integers(-32768, 32768, n).astype(np.int16),
            np.where(rng.random(n) < 0.5, -32768, 32767).astype(np.int16),
            np.zeros(n, np.int16),
            rng.integers(-2, 3, n).astype(np.int16),
            probe_signal(8000, seed=5)]


@needs_m4
def test_the_dsp_arithmetic_is_bit_exact_at_the_extremes(int8_export):
    """The Cortex-M4 build (the Arm DSP extension's packed butterflies, PKHTB/PKHBT, the halving
    adds, the FPU's square root) on signals at the ends of the int16 range: every frame equals the
    Python front-end's integers and every output the host build's."""
    r = daudio.measure(int8_export, "cortex-m4", extreme_signals())
    ch = r["check"]
    assert ch["passed"] and ch["exact"] and ch["frontend_max_abs_diff_vs_python"] == 0.0
    assert ch["outputs_max_abs_diff_vs_host"] == 0.0 and ch["frames"] > 100


PRIMITIVES = r"""
#include "m.c"  /* the export: its front-end's static functions */
uint32_t probe(uint32_t op, uint32_t a, uint32_t b)
{
    switch (op) {
    case 0: return @P@_div(a, 8191);
    case 1: return @P@_div(a, 16383);
    case 2: return @P@_div_conj(a, 16383);
    case 3: return @P@_cmul(a, b);
    case 4: return @P@_half_add(a, b);
    case 5: return @P@_half_sub_conj(a, b);
    case 6: return @P@_shl(a, (int)b);
    case 7: return (uint32_t)@P@_energy(a);
    case 8: return @P@_isqrt32(a);
    default: return @P@_sqrt64(((uint64_t)b << 32) | a);
    }
}
"""


def _halves(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    z = z.astype(np.int64)
    return ((z & 0xFFFF) ^ 0x8000) - 0x8000, ((z >> 16) ^ 0x8000) - 0x8000


def _primitive_reference(op: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """KISS FFT's fixed-point operations (int16 values, int32 sums, ``sround``) and the
    microfrontend's roots, in int64 NumPy, on packed (re | im << 16) values."""
    from slimedge.frontend.kissfft import wrap16, wrap32
    from slimedge.frontend.microfrontend import _rounded_sqrt
    ar, ai = _halves(a)
    br, bi = _halves(b)
    sround = lambda x: wrap16(wrap32(x + (1 << 14)) >> 15)  # noqa: E731
    pack = lambda re, im: (wrap16(re) & 0xFFFF) | ((wrap16(im) & 0xFFFF) << 16)  # noqa: E731
    if op in (0, 1, 2):
        k = 8191 if op == 0 else 16383
        im = wrap16(-ai) if op == 2 else ai
        return pack(sround(ar * k), sround(im * k))
    if op == 3:
        return pack(sround(wrap32(ar * br - ai * bi)), sround(wrap32(ar * bi + ai * br)))
    if op == 4:
        return pack((ar + br) >> 1, (ai + bi) >> 1)
    if op == 5:
        return pack((ar - br) >> 1, (bi - ai) >> 1)
    if op == 6:
        return pack(ar << b, ai << b)
    if op == 7:
        return wrap32(ar * ar + ai * ai) & 0xFFFFFFFF
    v = a.astype(np.uint64) | (b.astype(np.uint64) << np.uint64(32))
    if op == 8:
        return np.array([math.isqrt(int(x)) for x in v], np.int64)
    return _rounded_sqrt(v).astype(np.int64)


def _primitive_inputs(op: int, rng) -> tuple[np.ndarray, np.ndarray]:
    edges = np.array([-32768, -32767, -16384, -2, -1, 0, 1, 2, 16383, 16384, 32766, 32767])
    n = 600

    def packed(limit: int = 32768):
        re = np.concatenate([np.repeat(edges, len(edges)), rng.integers(-limit, limit, n)])
        im = np.concatenate([np.tile(edges, len(edges)), rng.integers(-limit, limit, n)])
        re, im = np.clip(re, -limit, limit - 1), np.clip(im, -limit, limit - 1)
        return ((re & 0xFFFF) | ((im & 0xFFFF) << 16)).astype(np.int64)
    a = packed()
    if op == 3:  # a twiddle: -32767..32767
        b = rng.permutation(packed(32767))
    elif op in (4, 5):
        b = rng.permutation(a)
    elif op == 6:  # the window's shift: 0..15
        b = rng.integers(0, 16, len(a))
    elif op in (8, 9):  # around squares (where the rounding turns), and at the ends of the range
        top = 1 << 16 if op == 8 else 1 << 24
        k = np.concatenate([np.arange(1, 40), rng.integers(1, top, 150), np.arange(top - 40, top)])
        v = np.concatenate([k * k + d for d in (-1, 0, 1, k, k + 1, 2 * k)] + [
            np.array([0, 1, 2, 3, 0xFFFFFFFF] if op == 8 else [0, 1, 1 << 32, (1 << 48) - 1])])
        v = v[(v >= 0) & (v < (1 << 32 if op == 8 else 1 << 48))].astype(np.uint64)
        return (v & np.uint64(0xFFFFFFFF)).astype(np.int64), (v >> np.uint64(32)).astype(np.int64)
    else:
        b = np.zeros_like(a)
    return a, b


@pytest.mark.parametrize("device", [
    pytest.param(d, marks=pytest.mark.skipif(not devices.available(d),
                                             reason=f"the {d} tools are not installed"))
    for d in ("cortex-m4", "cortex-m0plus")])
def test_the_fft_and_root_primitives_are_kiss_ffts_arithmetic(int8_export, device, tmp_path):
    """The front-end's arithmetic compiled for the device (on the Cortex-M4 the Arm DSP
    extension's packed multiplies, PKHTB/PKHBT, the halving adds, the FPU's square root; on the
    Cortex-M0+ the portable C) called one value at a time in unicorn, against KISS FFT's
    operations and the microfrontend's roots in NumPy: every int16 edge pair and random values,
    numbers around squares up to 2^48."""
    from types import SimpleNamespace

    from slimedge.devices import cortexm
    e = Export.read(int8_export)
    harness = int8_export.parent / f"primitives_{device}.c"
    harness.write_text(PRIMITIVES.replace("m.c", int8_export.name).replace("@P@", e.prefix))
    b = cortexm.build(SimpleNamespace(path=harness, function="probe", integer=True), device,
                      tmp_path)
    mach = cortexm.Machine(b)
    r0 = mach._a.UC_ARM_REG_R0
    rng = np.random.default_rng(11)
    for op in range(10):
        a, arg = _primitive_inputs(op, rng)
        got = []
        for x, y in zip(a.tolist(), arg.tolist()):
            mach.call("probe", op, x & 0xFFFFFFFF, y & 0xFFFFFFFF)
            got.append(mach.uc.reg_read(r0))
        want = _primitive_reference(op, a, arg)
        bad = np.flatnonzero(np.asarray(got, np.int64) != want)
        assert not len(bad), (op, [(hex(a[i]), hex(arg[i]), hex(got[i]), hex(want[i]))
                                   for i in bad[:5]])


@needs_m4
def test_a_device_that_differs_from_the_host_is_refused(int8_export, monkeypatch):
    real = daudio.host_outputs

    def off_by_one_ulp(*a, **k):
        want, compiler, sizes = real(*a, **k)
        want[0] = want[0].copy()
        want[0][-1, 0] = np.nextafter(want[0][-1, 0], np.float32(np.inf))
        return want, compiler, sizes
    monkeypatch.setattr(daudio, "host_outputs", off_by_one_ulp)
    with pytest.raises(DeviceError, match="differ from the host"):
        daudio.measure(int8_export, "cortex-m4", clips(1))


def _firmware(target: str, model: Path, wav: Path, build: Path) -> dict:
    res = subprocess.run(["make", "-C", str(MCU), "-f", "audio.mk", target, f"MODEL={model}",
                          f"WAV={wav}", f"BUILD={build}", f"PYTHON={sys.executable}"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    return dict(line.split(": ", 1) for line in res.stdout.splitlines() if ": " in line)


@needs_m4
def test_the_audio_firmware_prints_the_hosts_digit_and_outputs(int8_export, tmp_path):
    """examples/mcu/audio.c under QEMU, PCM from flash and from a semihosting file: the frames,
    the digit and the hash of every output equal the host build's (pushed in 20 ms buffers)."""
    names = sorted(p.name for p in FSDD.glob("*.wav"))[::500][:3]
    e = Export.read(int8_export)
    for k, name in enumerate(names):
        wav = FSDD / name
        x = clips_of(wav)
        (want,), _, _ = daudio.host_outputs(e, [x], 160)
        out = _firmware("run", int8_export, wav, tmp_path / f"b{k}")
        assert out["frames"] == str(len(want))
        assert out["predicted"] == str(int(np.argmax(want[-1])))
        assert out["expected"] == name.split("_")[0]
        assert out["outputs hash"] == f"0x{daudio.output_hash(want):08x}"
    got = _firmware("run-file", int8_export, wav, tmp_path / "file")
    assert got["outputs hash"] == out["outputs hash"] and got["frames"] == out["frames"]


def clips_of(wav: Path) -> np.ndarray:
    import wave
    with wave.open(str(wav)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.int16)


@needs_m4
def test_profile_target_measures_frontend_and_model_per_second_of_audio(tmp_path):
    """``profile --target`` on a model that reads audio, PCM from a folder of WAVs (its FSDD
    test split): the audio rows for float and full integer, checked, in its tables."""
    import shutil as sh

    from rich.console import Console

    from slimedge.profile import device as on_device
    folder = tmp_path / "wavs"
    folder.mkdir()
    for d in range(10):
        for i in range(7):
            sh.copy(FSDD / f"{d}_jackson_{i}.wav", folder)
    ckpt = audio_model(tmp_path, MF8, n=16)
    report = on_device.run([ckpt], "cortex-m4", sequences=1, baseline="none", audio=folder)
    rows = {r["quantize"]: r for r in report["results"]}
    assert set(rows) == {"none", "int8"}
    for q, r in rows.items():
        a = r["audio"]
        assert a["check"]["passed"] and a["check"]["clips"] == 1 and a["check"]["exact"] == (q == "int8")
        assert a["frontend"] == MF8 | {k: v for k, v in a["frontend"].items() if k not in MF8}
        assert r["time"]["frame_ms"] == 20  # the model's frames are the front-end's
    text = "\n".join(str(line) for line in report["notes"])
    assert "test clips of" in text and "(fsdd split)" in text
    console = Console(width=150, record=True)
    for t in on_device.tables(report):
        console.print(t)
    out = console.export_text()
    for words in ("per second of audio", "front-end", "together", "% core", "80 MHz"):
        assert words in out, words
    with pytest.raises(Exception, match="--audio"):
        on_device.run([ckpt], "cortex-m4", sequences=1, baseline="none")


AARCH64_HARNESS = r"""/* the export's C front-end on a PCM file, in pushes of 1, 37, 160, 4096, ... samples */
#include <stdio.h>
#include <stdlib.h>
#include "m.h"
int main(int argc, char **argv)
{
    static int16_t pcm[1 << 20];
    static float out[(1 << 20) / M_AUDIO_HOP * M_AUDIO_FEATURES + M_AUDIO_FEATURES];
    static const int sizes[] = {1, 37, 160, 4096, 7, 999};
    FILE *f = fopen(argv[1], "rb");
    const int n = (int)fread(pcm, sizeof(int16_t), 1 << 20, f);
    fclose(f);
    m_audio_state s;
    m_audio_reset(&s);
    int frames = 0;
    for (int i = 0, k = 0; i < n; k++) {
        const int take = n - i < sizes[k % 6] ? n - i : sizes[k % 6];
        frames += m_audio_push(&s, pcm + i, take, out + (size_t)frames * M_AUDIO_FEATURES);
        i += take;
    }
    f = fopen(argv[2], "wb");
    fwrite(out, sizeof(float), (size_t)frames * M_AUDIO_FEATURES, f);
    fclose(f);
    return 0;
}
"""


@pytest.mark.skipif(not devices.available("aarch64"), reason="the aarch64 tools are not installed")
def test_the_c_microfrontend_is_bit_exact_on_aarch64(int8_export, tmp_path):
    """The same .c built for 64-bit ARM Linux (-O3, no Arm DSP extension there: the portable
    arithmetic, vectorised as the compiler likes) gives the Python front-end's integers."""
    from slimedge.devices import toolchains
    from slimedge.frontend import audio as frontends
    (tmp_path / "harness.c").write_text(AARCH64_HARNESS)
    exe = tmp_path / "fe.aarch64"
    toolchains.run([toolchains.find("aarch64-linux-gnu-gcc"), "-O3", "-mcpu=cortex-a72",
                    "-std=c99", "-static", f"-I{int8_export.parent}", "-o", str(exe),
                    str(tmp_path / "harness.c"), str(int8_export), "-lm"], "compiling")
    fa = frontends.from_config(MF8)
    x = np.concatenate(clips(8))
    (tmp_path / "in.pcm").write_bytes(x.astype("<i2").tobytes())
    toolchains.run([toolchains.find("qemu-aarch64"), str(exe), str(tmp_path / "in.pcm"),
                    str(tmp_path / "out.bin")], "running under qemu-aarch64")
    got = np.fromfile(tmp_path / "out.bin", "<f4").reshape(-1, fa.output_size)
    want = frontends.features(fa, x)
    assert got.shape == want.shape and len(got) > 150 and np.array_equal(got, want)


@pytest.mark.skipif(not devices.available("cortex-m0plus"), reason="the Cortex-M tools are not installed")
def test_the_audio_stage_is_bit_exact_on_a_cortex_m0plus(int8_export):
    """ARMv6-M: no DSP extension, no divide instruction, no FPU (the portable arithmetic,
    libgcc's division, soft float for the input's normalisation): the same outputs."""
    r = daudio.measure(int8_export, "cortex-m0plus", clips(1))
    assert r["check"]["passed"] and r["check"]["exact"]
    assert r["check"]["outputs_max_abs_diff_vs_host"] == 0.0
    assert r["check"]["frontend_max_abs_diff_vs_python"] == 0.0


@needs_m4
def test_profile_target_audio_through_the_cli_on_the_shipped_model():
    """``slimedge profile --target cortex-m4 MODEL --audio FILE.wav`` on the shipped raw-audio
    model and its sample WAV: float and full-integer exports (the latter calibrated on the
    model's recorded WAV folder through its own front-end), each checked against the host build,
    with the audio rows and the digit the file name says; a missing WAV is a one-line error."""
    import json

    from typer.testing import CliRunner

    from slimedge import checkpoint, zoo
    from slimedge.cli import app
    model, wav = zoo.audio_model_path(), zoo.sample_wav_path()
    r = CliRunner().invoke(app, ["profile", "--target", "cortex-m4", str(model), "--audio",
                                 str(wav), "--baseline", "none", "--json"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout[r.stdout.index("{"):])
    rows = {row["quantize"]: row for row in report["results"]}
    assert set(rows) == {"none", "int8"}
    spec = checkpoint.load(model).frontend.spec.audio.to_config()
    digit = wav.name.split("_")[2]  # fsdd_sample_<digit>_<speaker>_<index>.wav
    for q, row in rows.items():
        a = row["audio"]
        assert a["check"]["passed"] and a["check"]["clips"] == 1
        assert a["check"]["exact"] == (q == "int8")
        assert a["frontend"] == spec
        assert [str(p) for p in a["check"]["predicted"]] == [digit]
        parts = a["per_second_of_audio"]
        for k in ("instructions", "cycles"):
            assert parts["together"][k] == pytest.approx(parts["frontend"][k] + parts["model"][k])
    bad = CliRunner().invoke(app, ["profile", "--target", "cortex-m4", str(model), "--audio",
                                   "no-such.wav", "--baseline", "none"])
    assert bad.exit_code != 0 and "no-such.wav" in bad.output
    assert "Traceback" not in bad.output
