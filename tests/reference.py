"""An independent float64 NumPy implementation of the SLIM LSTM equations.

Written from shared/design/slim-variants.md alone, variant by variant, without importing slimedge:
it is the yardstick the package is measured against, so it must not share code with it.
Weights are given under the papers' names (W_i: (n, m), U_f: (n, n), u_o: (n,), b_c: (n,)).
"""
import numpy as np

DEFAULT_CONSTANTS = {
    "LSTM4a": {"f": 0.96, "o": 1.0},
    "LSTM5a": {"f": 0.96, "o": 1.0},
    "LSTM6": {"i": 1.0, "f": 0.4, "o": 1.0},
    "LSTM_C6": {"i": 1.0, "f": 0.4, "o": 1.0},
}


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def hard_sigmoid(z):
    return np.clip(0.2 * z + 0.5, 0.0, 1.0)


GATE_FN = {"sigmoid": sigmoid, "hard_sigmoid": hard_sigmoid}
ACT_FN = {"tanh": np.tanh, "sigmoid": sigmoid, "relu": lambda z: np.maximum(z, 0.0)}


def step(variant, w, x, h, c, gate_activation="sigmoid", activation="tanh", constants=None,
         input_only_cell=False):
    """One step for a batch: x (B, m), h and c (B, n); returns (h', c')."""
    s, g = GATE_FN[gate_activation], ACT_FN[activation]
    k = {**DEFAULT_CONSTANTS.get(variant, {}), **(constants or {})}
    x, h, c = (np.asarray(a, np.float64) for a in (x, h, c))
    w = {name: np.asarray(v, np.float64) for name, v in w.items()}

    def Wx(q):
        return x @ w["W_" + q].T

    def Uh(q):
        return h @ w["U_" + q].T

    def uh(q):
        return w["u_" + q] * h

    def b(q):
        return w["b_" + q]

    full_cell = lambda: g(Wx("c") + Uh("c") + b("c"))  # noqa: E731
    pw_cell = lambda: g(Wx("c") + uh("c") + b("c"))  # noqa: E731
    if variant == "LSTM0":
        i, f, o = (s(Wx(q) + Uh(q) + b(q)) for q in "ifo")
        cc = full_cell()
    elif variant == "LSTM1":
        i, f, o = (s(Uh(q) + b(q)) for q in "ifo")
        cc = full_cell()
    elif variant == "LSTM2":
        i, f, o = (s(Uh(q)) for q in "ifo")
        cc = full_cell()
    elif variant == "LSTM3":
        i, f, o = (s(b(q)) * np.ones_like(h) for q in "ifo")
        cc = full_cell()
    elif variant == "LSTM4":
        i, f, o = (s(uh(q)) for q in "ifo")
        cc = full_cell()
    elif variant == "LSTM5":
        i, f, o = (s(uh(q) + b(q)) for q in "ifo")
        cc = full_cell()
    elif variant == "LSTM4a":
        i, f, o = s(uh("i")), k["f"], k["o"]
        cc = full_cell()
    elif variant == "LSTM5a":
        i, f, o = s(uh("i") + b("i")), k["f"], k["o"]
        cc = full_cell()
    elif variant == "LSTM6":
        i, f, o = k["i"], k["f"], k["o"]
        cc = full_cell()
    elif variant == "LSTM10":
        i, f, o = (s(uh(q)) for q in "ifo")
        cc = pw_cell()
    elif variant == "LSTM11":
        i, f, o = (s(uh(q) + b(q)) for q in "ifo")
        cc = pw_cell()
    elif variant == "LSTM_C6":
        i, f, o = k["i"], k["f"], k["o"]
        cc = g(Wx("c") + b("c")) if input_only_cell else pw_cell()
    else:
        raise KeyError(variant)
    c_new = f * c + i * cc
    h_new = o * g(c_new)
    return h_new, c_new


def sequence(variant, layers, xs, h0=None, c0=None, **kw):
    """A multi-layer run: xs (T, B, m); layers is a list of weight dicts; returns
    (outputs (T, B, n), h_n (L, B, n), c_n (L, B, n))."""
    return _layers(lambda w, x, h, c: step(variant, w, x, h, c, **kw), layers, xs, h0, c0)


def _layers(step_fn, layers, xs, h0, c0):
    """Every layer over the whole sequence in turn, each step by ``step_fn(w, x, h, c)``."""
    xs = np.asarray(xs, np.float64)
    T, B = xs.shape[:2]
    L = len(layers)
    n = next(np.shape(v)[0] for v in layers[0].values())  # every term's first axis is n
    h = np.zeros((L, B, n)) if h0 is None else np.array(h0, np.float64)
    c = np.zeros((L, B, n)) if c0 is None else np.array(c0, np.float64)
    out = xs
    for k, w in enumerate(layers):
        ys = []
        for t in range(T):
            h[k], c[k] = step_fn(w, out[t], h[k], c[k])
            ys.append(h[k].copy())
        out = np.stack(ys)
    return out, h, c


def random_weights(variant, m, n, rng, scale=0.5, input_only_cell=False):
    """Random weights under the papers' names for one layer of ``variant`` (from the spec's table)."""
    gates = {
        "LSTM0": "WUb", "LSTM1": "Ub", "LSTM2": "U", "LSTM3": "b", "LSTM4": "u", "LSTM5": "ub",
        "LSTM4a": None, "LSTM5a": None, "LSTM6": "", "LSTM10": "u", "LSTM11": "ub", "LSTM_C6": "",
    }[variant]
    cell = "Wub" if variant in ("LSTM10", "LSTM11", "LSTM_C6") else "WUb"
    if input_only_cell:
        cell = "Wb"
    per_slot = {"c": cell}
    if variant == "LSTM4a":
        per_slot["i"] = "u"
    elif variant == "LSTM5a":
        per_slot["i"] = "ub"
    else:
        per_slot.update({q: gates for q in "ifo"})
    shapes = {"W": (n, m), "U": (n, n), "u": (n,), "b": (n,)}
    return {f"{t}_{q}": rng.uniform(-scale, scale, shapes[t])
            for q, terms in per_slot.items() for t in terms}


# ---- any structure: slots given as data --------------------------------------------------------
# A variant of one's own is, per gate i, f, o and for the cell candidate c, either a string of
# terms from "WUub" (W x, U h, u ⊙ h, b) or, for a gate, the fixed constant it takes:
# e.g. {"i": "Wb", "f": "Wb", "o": 0.5, "c": "WUb"}. The pre-activation of a slot is the sum of its
# terms; a gate is σ of it, the cell candidate g of it; c' = f ⊙ c + i ⊙ c~, h' = o ⊙ g(c').

def slot_pre_activation(terms, q, w, x, h):
    """The sum of slot q's terms for a batch (B, n); a bias-only slot broadcasts its bias."""
    z = np.zeros_like(h)
    for t in terms:
        if t == "W":
            z = z + x @ w["W_" + q].T
        elif t == "U":
            z = z + h @ w["U_" + q].T
        elif t == "u":
            z = z + w["u_" + q] * h
        elif t == "b":
            z = z + w["b_" + q]
        else:
            raise KeyError(t)
    return z


def step_slots(slots, w, x, h, c, gate_activation="sigmoid", activation="tanh"):
    """One step of the variant with structure ``slots``: x (B, m), h and c (B, n) -> (h', c')."""
    s, g = GATE_FN[gate_activation], ACT_FN[activation]
    x, h, c = (np.asarray(a, np.float64) for a in (x, h, c))
    w = {name: np.asarray(v, np.float64) for name, v in w.items()}
    value = {}
    for q in "ifoc":
        form = slots[q]
        if isinstance(form, str):
            z = slot_pre_activation(form, q, w, x, h)
            value[q] = g(z) if q == "c" else s(z)
        else:
            assert q != "c", "the cell candidate has terms"
            value[q] = float(form)
    c_new = value["f"] * c + value["i"] * value["c"]
    h_new = value["o"] * g(c_new)
    return h_new, c_new


def sequence_slots(slots, layers, xs, h0=None, c0=None, **kw):
    """As :func:`sequence`, for a structure given as slots."""
    return _layers(lambda w, x, h, c: step_slots(slots, w, x, h, c, **kw), layers, xs, h0, c0)


def random_weights_slots(slots, m, n, rng, scale=0.5):
    """Random weights under the papers' names for one layer with structure ``slots``."""
    shapes = {"W": (n, m), "U": (n, n), "u": (n,), "b": (n,)}
    return {f"{t}_{q}": rng.uniform(-scale, scale, shapes[t])
            for q, form in slots.items() if isinstance(form, str) for t in form}


def num_params_slots(slots, m, n):
    """Parameters of one layer: mn per W, n² per U, n per u and per b."""
    size = {"W": m * n, "U": n * n, "u": n, "b": n}
    return sum(size[t] for form in slots.values() if isinstance(form, str) for t in form)


def macs_slots(slots, m, n):
    """Multiply-accumulates per step of one layer: W x, U h and u ⊙ h (a bias is an add)."""
    cost = {"W": m * n, "U": n * n, "u": n, "b": 0}
    return sum(cost[t] for form in slots.values() if isinstance(form, str) for t in form)


# ---- audio front-ends (written from the specs in slimedge/frontend/logmel.py's and
# microfrontend.py's docstrings, without importing slimedge) --------------------------------
def logmel(samples, sample_rate, window, hop, n_fft, n_mels, f_min, f_max, floor, n_dct=0,
           kind="hann"):
    """float64 log-mel (or MFCC) frames, one frame at a time with an explicit DFT."""
    x = np.asarray(samples, np.float64)
    k = np.arange(window)
    w = {"hann": np.sin(np.pi * k / window) ** 2,  # = 0.5 - 0.5 cos(2 pi k / N)
         "hamming": 0.54 - 0.46 * np.cos(2 * np.pi * k / window),
         "rect": np.ones(window)}[kind]
    bins = np.arange(n_fft // 2 + 1)
    t = np.arange(n_fft)
    C, S = np.cos(2 * np.pi * np.outer(bins, t) / n_fft), np.sin(2 * np.pi * np.outer(bins, t) / n_fft)
    to_mel = lambda f: 1127.0 * np.log(1.0 + f / 700.0)  # noqa: E731  (same spacing as 2595 log10)
    from_mel = lambda m: 700.0 * (np.exp(m / 1127.0) - 1.0)  # noqa: E731
    lo, hi = to_mel(f_min), to_mel(f_max)
    edges = [from_mel(lo + (hi - lo) * j / (n_mels + 1)) for j in range(n_mels + 2)]
    freqs = bins * sample_rate / n_fft
    F = np.zeros((len(bins), n_mels))
    for j in range(n_mels):
        a, b, c = edges[j], edges[j + 1], edges[j + 2]
        for q, f in enumerate(freqs):
            if a < f <= b:
                F[q, j] = (f - a) / (b - a)
            elif b < f < c:
                F[q, j] = (c - f) / (c - b)
    out = []
    for start in range(0, len(x) - window + 1, hop):
        frame = np.zeros(n_fft)
        frame[:window] = x[start:start + window] * w
        re, im = C @ frame, S @ frame
        y = np.log(np.maximum((re * re + im * im) @ F, floor))
        if n_dct:
            M = n_mels
            y = np.array([np.sqrt((1.0 if q == 0 else 2.0) / M)
                          * sum(y[j] * np.cos(np.pi * q * (2 * j + 1) / (2 * M)) for j in range(M))
                          for q in range(n_dct)])
        out.append(y)
    return np.array(out).reshape(-1, n_dct or n_mels)


def micro_float(samples, sample_rate=16000, window=480, hop=160, channels=40, lower=125.0,
                upper=7500.0, smoothing_bits=10, even=0.025, odd=0.06, min_remaining=0.05,
                strength=0.95, offset=80.0, gain_bits=21, scale_shift=6):
    """float64 description of the microfrontend from a fresh state: Hann window (phase i + 1/2),
    |DFT|/n_fft, sqrt of mel-triangle energies (x 64), per-channel noise estimate, PCAN, log."""
    x = np.asarray(samples, np.float64)
    n_fft = 1 << (window - 1).bit_length()
    corr = n_fft.bit_length() - 1 - 6  # bit length of n_fft, less 1, less half the 12 weight bits
    k = np.arange(window)
    w = np.sin(np.pi * (k + 0.5) / window) ** 2
    mel = lambda f: 1127.0 * np.log1p(f / 700.0)  # noqa: E731
    centres = [mel(lower) + (mel(upper) - mel(lower)) * j / (channels + 1) for j in range(channels + 2)]
    bins = np.arange(n_fft // 2 + 1)
    m = mel(bins * sample_rate / n_fft)
    first = int(1.5 + lower / (0.5 * sample_rate / (n_fft // 2)))
    est, out = np.zeros(channels), []
    smooth = np.array([even if j % 2 == 0 else odd for j in range(channels)])
    for start in range(0, len(x) - window + 1, hop):
        spec = np.fft.rfft(x[start:start + window] * w, n_fft) / n_fft
        e = np.abs(spec) ** 2
        s = np.zeros(channels)
        for j in range(channels):
            a, b, c = centres[j], centres[j + 1], centres[j + 2]
            tri = np.where(m <= b, (m - a) / (b - a), (c - m) / (c - b))
            tri = np.where((m > a) & (m < c) & (bins >= first), tri, 0.0)
            s[j] = 64.0 * np.sqrt(np.sum(tri * e))
        est = smooth * s * 2.0 ** smoothing_bits + (1 - smooth) * est
        y = np.maximum(s - np.minimum(est / 2.0 ** smoothing_bits, s), min_remaining * s)
        g = 2.0 ** gain_bits / (est / 2.0 ** (smoothing_bits - corr) + offset) ** strength
        u = y * g / 2.0 ** (gain_bits - corr)
        y = 64.0 * np.where(u < 2, u * u / 4, u - 1)
        v = y * 2.0 ** corr
        out.append(np.where(v > 1, 2.0 ** scale_shift * np.log(np.maximum(v, 1.0)), 0.0))
    return np.array(out)
