"""The step IR: one time step of a SLIM model as a graph of primitive ops, weights attached.

``lower(checkpoint)`` turns a checkpoint (front-end -> every layer -> head) into a
:class:`Graph` whose inputs are ``x`` (batch, m), ``h`` and ``c`` (layers, batch, n) and whose
outputs are ``y`` (batch, outputs), ``h_next`` and ``c_next``. Every exporter walks this one graph;
:meth:`Graph.run` interprets it with NumPy (the runtime's ``numpy`` backend and a reference for the
exporters). This module does not import torch.

The lowering emits exactly the work a variant needs, read off its :class:`VariantSpec`:

* a ``matmul`` only for terms that exist, one packed matmul per operand (x or h) covering every
  slot that has that term, with the bias fused in when it covers the same slots;
* a ``mul`` for each point-wise term u ⊙ h;
* nothing for a gate fixed at exactly 1.0; a ``mul`` by a scalar for any other fixed gate (a gate
  of 0.0 drops its product entirely);
* constants folded: a gate whose pre-activation is its bias alone (LSTM3) becomes the constant
  σ(b), so it reads neither input nor state.

The front-end (:mod:`slimedge.frontend`: today the standardisation x·s + t) is lowered by its own
stages into the same primitives, before the model's step, its nodes tagged ``role="frontend"``;
the model's step reads :attr:`Graph.features`. With ``lower(..., fold_normalization=True)`` a stage
that offers it folds itself into what reads it (the standardisation into the first layer's input
matmul(s): W·diag(s) and b + W·t; float exports; quantisers keep it as its own value).

Ops (value = a named tensor; ``B`` marks the batch dimension in shapes):

    matmul(a, W[, bias])   a @ W.T (+ bias); W (out, in) as in nn.Linear
    add(a, b)  mul(a, b)   element-wise, NumPy broadcasting
    sigmoid, tanh          the transcendental activations
    clip(a; lo, hi)        min(max(a, lo), hi), either bound may be None: with mul and add, every
                           piecewise-linear activation (:mod:`slimedge.activations`: hard_sigmoid
                           is mul 0.2, add 0.5, clip(0, 1); relu is clip(0, None))
    split(a; sizes)        along the last axis, into len(sizes) values
    unstack(a)             along axis 0 (per-layer state), stack(a, b, ...) its inverse
    identity(a)
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from . import activations as _activations
from . import frontend as _frontend
from . import variants
from .checkpoint import Checkpoint, read

B = "B"  # the symbolic batch dimension in value shapes

OPS = ("matmul", "add", "mul", "sigmoid", "tanh", "clip", "split", "unstack", "stack", "identity")


@dataclass
class Node:
    op: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass
class Graph:
    """A step graph: nodes in execution order, initializers (weights and constants), value shapes."""

    nodes: list[Node] = field(default_factory=list)
    initializers: dict[str, np.ndarray] = field(default_factory=dict)
    shapes: dict[str, tuple] = field(default_factory=dict)
    inputs: tuple[str, ...] = ("x", "h", "c")
    outputs: tuple[str, ...] = ("y", "h_next", "c_next")
    config: dict = field(default_factory=dict)
    # initializers that hold learned parameters (or constants folded from them), by role
    param_roles: dict[str, str] = field(default_factory=dict)
    # the front-end lowered before the model's step, with its parameters (slimedge.frontend)
    frontend: _frontend.Frontend = field(default_factory=_frontend.Frontend)

    # ---- facts the exporters and the profiler report ------------------------------------
    @property
    def input_size(self) -> int:
        return int(self.shapes["x"][1])

    @property
    def features(self) -> str:
        """The value the model's step reads: the front-end's output, or ``x`` (none, or folded)."""
        stage = [n for n in self.nodes if n.attrs.get("role") == "frontend"]
        return stage[-1].outputs[0] if stage else "x"

    def frontend_nodes(self) -> list[Node]:
        """The front-end stage's nodes (computed from x alone, before the model's step)."""
        return [n for n in self.nodes if n.attrs.get("role") == "frontend"]

    def model_nodes(self) -> list[Node]:
        """The model's step: every node but the front-end's."""
        return [n for n in self.nodes if n.attrs.get("role") != "frontend"]

    @property
    def num_layers(self) -> int:
        return int(self.shapes["h"][0])

    @property
    def hidden_size(self) -> int:
        return int(self.shapes["h"][2])

    @property
    def output_size(self) -> int:
        return int(self.shapes["y"][1])

    def census(self) -> dict[str, int]:
        """How many nodes of each op type the graph holds."""
        return dict(sorted(Counter(n.op for n in self.nodes).items()))

    def matmul_shapes(self, layer: int | None = None, role: str | None = None) -> list[tuple[int, int]]:
        """(out, in) of each matmul's weight, optionally only those of one layer and role."""
        return [tuple(self.initializers[n.inputs[1]].shape) for n in self.nodes
                if n.op == "matmul" and (layer is None or n.attrs.get("layer") == layer)
                and (role is None or n.attrs.get("role") == role)]

    def num_params(self, role: str | None = None) -> int:
        """Parameters held by the graph (``role``: 'lstm', 'head' or None for both)."""
        return int(sum(self.initializers[k].size for k, r in self.param_roles.items()
                       if role is None or r == role))

    def macs_per_step(self, role: str | None = "lstm") -> int:
        """Multiply-accumulates of one step: matmul weights and point-wise (u ⊙ h) terms.

        With the default role 'lstm' this is what ``VariantSpec.macs_per_step`` counts, summed over
        layers; role 'head' counts the head, None everything.
        """
        total = 0
        for n in self.nodes:
            r = n.attrs.get("role")
            if role is not None and r != role:
                continue
            if n.op == "matmul":
                total += self.initializers[n.inputs[1]].size
            elif n.op == "mul" and n.attrs.get("term") == "u":
                total += self.initializers[n.inputs[1]].size
        return total

    def summary(self) -> dict:
        return {"census": self.census(), "params": self.num_params(),
                "lstm_params": self.num_params("lstm"), "head_params": self.num_params("head"),
                "macs_per_step": self.macs_per_step(None),
                "lstm_macs_per_step": self.macs_per_step("lstm"),
                "input_size": self.input_size, "hidden_size": self.hidden_size,
                "num_layers": self.num_layers, "output_size": self.output_size}

    def metadata_json(self) -> str:
        """The model's config as the exporters store it in the file's metadata, with the
        placeholder of the file's integrity digest (sealed by export: slimedge.integrity)."""
        from . import integrity

        return integrity.dumps({**self.config, "graph": self.summary(),
                                integrity.KEY: integrity.PLACEHOLDER})

    def producers(self) -> dict[str, Node]:
        return {o: n for n in self.nodes for o in n.outputs}

    def cell_state_values(self) -> dict[str, str]:
        """The cell-state path as the lowering tags it (``attrs["cell_path"]``): value -> part,
        one of "state" (c, its per-layer parts, c_next), "forget" (f ⊙ c), "input" (i ⊙ c~) where
        they are products, "new" (c') and "activation" (g(c'))."""
        out = {o: n.attrs["cell_path"] for n in self.nodes if "cell_path" in n.attrs
               for o in n.outputs}
        return {"c": "state", **out} if out else out

    def validate(self) -> None:
        known = set(self.inputs) | set(self.initializers)
        for n in self.nodes:
            if n.op not in OPS:
                raise ValueError(f"unknown op {n.op!r}")
            missing = [i for i in n.inputs if i not in known]
            if missing:
                raise ValueError(f"node {n.op} -> {n.outputs} reads undefined values {missing}")
            known.update(n.outputs)
        missing = [o for o in self.outputs if o not in known]
        if missing:
            raise ValueError(f"graph outputs {missing} are never produced")

    # ---- the NumPy interpreter ------------------------------------------------------------
    def _weights_cache(self, dtype) -> dict[str, np.ndarray]:
        key = np.dtype(dtype).str
        cache = self.__dict__.setdefault("_cast", {})
        if key not in cache:
            cache[key] = self.weights(dtype)
        return cache[key]

    def run(self, feeds: Mapping[str, np.ndarray], dtype=np.float32,
            observe: Callable[[str, np.ndarray], None] | None = None) -> dict[str, np.ndarray]:
        """Run one step: feeds ``x``, ``h``, ``c``; returns ``y``, ``h_next``, ``c_next``.

        ``observe(name, value)``, when given, sees every value of the step as it is computed:
        each graph input (cast to ``dtype``), then every node output in execution order (not the
        initializers). Calibration records value ranges with it."""
        env: dict[str, np.ndarray] = dict(self._weights_cache(dtype))
        for name in self.inputs:
            if name not in feeds:
                raise ValueError(f"missing graph input {name!r}")
            env[name] = np.asarray(feeds[name], dtype)
            if observe is not None:
                observe(name, env[name])
        for n in self.nodes:
            args = [env[i] for i in n.inputs]
            out = _KERNELS[n.op](*args, **n.attrs.get("kernel", {}))
            outs = out if isinstance(out, tuple) else (out,)
            for name, value in zip(n.outputs, outs):
                env[name] = value
                if observe is not None:
                    observe(name, value)
        return {o: env[o] for o in self.outputs}

    def weights(self, dtype=np.float32) -> dict[str, np.ndarray]:
        """The initializers in ``dtype`` (they are held in float64, so folded constants are exact)."""
        return {k: np.ascontiguousarray(v, dtype=dtype) for k, v in self.initializers.items()}


def _matmul(a, w, bias=None):
    y = a @ w.T
    return y if bias is None else y + bias


def _split(a, sizes):
    return tuple(np.split(a, np.cumsum(sizes)[:-1], axis=-1))


_KERNELS = {
    "matmul": _matmul,
    "add": np.add,
    "mul": np.multiply,
    "sigmoid": lambda z: 1.0 / (1.0 + np.exp(-z)),
    "tanh": np.tanh,
    "clip": lambda a, lo=None, hi=None: np.clip(a, lo, hi).astype(a.dtype, copy=False),
    "split": _split,
    "unstack": lambda a: tuple(a[k] for k in range(a.shape[0])),
    "stack": lambda *xs: np.stack(xs),
    "identity": lambda a: a,
}


class _Builder:
    def __init__(self) -> None:
        self.g = Graph()
        self._count: Counter = Counter()

    def name(self, stem: str) -> str:
        self._count[stem] += 1
        k = self._count[stem]
        return stem if k == 1 else f"{stem}_{k}"

    def const(self, stem: str, value: np.ndarray, role: str | None = None) -> str:
        name = self.name(stem)
        # float64 here keeps folded constants exact; run() and the exporters cast to float32
        self.g.initializers[name] = np.ascontiguousarray(value, dtype=np.float64)
        if role:
            self.g.param_roles[name] = role
        return name

    def activation(self, name: str, z: str, stem: str, shape, **attrs) -> str:
        """Activation ``name`` of ``z``: its own op when transcendental, else mul, add and clip
        (:class:`slimedge.activations.PiecewiseLinear`); the result is named ``stem``."""
        if name in _activations.TRANSCENDENTAL:
            return self.node(name, [z], stem, shape, **attrs)
        pwl = _activations.PIECEWISE[name]
        attrs = {**attrs, "activation": name}  # every node of the activation says so
        if pwl.scale != 1.0:
            z = self.node("mul", [z, self.const(f"{stem}.a", np.array([pwl.scale]))],
                          f"{stem}.scaled", shape, **attrs)
        if pwl.shift != 0.0:
            z = self.node("add", [z, self.const(f"{stem}.b", np.array([pwl.shift]))],
                          f"{stem}.shifted", shape, **attrs)
        return self.node("clip", [z], stem, shape, kernel={"lo": pwl.lo, "hi": pwl.hi}, **attrs)

    def node(self, op: str, inputs: Iterable[str], stem: str, shape, n_out: int = 1,
             shapes: list | None = None, **attrs) -> str | tuple[str, ...]:
        outs = tuple(self.name(stem if n_out == 1 else f"{stem}.{k}") for k in range(n_out))
        self.g.nodes.append(Node(op, tuple(inputs), outs, attrs))
        for k, o in enumerate(outs):
            self.g.shapes[o] = tuple(shapes[k]) if shapes else tuple(shape)
        return outs[0] if n_out == 1 else outs


def lower(source: Checkpoint | str | Any, *, fold_normalization: bool = False) -> Graph:
    """Lower a checkpoint (a :class:`Checkpoint` or a path to one) to its step graph.

    ``fold_normalization=True`` lets the front-end fold itself into the model's first ops where
    a stage offers it (the standardisation x·s + t into the first layer's input matmul(s), see
    :meth:`slimedge.frontend.Standardize.fold`): two fewer nodes, for float exports. Keep it off
    for quantisation, which needs the normalised input as its own (well-scaled) value.
    """
    ckpt = source if isinstance(source, Checkpoint) else read(source)
    cfg = ckpt.lstm
    spec = variants.from_config(cfg["variant"])
    m0, n, L = int(cfg["input_size"]), int(cfg["hidden_size"]), int(cfg.get("num_layers", 1))
    sigma, g_act = cfg.get("gate_activation", "sigmoid"), cfg.get("activation", "tanh")
    bld = _Builder()
    g = bld.g
    g.shapes.update({"x": (B, m0), "h": (L, B, n), "c": (L, B, n)})
    g.config = {k: v for k, v in ckpt.config.items() if k != "info"}
    # what the model was trained on and how it scored travels with every export; the resumable
    # training state (per-epoch history, optimiser step) does not
    g.config["info"] = {k: v for k, v in (ckpt.config.get("info") or {}).items() if k != "train_state"}

    # the front-end's spec travels in the config as the checkpoint wrote it (an older one's
    # normalization field reads as the standardisation: exports of old files stay byte for byte)
    g.frontend = _frontend.of_checkpoint(ckpt)
    x = g.frontend.lower(bld, "x")

    hs = bld.node("unstack", ["h"], "h_in", None, n_out=L, shapes=[(B, n)] * L, role="state")
    cs = bld.node("unstack", ["c"], "c_in", None, n_out=L, shapes=[(B, n)] * L, role="state",
                  cell_path="state")
    hs, cs = (hs,) if isinstance(hs, str) else hs, (cs,) if isinstance(cs, str) else cs
    h_out, c_out = [], []
    for k in range(L):
        h_new, c_new = _lower_layer(bld, spec, ckpt.layer_terms(k), k, x, hs[k], cs[k],
                                    m0 if k == 0 else n, n, sigma, g_act)
        h_out.append(h_new)
        c_out.append(c_new)
        x = h_new
    bld.node("stack", h_out, "h_next", (L, B, n), role="state")
    bld.node("stack", c_out, "c_next", (L, B, n), role="state", cell_path="state")
    if "head.weight" in ckpt.tensors:
        w = bld.const("head.weight", ckpt.tensors["head.weight"], role="head")
        b = bld.const("head.bias", ckpt.tensors["head.bias"], role="head")
        bld.node("matmul", [x, w, b], "y", (B, g.initializers[w].shape[0]), role="head")
    else:
        bld.node("identity", [x], "y", (B, n), role="head")
    g.validate()
    return _fold_frontend(g) if fold_normalization else g


def _fold_frontend(g: Graph) -> Graph:
    """The front-end's lowering rule for float files: its last stage folded into its readers."""
    g.frontend.fold(g)
    g.__dict__.pop("_cast", None)
    g.validate()
    return g


def _lower_layer(bld: _Builder, spec, terms: Mapping[str, np.ndarray], k: int, x: str, h: str,
                 c: str, m: int, n: int, sigma: str, g_act: str) -> tuple[str, str]:
    """Emit one layer's step; returns the names of (h', c')."""
    p = f"l{k}."
    role = {"role": "lstm", "layer": k}
    partial: dict[str, list[str]] = {s: [] for s in spec.learned_slots}
    folded: dict[str, str] = {}  # gate -> constant vector σ(b) (LSTM3)
    bias_slots = spec.slots_with("b")
    bias_done: set[str] = set()

    def packed(term: str, slots: tuple[str, ...]) -> np.ndarray:
        return np.concatenate([terms[f"{term}_{s}"] for s in slots], axis=0)

    # bias-only gates: σ(b) is a constant, folded at export
    for s in spec.learned_slots:
        if spec.slot(s).terms == {"b"}:
            act = sigma if s != "c" else g_act
            folded[s] = bld.const(f"{p}gate_{s}",
                                  _activations.function(act)(terms[f"b_{s}"].astype(np.float64)),
                                  role="lstm")
            bias_done.add(s)
            del partial[s]

    # the bias rides in the matmul that covers the most of the remaining bias slots
    open_bias = [s for s in bias_slots if s not in bias_done]
    fits = [t for t in ("W", "U") if spec.slots_with(t) and set(spec.slots_with(t)) <= set(open_bias)]
    bias_term = max(fits, key=lambda t: len(spec.slots_with(t)), default=None)
    groups: list[tuple[tuple[str, ...], str]] = []  # (slots, packed value)
    for term, operand in (("W", x), ("U", h)):
        slots = spec.slots_with(term)
        if not slots:
            continue
        inputs = [operand, bld.const(f"{p}{term}_{''.join(slots)}", packed(term, slots), role="lstm")]
        if term == bias_term:
            inputs.append(bld.const(f"{p}b_{''.join(slots)}", packed("b", slots), role="lstm"))
            bias_done.update(slots)
        val = bld.node("matmul", inputs, f"{p}{'xW' if term == 'W' else 'hU'}", (B, n * len(slots)),
                       **role, term=term)
        if groups and groups[-1][0] == slots:  # x and h products over the same slots: add packed
            prev = groups.pop()[1]
            val = bld.node("add", [prev, val], f"{p}z", (B, n * len(slots)), **role)
        groups.append((slots, val))
    for slots, val in groups:
        parts = (bld.node("split", [val], f"{p}z_{''.join(slots)}", None, n_out=len(slots),
                          shapes=[(B, n)] * len(slots), kernel={"sizes": [n] * len(slots)}, **role)
                 if len(slots) > 1 else (val,))
        for s, v in zip(slots, parts):
            partial[s].append(v)
    for s in spec.slots_with("u"):
        u = bld.const(f"{p}u_{s}", terms[f"u_{s}"], role="lstm")
        partial[s].append(bld.node("mul", [h, u], f"{p}uh_{s}", (B, n), **role, term="u"))
    for s in bias_slots:
        if s not in bias_done:
            partial[s].append(bld.const(f"{p}b_{s}", terms[f"b_{s}"], role="lstm"))

    gate: dict[str, str] = dict(folded)
    for s, vals in partial.items():
        z = vals[0]
        for v in vals[1:]:
            z = bld.node("add", [z, v], f"{p}z_{s}", (B, n), **role)
        act = g_act if s == "c" else sigma
        gate[s] = bld.activation(act, z, f"{p}{'cand' if s == 'c' else 'gate_' + s}", (B, n),
                                 **role)

    # values that read neither x nor the state (σ(b) folded, and products of such): (n,), not (B, n)
    free: set[str] = set(folded.values())

    def scale(s: str, value: str, stem: str) -> str | None:
        """gate_s ⊙ value: nothing for a fixed 1.0, dropped for a fixed 0.0."""
        if s in gate:
            is_free = value in free and gate[s] in free
            out = bld.node("mul", [value, gate[s]], stem, (n,) if is_free else (B, n), **role)
        else:
            const = spec.constants[s]
            if const == 1.0:
                return value
            if const == 0.0:
                return None
            is_free = value in free
            out = bld.node("mul", [value, bld.const(f"{p}const_{s}", np.array([const]))], stem,
                           (n,) if is_free else (B, n), **role)
        if is_free:
            free.add(out)
        return out

    fc = scale("f", c, f"{p}fc")
    ic = scale("i", gate["c"], f"{p}ic")
    if fc is None and ic is None:
        raise ValueError("a layer whose forget and input gates are both fixed at 0 never changes c")
    if fc is None and ic in free:
        # f fixed at 0 and i ⊙ c~ reads no input: c' is one constant vector for every sequence;
        # c ⊙ 0 + i ⊙ c~ gives it the batch's shape (B, n)
        fc = bld.node("mul", [c, bld.const(f"{p}const_f", np.array([0.0]))], f"{p}fc", (B, n),
                      **role)
    c_new = (ic if fc is None else fc if ic is None
             else bld.node("add", [fc, ic], f"{p}c_next", (B, n), **role))
    g_c = bld.activation(g_act, c_new, f"{p}g_c", (B, n), **role)
    h_new = scale("o", g_c, f"{p}h_next")
    _tag_cell_path(bld.g, c, gate["c"], fc, ic, c_new, g_c)
    return h_new, c_new


def _tag_cell_path(g: Graph, c: str, cand: str, fc: str | None, ic: str | None, c_new: str,
                   g_c: str) -> None:
    """Tag one layer's cell-state path for the exporters (:meth:`Graph.cell_state_values`; the
    TFLite int8 export keeps it in int16): f ⊙ c and i ⊙ c~ where they are products, c', g(c')."""
    prod = g.producers()
    for v, part in ((fc, "forget"), (ic, "input"), (c_new, "new")):
        if v is not None and v not in (c, cand) or v == c_new != c:
            prod[v].attrs["cell_path"] = part
    prod[g_c].attrs["cell_path"] = "activation"


from .rollout import Rollout, rollout  # noqa: E402 - the stepping loop, re-exported (it runs a Graph)

__all__ = ["Graph", "Node", "lower", "rollout", "Rollout", "OPS", "B"]
