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

:data:`VARIANTS` holds the papers' twelve rows; :func:`define` makes a variant of your own from the
same data (``define("MyLSTM", i="Wb", f="Wb", o=1.0, c="WUb")``) and :func:`register` makes its
name known to :func:`get`. A spec's :meth:`~VariantSpec.to_config` carries its structure, so a
checkpoint of any variant reads back in any process.

Spec: ``shared/design/slim-variants.md``.
"""
from __future__ import annotations

import dataclasses
import json
import numbers
from dataclasses import dataclass, field
from typing import Mapping

from .errors import UnknownVariantError, UsageError

GATES = ("i", "f", "o")
GATE_ACTIVATIONS = ("sigmoid", "hard_sigmoid")  # σ: Keras' hard_sigmoid is clip(0.2 z + 0.5, 0, 1)
ACTIVATIONS = ("tanh", "sigmoid", "relu")       # g: the cell candidate's and the output's
INITS = ("pytorch", "paper")  # initialisation: torch.nn.LSTM's uniform, or the authors' (models.slim)
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


SLOT_NAMES = {"i": "input gate", "f": "forget gate", "o": "output gate", "c": "cell candidate"}


@dataclass(frozen=True)
class SlotSpec:
    """One gate or the cell candidate: the set of terms, or a fixed constant."""

    terms: frozenset[str]
    const: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "terms", frozenset(self.terms))
        if self.const is not None:
            object.__setattr__(self, "const", float(self.const))
        bad = set(self.terms) - set(TERMS)
        if bad:
            raise UsageError(f"unknown terms {sorted(bad)}; valid terms are {TERMS}")
        if self.terms and self.const is not None:
            raise UsageError("a slot has either terms or a fixed constant, not both")
        if not self.terms and self.const is None:
            raise UsageError("a slot without terms needs a fixed constant")
        if "U" in self.terms and "u" in self.terms:
            raise UsageError("a slot has a full (U) or a point-wise (u) recurrence, not both")

    @property
    def fixed(self) -> bool:
        return self.const is not None

    @property
    def letters(self) -> str:
        """The terms in canonical order, e.g. ``'WUb'`` (empty for a fixed gate)."""
        return "".join(t for t in TERMS if t in self.terms)

    def to_config(self) -> str | float:
        """``'Wb'``-style letters, or the constant of a fixed gate (JSON-able)."""
        return self.const if self.fixed else self.letters

    def form(self) -> str:
        """Human-readable pre-activation, e.g. ``'W x + U h + b'`` or ``'0.96'``."""
        if self.fixed:
            return f"{self.const:g}"
        words = {"W": "W x", "U": "U h", "u": "u⊙h", "b": "b"}
        return " + ".join(words[t] for t in TERMS if t in self.terms)


def _slot(terms: str = "", const: float | None = None) -> SlotSpec:
    return SlotSpec(frozenset(terms), const)


def _slot_error(variant: str, slot: str, problem: str) -> UsageError:
    return UsageError(f"{variant}: {SLOT_NAMES.get(slot, 'slot')} {slot!r}: {problem}")


def _parse_slot(value: "str | float | SlotSpec", *, variant: str = "variant",
               slot: str = "c") -> SlotSpec:
    """A slot from its short form: letters from ``'WUub'`` (its terms) or a number (a fixed gate).

    Errors are UsageErrors (ValueErrors) naming the variant and the slot."""
    if isinstance(value, SlotSpec):
        return value
    if isinstance(value, bool) or not isinstance(value, (str, numbers.Real)):
        raise _slot_error(variant, slot, f"give terms as letters from 'WUub' or a constant in "
                                         f"[0, 1], not {type(value).__name__} {value!r}")
    if isinstance(value, numbers.Real):
        if slot == "c":
            raise _slot_error(variant, slot, "the cell candidate needs terms (letters from "
                                             "'WUub'); only a gate can be a fixed constant")
        _check_constant(variant, slot, float(value))
        return _slot(const=float(value))
    letters = value.strip()
    if not letters:
        raise _slot_error(variant, slot, "no terms: give letters from 'WUub' (W input matrix, "
                                         "U recurrent matrix, u point-wise recurrence, b bias)"
                                         + (" or a constant in [0, 1]" if slot != "c" else ""))
    bad = sorted(set(letters) - set(TERMS))
    if bad:
        raise _slot_error(variant, slot, f"unknown term(s) {', '.join(map(repr, bad))} in "
                                         f"{value!r}; the terms are W, U, u and b")
    twice = sorted({t for t in letters if letters.count(t) > 1})
    if twice:
        raise _slot_error(variant, slot, f"term(s) {', '.join(twice)} given twice in {value!r}")
    if "U" in letters and "u" in letters:
        raise _slot_error(variant, slot, f"{value!r} has both a full (U) and a point-wise (u) "
                                         f"recurrence; a slot has one or the other")
    return _slot(letters)


def _check_constant(variant: str, gate: str, value: float) -> None:
    """A fixed gate's value: in [0, 1]; an input or output gate of 0 is not a model."""
    if not 0.0 <= value <= 1.0:  # also refuses NaN
        raise UsageError(f"{variant}: constant for gate {gate!r} must lie in [0, 1], got {value}")
    if value == 0.0 and gate in ("i", "o"):
        never = "the cell state c would never change from 0" if gate == "i" else "h would always be 0"
        raise UsageError(f"{variant}: a fixed {gate} gate of 0 is not a model: {never}")


@dataclass(frozen=True)
class VariantSpec:
    """One SLIM variant: which terms each gate and the cell candidate hold.

    Catalogue rows come from :data:`VARIANTS`; a variant of your own from :func:`define`. Every
    spec is checked on construction (each slot's terms, the cell has terms, fixed gates' values).
    """

    name: str
    slots: Mapping[str, SlotSpec]
    summary: str = ""
    # the slot replacement in use: the input-only cell reading has been applied
    input_only_cell: bool = False
    # the constants the variant was defined with (informative: not part of equality)
    default_constants: Mapping[str, float] = field(default_factory=dict, compare=False)
    # the slot replacement ``input_only_cell=True`` applies: the cell candidate keeps only its W
    # and b terms. Empty where the variant offers no such reading (in the catalogue: all but C6).
    input_only_reading: Mapping[str, SlotSpec] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip() or self.name != self.name.strip():
            raise UsageError(f"a variant name is a non-empty string without surrounding blanks, "
                             f"got {self.name!r}")
        if set(self.slots) != set(SLOTS):
            raise UsageError(f"{self.name}: a variant has exactly the slots {', '.join(SLOTS)}, "
                             f"got {', '.join(map(str, self.slots)) or 'none'}")
        object.__setattr__(self, "slots", {s: self.slots[s] for s in SLOTS})
        for s, slot in self.slots.items():
            if not isinstance(slot, SlotSpec):
                raise TypeError(f"{self.name}: slot {s!r} must be a SlotSpec (define() turns "
                                f"'Wb' or 0.5 into one), got {type(slot).__name__}")
            if slot.fixed:
                if s == "c":
                    raise _slot_error(self.name, s, "the cell candidate needs terms; only a gate "
                                                    "can be a fixed constant")
                _check_constant(self.name, s, float(slot.const))
        for s, slot in self.input_only_reading.items():
            if s not in SLOTS or not isinstance(slot, SlotSpec) or (s == "c" and slot.fixed):
                raise UsageError(f"{self.name}: input_only_reading must map slots to SlotSpecs "
                                 f"(the cell with terms), got {s!r}: {slot!r}")

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
                raise UsageError(
                    f"{self.name}: gate {gate!r} is not a fixed gate (fixed gates: {fixed})")
            value = float(value)
            _check_constant(self.name, gate, value)
            slots[gate] = _slot(const=value)
        return dataclasses.replace(self, slots=slots)

    def with_input_only_cell(self) -> "VariantSpec":
        """The input-only cell reading: the slot replacement :attr:`input_only_reading` (LSTM_C6:
        c~ = g(W_c x + b_c), params mn + n). Variants that offer none refuse it."""
        if self.input_only_cell:
            return self
        if not self.input_only_reading:
            offering = ", ".join(v.name for v in VARIANTS.values() if v.input_only_reading)
            raise UsageError(f"the input-only cell reading applies to {offering} only (variants "
                             f"with an input_only_reading), not {self.name}")
        return dataclasses.replace(self, slots={**self.slots, **self.input_only_reading},
                                   input_only_cell=True)

    def to_config(self) -> dict:
        """JSON-able description that :func:`from_config` turns back into this spec, in any
        process: the structure itself (per slot its terms or constant), not only the name."""
        cfg = {"name": self.name, "slots": {s: slot.to_config() for s, slot in self.slots.items()},
               "constants": self.constants, "input_only_cell": self.input_only_cell}
        if self.summary:
            cfg["summary"] = self.summary
        if self.input_only_reading:
            cfg["input_only_reading"] = {s: v.to_config() for s, v in self.input_only_reading.items()}
        return cfg

    def describe(self) -> dict:
        """Per-slot forms, for tables and JSON output."""
        return {s: self.slots[s].form() for s in SLOTS}


def _variant(name: str, gates: SlotSpec | dict[str, SlotSpec], cell: str, summary: str,
             input_only_reading: bool = False) -> VariantSpec:
    if isinstance(gates, SlotSpec):
        gates = {g: gates for g in GATES}
    slots = {**gates, "c": _slot(cell)}
    consts = {s: v.const for s, v in slots.items() if v.fixed}
    # the input-only reading: the cell keeps only its W and b terms
    reading = {"c": _slot("".join(t for t in "Wb" if t in cell))} if input_only_reading else {}
    return VariantSpec(name=name, slots=slots, summary=summary, default_constants=consts,
                       input_only_reading=reading)


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
             "Wub", "fixed gates and point-wise cell recurrence", input_only_reading=True),
]}

ALIASES: dict[str, str] = {
    "lstm": "LSTM0", "std": "LSTM0", "lstm_6": "LSTM6", "c6": "LSTM_C6", "lstmc6": "LSTM_C6",
}
_LOOKUP = {**{k.lower(): k for k in VARIANTS}, **ALIASES}
# variants registered by the user in this process, by lower-case name
_REGISTERED: dict[str, VariantSpec] = {}


def define(name: str, *, i: "str | float", f: "str | float", o: "str | float", c: str,
           summary: str = "") -> VariantSpec:
    """A variant of your own: per gate its terms or a fixed constant, and the cell's terms.

    Terms are letters from ``'WUub'``: ``W`` full input matrix (W x), ``U`` full recurrent matrix
    (U h), ``u`` point-wise recurrent weight (u ⊙ h), ``b`` bias. A number fixes a gate to that
    constant (in [0, 1]; never trainable; an input or output gate of 0 is refused). E.g.
    ``define("MyLSTM", i="Wb", f="Wb", o=1.0, c="WUb")``. The spec trains, saves (its checkpoint
    carries the structure), lowers and exports like a catalogue row; :func:`register` makes its
    name known to :func:`get` and ``--variant`` in this process.
    """
    if not isinstance(name, str) or not name.strip() or name != name.strip():
        raise UsageError(f"a variant name is a non-empty string without surrounding blanks, "
                         f"got {name!r}")
    if name.lower() in _LOOKUP:
        raise UsageError(f"{name!r} is the catalogue's {_LOOKUP[name.lower()]}; give your "
                         f"variant another name")
    given = {"i": i, "f": f, "o": o, "c": c}
    slots = {s: _parse_slot(v, variant=name, slot=s) for s, v in given.items()}
    consts = {s: v.const for s, v in slots.items() if v.fixed}
    return VariantSpec(name=name, slots=slots, summary=str(summary), default_constants=consts)


def parse(text: str) -> VariantSpec:
    """A variant written inline, for the command line: ``"i=W,f=W,o=0.5,c=WUb"``, optionally
    named ``"MyLSTM:i=W,f=W,o=0.5,c=WUb"`` (default name ``custom``); the same rules as
    :func:`define`. ``slimedge train --variant "MyLSTM:i=Wb,f=Wb,o=1,c=WUb"``."""
    name, _, body = str(text).strip().rpartition(":")
    slots: dict[str, str | float] = {}
    for item in body.split(","):
        key, eq, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not eq or key not in SLOTS or key in slots:
            raise UsageError(f"variant {text!r}: expected i=..., f=..., o=..., c=... once each "
                             f"(terms from 'WUub' or a gate's constant), got {item.strip()!r}")
        try:
            slots[key] = float(value)
        except ValueError:
            slots[key] = value
    missing = [k for k in SLOTS if k not in slots]
    if missing:
        raise UsageError(f"variant {text!r}: no {', '.join(missing)} given")
    return define(name.strip() or "custom", **slots)


def register(spec: VariantSpec, *, replace: bool = False) -> VariantSpec:
    """Make ``spec``'s name known to :func:`get` (and so to ``--variant``) in this process."""
    if not isinstance(spec, VariantSpec):
        raise TypeError(f"register takes a VariantSpec (see define()), got {type(spec).__name__}")
    key = spec.name.lower()
    if key in _LOOKUP:
        raise UsageError(f"{spec.name!r} is the catalogue's {_LOOKUP[key]}; a registered variant "
                         f"needs another name")
    old = _REGISTERED.get(key)
    if old is not None and old != spec and not replace:
        raise UsageError(f"another variant is registered as {old.name!r} ({old.describe()}); "
                         f"pass replace=True to replace it")
    _REGISTERED[key] = spec
    return spec


def unregister(name: str) -> None:
    """Forget a variant :func:`register` made known."""
    if _REGISTERED.pop(str(name).strip().lower(), None) is None:
        raise UnknownVariantError(f"no registered variant {name!r}")


def registered() -> dict[str, VariantSpec]:
    """The variants registered in this process, by name."""
    return {v.name: v for v in _REGISTERED.values()}


def canonical_name(name: str) -> str:
    """The canonical name for ``name`` (case-insensitive; aliases and registered names accepted)."""
    key = str(name).strip().lower()
    if key in _LOOKUP:
        return _LOOKUP[key]
    if key in _REGISTERED:
        return _REGISTERED[key].name
    aliases = ", ".join(f"{a} -> {c}" for a, c in ALIASES.items())
    mine = f"; registered: {', '.join(registered())}" if _REGISTERED else ""
    raise UnknownVariantError(
        f"unknown variant {name!r}; valid names: {', '.join(VARIANTS)} "
        f"(case-insensitive; aliases: {aliases}){mine}")


def get(name: str | VariantSpec, *, constants: Mapping[str, float] | None = None,
        input_only_cell: bool = False) -> VariantSpec:
    """The spec for a variant name, alias, registered name or a spec itself, optionally with other
    fixed-gate constants and the input-only cell reading."""
    if isinstance(name, VariantSpec):
        spec = name
    elif "=" in str(name):
        spec = parse(name)
    else:
        key = canonical_name(name)
        spec = VARIANTS[key] if key in VARIANTS else _REGISTERED[key.lower()]
    spec = spec.with_constants(constants)
    if input_only_cell:
        spec = spec.with_input_only_cell()
    return spec


def from_config(config: Mapping | str) -> VariantSpec:
    """Inverse of :meth:`VariantSpec.to_config` (accepts the dict, its JSON, or a bare name).

    A config with ``slots`` is rebuilt from them, registered or not; a catalogue name's slots must
    be that row's (under its constants and reading). An older config (name, constants,
    input_only_cell only) is looked up by name. ``constants``, when given, override the values of
    the fixed gates.
    """
    if isinstance(config, str):
        config = json.loads(config) if config.lstrip().startswith("{") else {"name": config}
    if not isinstance(config, Mapping) or "name" not in config:
        raise UsageError(f"a variant config is a name or a mapping with a 'name', got {config!r}")
    name = config["name"]
    constants = dict(config.get("constants") or {})
    input_only = bool(config.get("input_only_cell"))
    if "slots" not in config:  # an older config: the name says it all
        base = get(name)
        constants = {k: v for k, v in constants.items() if base.constants.get(k) != v}
        return get(base, constants=constants, input_only_cell=input_only)
    raw = config["slots"]
    if not isinstance(raw, Mapping) or set(raw) != set(SLOTS):
        raise UsageError(f"{name}: config 'slots' must give each of {', '.join(SLOTS)}, got {raw!r}")
    slots = {s: _parse_slot(raw[s], variant=str(name), slot=s) for s in SLOTS}
    if str(name).strip().lower() in _LOOKUP:
        spec = get(name, input_only_cell=input_only)
        spec = spec.with_constants({s: v.const for s, v in slots.items() if v.fixed
                                    and spec.slots[s].fixed})
        if {s: v.letters for s, v in spec.slots.items()} != {s: v.letters for s, v in slots.items()}:
            raise UsageError(f"config names the catalogue's {spec.name} but its slots {dict(raw)} "
                             f"are not that variant's ({spec.to_config()['slots']})")
        return spec.with_constants(constants)
    reading = {s: _parse_slot(v, variant=str(name), slot=s)
               for s, v in (config.get("input_only_reading") or {}).items()}
    spec = VariantSpec(name=name, slots=slots, summary=str(config.get("summary", "")),
                       input_only_cell=input_only, input_only_reading=reading,
                       default_constants={s: v.const for s, v in slots.items() if v.fixed})
    return spec.with_constants(constants)


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


__all__ = ["VARIANTS", "VariantSpec", "get", "define", "parse", "register", "unregister"]
