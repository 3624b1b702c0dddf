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
