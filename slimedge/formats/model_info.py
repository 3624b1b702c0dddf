"""ModelInfo: one typed, schema-checked view of a model file's slimedge config, whatever its format.

Also the schema's pieces every reader shares: :func:`parse_json` (a config from a file's metadata
text), :data:`LIMITS` on sizes read from files, and :func:`printable`. This module imports
nothing beyond the standard library and :mod:`slimedge.errors`.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..errors import ModelFileError

METADATA_KEY = "slimedge"
"""The key under which every format stores the model's config JSON in its file's metadata."""
CHECKPOINT_FORMAT = "safetensors"


@dataclass(frozen=True)
class ModelInfo:
    """What a model file says about its model, whatever its format.

    ``data`` is the data set the model was trained on, as recorded (``None`` when not recorded);
    ``export`` the export section (format, quantisation, ...; empty for a checkpoint);
    :attr:`frontend` the stages before the model (:mod:`slimedge.frontend`).
    """

    path: Path | None
    format: str
    config: dict
    variant: str
    input_size: int
    hidden_size: int
    num_layers: int
    output_size: int
    labels: tuple[str, ...] | None
    data: dict | None
    export: dict

    @property
    def quantize(self) -> str:
        return str(self.export.get("quantize", "none"))

    @property
    def is_checkpoint(self) -> bool:
        return self.format == CHECKPOINT_FORMAT

    @property
    def state_shape(self) -> tuple[int, int]:
        return (self.num_layers, self.hidden_size)

    @property
    def frontend(self):
        """The :class:`~slimedge.frontend.Frontend` the config describes (its stages' specs; an
        older file's ``normalization`` field reads as the standardisation stage)."""
        from ..frontend import Frontend

        return Frontend.from_config(self.config)

    @property
    def spec(self):
        """The :class:`~slimedge.variants.VariantSpec` the config describes."""
        from .. import variants

        return variants.from_config(self.config["lstm"]["variant"])

    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, path: str | os.PathLike | None = None,
                    format: str | None = None) -> "ModelInfo":
        """The typed view of a config dict, checked against the schema: every field slimedge reads
        has its type, sizes are whole numbers within :data:`LIMITS`, strings are printable, and
        nesting is at most :data:`MAX_DEPTH` deep. Anything else is a ModelFileError naming
        ``path`` and the field."""
        where = path if path is not None else "model config"
        try:
            if not isinstance(config, Mapping):
                raise _Bad("(config)", f"must be a JSON object, got {type(config).__name__}")
            _check_depth(config)
            return cls._parse(dict(config), path, format)
        except _Bad as e:
            raise ModelFileError(f"{where}: its slimedge config is malformed: {e.field} "
                                 f"{e.message}") from None
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError,
                RecursionError) as e:
            if isinstance(e, ModelFileError):
                raise
            raise ModelFileError(f"{where}: its slimedge config is malformed "
                                 f"({type(e).__name__}: {e})") from None

    @classmethod
    def _parse(cls, config: dict, path, format: str | None) -> "ModelInfo":
        lstm = _field(config, "lstm", dict, required=True)
        variant = lstm.get("variant")
        if isinstance(variant, str):
            name = variant
        elif isinstance(variant, dict):
            name = _field(variant, "name", str, "lstm.variant.", required=True)
            # a type-wrong value would be read as no constants (the defaults), without a word
            for key, value in (_field(variant, "constants", dict, "lstm.variant.") or {}).items():
                _number(f"lstm.variant.constants.{key}", value)
        else:
            raise _Bad("lstm.variant", f"must be a name or an object, got {_kind(variant)}")
        _text("lstm.variant", name)
        for key in ("gate_activation", "activation"):
            _text(f"lstm.{key}", _field(lstm, key, str, "lstm."))
        if "dropout" in lstm:
            _number("lstm.dropout", lstm["dropout"])
        graph = _field(config, "graph", dict)
        head = _field(config, "head", dict) or {}
        kind = config.get("kind", "slim_lstm")
        _text("kind", kind)
        names = ("input_size", "hidden_size", "num_layers", "output_size")
        if graph is not None:
            raw = [("graph." + k, graph.get(k, _MISSING)) for k in names]
        else:
            out = (("head.num_classes", head.get("num_classes", _MISSING)) if kind == "classifier"
                   else ("lstm.hidden_size", lstm.get("hidden_size", _MISSING)))
            raw = [("lstm.input_size", lstm.get("input_size", _MISSING)),
                   ("lstm.hidden_size", lstm.get("hidden_size", _MISSING)),
                   ("lstm.num_layers", lstm.get("num_layers", 1)), out]
        sizes = [_count(f, v) for f, v in raw]
        for (f, _), v, limit in zip(raw, sizes, (LIMITS["input_size"], LIMITS["hidden_size"],
                                                 LIMITS["num_layers"], LIMITS["output_size"])):
            if v > limit:
                raise _Bad(f, f"is {v:,}, over slimedge's limit of {limit:,}")
        m, n, layers, k = sizes
        params = 4 * n * (m + n + 1) + (layers - 1) * 4 * n * (2 * n + 1) + k * (n + 1)
        if params > LIMITS["params"]:
            raise _Bad("(sizes)", f"describe about {params:,} parameters, over slimedge's limit "
                                  f"of {LIMITS['params']:,}")
        if "num_classes" in head:
            _count("head.num_classes", head["num_classes"])
        labels = head.get("labels")
        if labels is not None:
            if not isinstance(labels, list):
                raise _Bad("head.labels", f"must be a list of strings, got {_kind(labels)}")
            if len(labels) > LIMITS["output_size"]:
                raise _Bad("head.labels", f"holds {len(labels):,} names, over the limit of "
                                          f"{LIMITS['output_size']:,}")
            for j, x in enumerate(labels):
                if not isinstance(x, (str, int)) or isinstance(x, bool):
                    raise _Bad(f"head.labels[{j}]", f"must be a string, got {_kind(x)}")
                _text(f"head.labels[{j}]", str(x))
            labels = tuple(str(x) for x in labels)
        info = _field(config, "info", dict) or {}
        data = _field(info, "data", dict, "info.")
        if data is not None:
            for key, types in _DATA_FIELDS.items():
                if data.get(key) is not None and (not isinstance(data[key], types)
                                                  or isinstance(data[key], bool)):
                    raise _Bad(f"info.data.{key}", f"must be {_DATA_KINDS[key]}, got "
                                                   f"{_kind(data[key])}")
            for key in ("val_fraction", "test_fraction"):
                if data.get(key) is not None:
                    _number(f"info.data.{key}", data[key])
            for key in ("split_seed", "limit"):
                if data.get(key) is not None and not -2**63 <= data[key] < 2**63:
                    raise _Bad(f"info.data.{key}", f"is out of range: {data[key]}")
        if "frontend" in config:
            from ..frontend import Frontend

            _field(config, "frontend", dict)
            try:
                Frontend.from_config(config)
            except ValueError as e:
                raise _Bad("frontend", f"is not one slimedge reads: {e}") from None
        export = _field(config, "export", dict) or {}
        for key in ("format", "mode", "quantize", "prefix"):
            _text(f"export.{key}", _field(export, key, str, "export."))
        if format is None:
            format = export.get("format", CHECKPOINT_FORMAT if graph is None else "?")
        return cls(path=Path(path) if path is not None else None, format=str(format),
                   config=config, variant=str(name), input_size=m, hidden_size=n,
                   num_layers=layers, output_size=k, labels=labels, data=data,
                   export=export)


# ---- the schema's pieces ----------------------------------------------------------------------
LIMITS = {"input_size": 65_536, "hidden_size": 8_192, "num_layers": 64, "output_size": 65_536,
          "params": 1 << 28, "classes": 65_536, "validation_steps": 100_000,
          "validation_batch": 1_024, "sequence_frames": 1 << 27,
          "batch": 65_536, "batch_floats": 1 << 28, "threads": 256,
          "npz_members": 64, "npz_bytes": 1 << 32, "npz_ratio": 200,
          "tflite_metadata": 1_024}
"""Stated caps on sizes read from files, options and labels, checked before anything is
allocated: the largest model slimedge builds is about 2^28 parameters (1 GiB of float32). Also:
streams in one batch (``batch``) and the floats of one batch's buffers (``batch_floats``, 1 GiB),
backend threads (``threads``), a ``.npz``'s members, their total decompressed bytes (4 GiB) and
the compression ratio of a member over 16 MiB (``npz_ratio``: a zip bomb), and the Metadata
entries of a TFLite file."""
MAX_DEPTH = 32
"""The deepest nesting of objects and lists a model's config may have."""
_MISSING = object()
_DATA_FIELDS = {"name": str, "source": str, "path": str, "sha256": str, "split": str,
                "split_seed": int, "limit": int, "val_fraction": (int, float),
                "test_fraction": (int, float), "train_extra": str}
_DATA_KINDS = {"name": "a string", "source": "a string", "path": "a string", "sha256": "a string",
               "split": "a string", "split_seed": "an integer", "limit": "an integer",
               "val_fraction": "a number", "test_fraction": "a number",
               "train_extra": "a string"}


class _Bad(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field} {message}")
        self.field, self.message = field, message


def _kind(v) -> str:
    if v is _MISSING:
        return "nothing"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            type(None): "null"}.get(type(v), f"the number {v!r}" if isinstance(v, (int, float))
                                     else type(v).__name__)


def _field(section: dict, key: str, typ: type, prefix: str = "", *, required: bool = False):
    """``section[key]`` when it has type ``typ`` (None when absent and not required)."""
    v = section.get(key, _MISSING)
    if v is _MISSING or (v is None and not required):
        if required:
            raise _Bad(prefix + key, "is missing")
        return None
    if not isinstance(v, typ) or isinstance(v, bool) and typ is not bool:
        what = {dict: "an object", str: "a string", list: "a list"}.get(typ, typ.__name__)
        raise _Bad(prefix + key, f"must be {what}, got {_kind(v)}")
    return v


def printable(text: str) -> bool:
    """No control characters (ANSI escapes, newlines, NUL, bidi overrides) in ``text``."""
    import unicodedata

    return all(unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co") for ch in text)


def _text(field: str, v) -> None:
    if v is None:
        return
    if len(v) > 1000:
        raise _Bad(field, f"is {len(v):,} characters long (at most 1000)")
    if not printable(v):
        raise _Bad(field, f"holds control characters: {v!r}")


def _number(field: str, v) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise _Bad(field, f"must be a finite number, got {_kind(v)}")
    return float(v)


def _check_depth(obj, depth: int = 0) -> None:
    if depth > MAX_DEPTH:
        raise _Bad("(config)", f"is nested more than {MAX_DEPTH} levels deep")
    if isinstance(obj, Mapping):
        for v in obj.values():
            if isinstance(v, (Mapping, list)):
                _check_depth(v, depth + 1)
    elif isinstance(obj, list):
        for v in obj:
            if isinstance(v, (Mapping, list)):
                _check_depth(v, depth + 1)


def _count(field: str, v) -> int:
    """A positive integer size from JSON (a float such as 64.0 allowed; inf, nan, 0, '3' not)."""
    if v is _MISSING:
        raise _Bad(field, "is missing")
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _Bad(field, f"must be a whole number, got {_kind(v)}")
    if isinstance(v, float) and (not math.isfinite(v) or v != int(v)):
        raise _Bad(field, f"must be a whole number, got {v!r}")
    if int(v) < 1:
        raise _Bad(field, f"must be at least 1, got {v!r}")
    if int(v) > 1 << 40:
        raise _Bad(field, f"is absurdly large: {v!r}")
    return int(v)


def parse_json(text: str | bytes, where) -> dict:
    """A model file's slimedge config from its JSON text: ModelFileError naming ``where`` when it
    is not UTF-8, not JSON, nested deeper than :data:`MAX_DEPTH`, or not an object."""
    import json

    try:
        if isinstance(text, (bytes, bytearray)):
            text = bytes(text).rstrip(b"\0").decode("utf-8")
        config = json.loads(text)
    except UnicodeDecodeError as e:
        raise ModelFileError(f"{where}: its '{METADATA_KEY}' metadata is not UTF-8 text ({e.reason} "
                             f"at byte {e.start})") from None
    except RecursionError:
        raise ModelFileError(f"{where}: its '{METADATA_KEY}' metadata is nested too deep (at most "
                             f"{MAX_DEPTH} levels)") from None
    except ValueError as e:
        raise ModelFileError(f"{where}: its '{METADATA_KEY}' metadata is not valid JSON: {e}") from None
    if not isinstance(config, dict):
        raise ModelFileError(f"{where}: its '{METADATA_KEY}' metadata is not a JSON object")
    try:
        _check_depth(config)
    except _Bad as e:
        raise ModelFileError(f"{where}: its '{METADATA_KEY}' metadata {e.message}") from None
    return config



__all__ = ["ModelInfo", "LIMITS", "MAX_DEPTH", "METADATA_KEY", "parse_json", "printable"]
