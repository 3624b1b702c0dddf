"""The SLIM LSTM catalogue as data.

A variant is a :class:`VariantSpec`: for each of the three gates (``i``, ``f``, ``o``) and for the
cell candidate (``c``) it says which terms the pre-activation holds:

    ``W``  full input matrix        (n, m)   W x
    ``U``  full recurrent matrix    (n, n)   U h
    ``u``  point-wise recurrence    (n,)     u ⊙ h
    ``b``  bias                     (n,)     b

or, for a gate with no terms, the fixed constant the gate takes. Everything else (parameter counts,
multiply-accumulates, PyTorch modules, the step IR, the exporters) is derived from these specs; the
equations are never restated. This module does not import torch.

Spec: ``shared/design/slim-variants.md``.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Mapping

GATES = ("i", "f", "o")
GATE_ACTIVATIONS = ("sigmoid", "hard_sigmoid")  # σ: Keras' hard_sigmoid is clip(0.2 z + 0.5, 0, 1)
ACTIVATIONS = ("tanh", "sigmoid", "relu")       # g: the cell candidate's and the output's
SLOTS = ("i", "f", "o", "c")  # the three gates, then the cell candidate
TERMS = ("W", "U", "u", "b")

# shape of one term, as a function of (input size m, hidden size n)
_TERM_SIZE = {
    "W": lambda m, n: m * n,
    "U": lambda m, n: n * n,
    "u": lambda m, n: n,
    "b": lambda m, n: n,
}
# multiply-accumulates one term costs per time step (bias is an add, not a MAC)
_TERM_MACS = {
    "W": lambda m, n: m * n,
    "U": lambda m, n: n * n,
    "u": lambda m, n: n,
    "b": lambda m, n: 0,
}


class UnknownVariantError(KeyError, ValueError):
    """Raised for a variant name that is neither canonical nor an alias."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0])


@dataclass(frozen=True)
class SlotSpec:
    """One gate or the cell candidate: the set of terms, or a fixed constant."""

    terms: frozenset[str]
    const: float | None = None

    def __post_init__(self) -> None:
        bad = set(self.terms) - set(TERMS)
        if bad:
            raise ValueError(f"unknown terms {sorted(bad)}; valid terms are {TERMS}")
        if self.terms and self.const is not None:
            raise ValueError("a slot has either terms or a fixed constant, not both")
        if not self.terms and self.const is None:
            raise ValueError("a slot without terms needs a fixed constant")
        if "U" in self.terms and "u" in self.terms:
            raise ValueError("a slot has a full (U) or a point-wise (u) recurrence, not both")

    @property
    def fixed(self) -> bool:
        return self.const is not None

    def form(self) -> str:
        """Human-readable pre-activation, e.g. ``'W x + U h + b'`` or ``'0.96'``."""
        if self.fixed:
            return f"{self.const:g}"
        words = {"W": "W x", "U": "U h", "u": "u⊙h", "b": "b"}
        return " + ".join(words[t] for t in TERMS if t in self.terms)


def _slot(terms: str = "", const: float | None = None) -> SlotSpec:
    return SlotSpec(frozenset(terms), const)


@dataclass(frozen=True)
class VariantSpec:
    """One SLIM variant: which terms each gate and the cell candidate hold."""

    name: str
    slots: Mapping[str, SlotSpec]
    summary: str = ""
    # LSTM_C6 only: the harsher reading c~ = g(W_c x + b_c) is in use
    input_only_cell: bool = False
    default_constants: Mapping[str, float] = field(default_factory=dict)

    # ---- structure -------------------------------------------------------------------------
    def slot(self, name: str) -> SlotSpec:
        return self.slots[name]

    def has(self, slot: str, term: str) -> bool:
        return term in self.slots[slot].terms

    def slots_with(self, term: str) -> tuple[str, ...]:
        """The slots (in i, f, o, c order) that hold ``term``."""
        return tuple(s for s in SLOTS if self.has(s, term))

    @property
    def learned_slots(self) -> tuple[str, ...]:
        return tuple(s for s in SLOTS if not self.slots[s].fixed)

    @property
    def constants(self) -> dict[str, float]:
        """The fixed gates and their values, e.g. ``{'f': 0.96, 'o': 1.0}``."""
        return {s: self.slots[s].const for s in SLOTS if self.slots[s].fixed}

    def term_names(self) -> list[str]:
        """The parameters under the papers' names, e.g. ``['W_c', 'U_c', 'b_c', 'u_i']``."""
        return [f"{t}_{s}" for t in TERMS for s in SLOTS if self.has(s, t)]

    def term_shape(self, term: str, input_size: int, hidden_size: int) -> tuple[int, ...]:
        return {"W": (hidden_size, input_size), "U": (hidden_size, hidden_size),
                "u": (hidden_size,), "b": (hidden_size,)}[term]

    # ---- cost ------------------------------------------------------------------------------
    def num_params(self, input_size: int, hidden_size: int) -> int:
        """Trainable parameters of one layer with input size m and hidden size n."""
        return sum(_TERM_SIZE[t](input_size, hidden_size)
                   for s in SLOTS for t in self.slots[s].terms)

    def macs_per_step(self, input_size: int, hidden_size: int) -> int:
        """Multiply-accumulates of one layer for one time step: W·x, U·h and u⊙h terms.

        The O(n) element-wise work of the cell update itself (gate products, activations) is
        not counted, as in the spec's "work per step" table.
        """
        return sum(_TERM_MACS[t](input_size, hidden_size)
                   for s in SLOTS for t in self.slots[s].terms)

    def recurrent_macs_per_step(self, input_size: int, hidden_size: int) -> int:
        """The MACs on the sequential critical path (U·h and u⊙h); W·x can be batched over time."""
        return sum(_TERM_MACS[t](input_size, hidden_size)
                   for s in SLOTS for t in self.slots[s].terms if t in ("U", "u"))

    # ---- options ---------------------------------------------------------------------------
    def with_constants(self, constants: Mapping[str, float] | None) -> "VariantSpec":
        """A copy whose fixed gates take other values (only gates the variant fixes)."""
        if not constants:
            return self
        slots = dict(self.slots)
        for gate, value in constants.items():
            if gate not in slots or not slots[gate].fixed:
                fixed = sorted(self.constants) or "none"
                raise ValueError(
                    f"{self.name}: gate {gate!r} is not a fixed gate (fixed gates: {fixed})")
            value = float(value)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{self.name}: constant for gate {gate!r} must lie in [0, 1], "
                                 f"got {value}")
            if value == 0.0 and gate in ("i", "o"):
                never = "the cell state c would never change from 0" if gate == "i" else "h would always be 0"
                raise ValueError(f"{self.name}: a fixed {gate} gate of 0 is not a model: {never}")
            slots[gate] = _slot(const=value)
        return dataclasses.replace(self, slots=slots)

    def with_input_only_cell(self) -> "VariantSpec":
        """LSTM_C6's harsher reading, c~ = g(W_c x + b_c) (params mn + n)."""
        if self.name != "LSTM_C6":
            raise ValueError(f"the input-only cell reading applies to LSTM_C6 only, not {self.name}")
        slots = dict(self.slots)
        slots["c"] = _slot("Wb")
        return dataclasses.replace(self, slots=slots, input_only_cell=True)

    def to_config(self) -> dict:
        """JSON-able description that :func:`from_config` turns back into this spec."""
        return {"name": self.name, "constants": self.constants,
                "input_only_cell": self.input_only_cell}

    def describe(self) -> dict:
        """Per-slot forms, for tables and JSON output."""
        return {s: self.slots[s].form() for s in SLOTS}


def _variant(name: str, gates: SlotSpec | dict[str, SlotSpec], cell: str, summary: str) -> VariantSpec:
    if isinstance(gates, SlotSpec):
        gates = {g: gates for g in GATES}
    slots = {**gates, "c": _slot(cell)}
    consts = {s: v.const for s, v in slots.items() if v.fixed}
    return VariantSpec(name=name, slots=slots, summary=summary, default_constants=consts)


# The catalogue: the table of slim-variants.md, row by row.
VARIANTS: dict[str, VariantSpec] = {v.name: v for v in [
    _variant("LSTM0", _slot("WUb"), "WUb", "standard LSTM"),
    _variant("LSTM1", _slot("Ub"), "WUb", "gates without input term"),
    _variant("LSTM2", _slot("U"), "WUb", "gates without input term or bias"),
    _variant("LSTM3", _slot("b"), "WUb", "gates are learned constants (bias only)"),
    _variant("LSTM4", _slot("u"), "WUb", "point-wise recurrent gates, no bias"),
    _variant("LSTM5", _slot("ub"), "WUb", "point-wise recurrent gates with bias"),
    _variant("LSTM4a", {"i": _slot("u"), "f": _slot(const=0.96), "o": _slot(const=1.0)}, "WUb",
             "point-wise input gate; fixed forget and output gates"),
    _variant("LSTM5a", {"i": _slot("ub"), "f": _slot(const=0.96), "o": _slot(const=1.0)}, "WUb",
             "point-wise input gate with bias; fixed forget and output gates"),
    _variant("LSTM6", {"i": _slot(const=1.0), "f": _slot(const=0.4), "o": _slot(const=1.0)}, "WUb",
             "all gates fixed"),
    _variant("LSTM10", _slot("u"), "Wub", "point-wise gates and point-wise cell recurrence"),
    _variant("LSTM11", _slot("ub"), "Wub",
             "point-wise gates with bias and point-wise cell recurrence"),
    _variant("LSTM_C6", {"i": _slot(const=1.0), "f": _slot(const=0.4), "o": _slot(const=1.0)},
             "Wub", "fixed gates and point-wise cell recurrence"),
]}

ALIASES: dict[str, str] = {
    "lstm": "LSTM0", "std": "LSTM0", "lstm_6": "LSTM6", "c6": "LSTM_C6", "lstmc6": "LSTM_C6",
}
_LOOKUP = {**{k.lower(): k for k in VARIANTS}, **ALIASES}


def canonical_name(name: str) -> str:
    """The canonical name for ``name`` (case-insensitive; aliases accepted)."""
    key = str(name).strip().lower()
    if key not in _LOOKUP:
        aliases = ", ".join(f"{a} -> {c}" for a, c in ALIASES.items())
        raise UnknownVariantError(
            f"unknown variant {name!r}; valid names: {', '.join(VARIANTS)} "
            f"(case-insensitive; aliases: {aliases})")
    return _LOOKUP[key]


def get(name: str | VariantSpec, *, constants: Mapping[str, float] | None = None,
        input_only_cell: bool = False) -> VariantSpec:
    """The spec for a variant name or alias, optionally with other fixed-gate constants."""
    spec = name if isinstance(name, VariantSpec) else VARIANTS[canonical_name(name)]
    spec = spec.with_constants(constants)
    if input_only_cell and not spec.input_only_cell:
        spec = spec.with_input_only_cell()
    return spec


def from_config(config: Mapping | str) -> VariantSpec:
    """Inverse of :meth:`VariantSpec.to_config` (accepts the dict, its JSON, or a bare name)."""
    if isinstance(config, str):
        config = json.loads(config) if config.lstrip().startswith("{") else {"name": config}
    base = get(config["name"])
    constants = {k: v for k, v in (config.get("constants") or {}).items()
                 if base.constants.get(k) != v}
    return get(base, constants=constants, input_only_cell=bool(config.get("input_only_cell")))


def table(input_size: int, hidden_size: int) -> list[dict]:
    """The catalogue as rows: forms, parameters, MACs per step and ratios to LSTM0."""
    base = VARIANTS["LSTM0"]
    p0 = base.num_params(input_size, hidden_size)
    k0 = base.macs_per_step(input_size, hidden_size)
    rows = []
    for spec in VARIANTS.values():
        p = spec.num_params(input_size, hidden_size)
        k = spec.macs_per_step(input_size, hidden_size)
        rows.append({
            "name": spec.name, "summary": spec.summary, "forms": spec.describe(),
            "constants": spec.constants, "params": p, "macs_per_step": k,
            "recurrent_macs_per_step": spec.recurrent_macs_per_step(input_size, hidden_size),
            "params_ratio_to_lstm0": p / p0, "macs_ratio_to_lstm0": k / k0,
        })
    return rows


__all__ = ["VariantSpec", "SlotSpec", "VARIANTS", "ALIASES", "GATES", "SLOTS", "TERMS", "get",
           "GATE_ACTIVATIONS", "ACTIVATIONS",
           "canonical_name", "from_config", "table", "UnknownVariantError"]
