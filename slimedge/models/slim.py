"""PyTorch SLIM LSTM layers built from a :class:`~slimedge.variants.VariantSpec`.

Parameters are stored packed per term kind, one tensor each, holding only the slots the variant
gives that term (so the module's parameter count is exactly ``spec.num_params``):

    W  (k_W·n, m)   the input matrices of the slots with a W term, stacked in i, f, o, c order
    U  (k_U·n, n)   the full recurrent matrices
    u  (k_u, n)     the point-wise recurrent weights
    b  (k_b, n)     the biases

``SlimLSTMCell.terms()`` gives them back under the papers' names (``W_i``, ``U_f``, ``u_o``, ...).
Over a sequence, every W·x (and the bias) is computed for all time steps in one matrix product; only
the recurrent terms run per step: in :class:`SlimLSTM` by default inside one autograd function per
layer (``fused_cpu``; ``impl=`` chooses), else stepped under autograd (the reference loop).
"""
from __future__ import annotations

import math
import os
from typing import Mapping

import torch
from torch import nn

from .. import variants as _variants
from ..errors import UsageError
from ..variants import ACTIVATIONS, GATE_ACTIVATIONS, INITS, TERMS, VariantSpec
from . import fused_cpu

IMPLS = ("auto", "fused", "reference")  # how SlimLSTM runs its time loop


def hard_sigmoid(z: torch.Tensor) -> torch.Tensor:
    """Keras' hard_sigmoid, clip(0.2 z + 0.5, 0, 1) (not torch's z/6 + 1/2)."""
    return torch.clamp(0.2 * z + 0.5, 0.0, 1.0)


_ACT = {"sigmoid": torch.sigmoid, "hard_sigmoid": hard_sigmoid, "tanh": torch.tanh,
        "relu": torch.relu}


def _check_choice(what: str, value: str, valid: tuple[str, ...]) -> str:
    if value not in valid:
        raise UsageError(f"unknown {what} {value!r}; valid: {', '.join(valid)}")
    return value


class SlimLSTMCell(nn.Module):
    """One SLIM LSTM layer, one time step at a time (or a whole sequence via :meth:`sequence`).

    Args:
        variant: a variant name or alias (``"LSTM6"``, ``"c6"``, ...), a registered name, or a
            ``VariantSpec`` (a catalogue row or one of your own, ``slimedge.variants.define``).
        input_size: m, the size of x.
        hidden_size: n, the size of h and c.
        gate_activation: σ, ``"sigmoid"`` (default) or ``"hard_sigmoid"`` (Keras').
        activation: g, for the cell candidate and the output: ``"tanh"``, ``"sigmoid"``, ``"relu"``.
        constants: values for the variant's fixed gates, e.g. ``{"f": 0.5}``; never trainable.
        init: ``"pytorch"`` (uniform ±1/√n, like torch.nn.LSTM) or ``"paper"`` (the authors':
            W glorot-uniform, U orthogonal, u from columns of an orthogonal matrix, biases zero).
        forget_bias: the initial value of b_f, where the variant learns one (LSTM0/1/3/5/11;
            after ``init``). 1 is Jozefowicz et al.'s and Keras' ``unit_forget_bias``: on long
            sequences (MNIST pixel by pixel) it decides whether training leaves chance early.
        input_only_cell: the variant's input-only cell reading (LSTM_C6's harsher
            c~ = g(W_c x + b_c)); variants that offer none refuse it.
    """

    def __init__(self, variant: str | VariantSpec, input_size: int, hidden_size: int, *,
                 gate_activation: str = "sigmoid", activation: str = "tanh",
                 constants: Mapping[str, float] | None = None, init: str = "pytorch",
                 forget_bias: float | None = None, input_only_cell: bool = False) -> None:
        super().__init__()
        if int(input_size) < 1 or int(hidden_size) < 1:
            raise UsageError(f"input_size and hidden_size must be positive, got "
                             f"{input_size} and {hidden_size}")
        self.spec = _variants.get(variant, constants=constants, input_only_cell=input_only_cell)
        self.input_size, self.hidden_size = int(input_size), int(hidden_size)
        self.gate_activation = _check_choice("gate activation", gate_activation, GATE_ACTIVATIONS)
        self.activation = _check_choice("activation", activation, ACTIVATIONS)
        self._sigma, self._g = _ACT[gate_activation], _ACT[activation]

        spec, m, n = self.spec, self.input_size, self.hidden_size
        learned = spec.learned_slots  # always ends with "c"
        self._learned = learned
        self._slots_of = slots_of = {t: spec.slots_with(t) for t in TERMS}
        # How the learned slots' pre-activations are assembled, in slot order, from packed term
        # products: runs (term, first, last + 1) of one packed tensor, or (None, k) for k slots
        # the part lacks. Concatenating runs (rather than scattering with index_add) keeps the
        # backward cheap. Input part: W·x (+ the bias of those slots), else the bias alone;
        # recurrent part: U·h or u ⊙ h.
        self._input_runs = _runs(learned, slots_of, ("W", "b"))
        self._recurrent_runs = _runs(learned, slots_of, ("U", "u"))
        # The bias of each W slot, as rows of b, added to the packed W·x: a W slot without a bias
        # reads row k_b, a zero row appended at run time (only when some W slot lacks a bias).
        k_b = len(slots_of["b"])
        bias_of_w = [slots_of["b"].index(s) if s in slots_of["b"] else k_b for s in slots_of["W"]]
        if k_b == 0 or all(j == k_b for j in bias_of_w):
            bias_of_w = []  # no W slot has a bias
        self._w_bias_partial = k_b in bias_of_w
        self.register_buffer("_bias_of_w", torch.tensor(bias_of_w, dtype=torch.long), persistent=False)
        self.W = self._param(len(self._slots_of["W"]) * n, m)
        self.U = self._param(len(self._slots_of["U"]) * n, n)
        self.u = self._param(len(self._slots_of["u"]), n)
        self.b = self._param(len(self._slots_of["b"]), n)
        self.constants = spec.constants  # plain floats: not parameters, not trainable
        self.reset_parameters(_check_choice("init", init, INITS), forget_bias)

    @staticmethod
    def _param(rows: int, cols: int) -> nn.Parameter | None:
        return nn.Parameter(torch.empty(rows, cols)) if rows else None

    # ---- parameters ------------------------------------------------------------------------
    def reset_parameters(self, init: str = "pytorch", forget_bias: float | None = None) -> None:
        self._init_weights(init)
        if forget_bias is not None and "f" in self._slots_of["b"]:
            with torch.no_grad():
                self.b[self._slots_of["b"].index("f")].fill_(float(forget_bias))

    def _init_weights(self, init: str) -> None:
        n, m = self.hidden_size, self.input_size
        with torch.no_grad():
            if init == "pytorch":
                k = 1.0 / math.sqrt(n)
                for p in self.parameters():
                    p.uniform_(-k, k)
                return
            if self.W is not None:  # glorot-uniform per slot (fan_in m, fan_out n)
                limit = math.sqrt(6.0 / (m + n))
                self.W.uniform_(-limit, limit)
            if self.U is not None:
                for block in self.U.view(-1, n, n):
                    nn.init.orthogonal_(block)
            if self.u is not None:
                q = torch.empty(n, max(n, self.u.shape[0]))
                nn.init.orthogonal_(q)
                self.u.copy_(q[:, : self.u.shape[0]].T)
            if self.b is not None:
                self.b.zero_()

    def terms(self) -> dict[str, torch.Tensor]:
        """The parameters under the papers' names (views, so edits reach the module)."""
        n, out = self.hidden_size, {}
        for t in TERMS:
            p = getattr(self, t)
            for k, s in enumerate(self._slots_of[t]):
                out[f"{t}_{s}"] = p[k * n:(k + 1) * n] if t in "WU" else p[k]
        return out

    @torch.no_grad()
    def load_terms(self, terms: Mapping[str, "torch.Tensor | object"]) -> None:
        """Set every parameter from a dict under the papers' names (the inverse of ``terms()``)."""
        mine = self.terms()
        missing, extra = set(mine) - set(terms), set(terms) - set(mine)
        if missing or extra:
            raise UsageError(f"{self.spec.name} terms mismatch: missing {sorted(missing)}, "
                             f"unexpected {sorted(extra)}")
        for name, dst in mine.items():
            src = torch.as_tensor(terms[name], dtype=dst.dtype)
            if tuple(src.shape) != tuple(dst.shape):
                raise UsageError(f"term {name}: expected shape {tuple(dst.shape)}, "
                                 f"got {tuple(src.shape)}")
            dst.copy_(src)

    def extra_repr(self) -> str:
        consts = f", constants={self.constants}" if self.constants else ""
        return (f"{self.spec.name}, {self.input_size}, {self.hidden_size}, "
                f"gate_activation={self.gate_activation}, activation={self.activation}{consts}")

    # ---- computation -----------------------------------------------------------------------
    def input_part(self, x: torch.Tensor) -> torch.Tensor:
        """The input and bias part of every learned slot: (..., m) -> (..., k, n).

        One matrix product for all leading dimensions (all time steps of a sequence).
        """
        lead, n = x.shape[:-1], self.hidden_size
        parts = {"W": None, "b": None}
        if self.W is not None:
            parts["W"] = torch.matmul(x, self.W.t()).view(*lead, -1, n)
            if len(self._bias_of_w):
                b = torch.cat([self.b, self.b.new_zeros(1, n)]) if self._w_bias_partial else self.b
                parts["W"] = parts["W"] + b.index_select(0, self._bias_of_w)
        if self.b is not None:
            parts["b"] = self.b.expand(*lead, -1, -1)
        return _assemble(self._input_runs, parts, x, lead, n)

    def recurrent_step(self, xpart: torch.Tensor, h: torch.Tensor,
                       c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Advance one step given ``input_part`` of this step: (B, k, n), (B, n), (B, n)."""
        n, lead = self.hidden_size, h.shape[:-1]
        z = xpart
        if self.U is not None or self.u is not None:
            parts = {"U": torch.matmul(h, self.U.t()).view(*lead, -1, n) if self.U is not None else None,
                     "u": self.u * h.unsqueeze(-2) if self.u is not None else None}
            z = z + _assemble(self._recurrent_runs, parts, h, lead, n)
        # split and unbind, not indexing: the backward of each index would allocate a zero
        # tensor of z's whole shape
        if len(self._learned) == 1:
            g = {"c": self._g(z.squeeze(-2))}
        else:
            zg, zc = z.split([len(self._learned) - 1, 1], -2)
            g = {"c": self._g(zc.squeeze(-2))}
            for s, gate in zip(self._learned[:-1], self._sigma(zg).unbind(-2)):
                g[s] = gate
        i, f, o = (g.get(s, self.constants.get(s)) for s in "ifo")
        c_new = _scale(f, c) + _scale(i, g["c"])
        h_new = _scale(o, self._g(c_new))
        return h_new, c_new

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """One step: x (batch, m) or (m,); state (h, c) each (batch, n) or (n,). Returns (h, c)."""
        if x.dim() not in (1, 2) or x.shape[-1] != self.input_size:
            raise UsageError(f"{type(self).__name__}: x must be (batch, {self.input_size}) or "
                             f"({self.input_size},), got {tuple(x.shape)}")
        lead = x.shape[:-1]
        if state is None:
            h = c = x.new_zeros(*lead, self.hidden_size)
        else:
            h, c = state
            for name, t in (("h", h), ("c", c)):
                if tuple(t.shape) != (*lead, self.hidden_size):
                    raise UsageError(f"{type(self).__name__}: state {name} must be "
                                     f"{(*lead, self.hidden_size)}, got {tuple(t.shape)}")
        return self.recurrent_step(self.input_part(x), h, c)


def _reference_layer(cell: SlimLSTMCell, xs: torch.Tensor, h: torch.Tensor, c: torch.Tensor,
                     mask: torch.Tensor | None):
    """One layer stepped under autograd (the reference loop): xs (T, B, m) -> (out, h_T, c_T)."""
    # one matrix product for all T steps, unbound once: indexing xpart[t] instead would make
    # every step's backward allocate and add a zero tensor of the whole sequence
    outs = []
    for xt in cell.input_part(xs).unbind(0):
        h_new, c_new = cell.recurrent_step(xt, h, c)
        if mask is not None:
            m = mask[len(outs)]
            h_new, c_new = torch.where(m, h_new, h), torch.where(m, c_new, c)
            outs.append(h_new * m)
        else:
            outs.append(h_new)
        h, c = h_new, c_new
    return torch.stack(outs), h, c


def _runs(learned: tuple[str, ...], slots_of: Mapping[str, tuple[str, ...]],
          terms: tuple[str, str]) -> list[tuple]:
    """The learned slots as runs of one source: the first of ``terms`` a slot has, in packed
    order ((term, first, last + 1)), or (None, k) for k slots with neither."""
    runs: list[tuple] = []
    for s in learned:
        term = next((t for t in terms if s in slots_of[t]), None)
        if term is None:
            if runs and runs[-1][0] is None:
                runs[-1] = (None, runs[-1][1] + 1)
            else:
                runs.append((None, 1))
            continue
        j = slots_of[term].index(s)
        if runs and runs[-1][0] == term and runs[-1][2] == j:
            runs[-1] = (term, runs[-1][1], j + 1)
        else:
            runs.append((term, j, j + 1))
    return runs


def _assemble(runs: list[tuple], parts: Mapping[str, torch.Tensor | None], like: torch.Tensor,
              lead: tuple, n: int) -> torch.Tensor:
    """Concatenate the runs' pieces to (*lead, slots, n); zeros where a run has no source."""
    pieces = []
    for r in runs:
        if r[0] is None:
            pieces.append(like.new_zeros(*lead, r[1], n))
        else:
            p = parts[r[0]]
            pieces.append(p if r[2] - r[1] == p.shape[-2] else p[..., r[1]:r[2], :])
    return pieces[0] if len(pieces) == 1 else torch.cat(pieces, -2)


def _scale(gate: torch.Tensor | float, value: torch.Tensor) -> torch.Tensor:
    """gate ⊙ value, emitting no multiply for a fixed gate of exactly 1.0."""
    if isinstance(gate, float):
        return value if gate == 1.0 else gate * value
    return gate * value


class SlimLSTM(nn.Module):
    """A multi-layer SLIM LSTM that behaves like ``torch.nn.LSTM``.

    ``forward(x, state=None, lengths=None) -> (output, (h_n, c_n))`` with x of shape
    (batch, T, m) when ``batch_first`` (the default here), else (T, batch, m), or unbatched (T, m);
    state and (h_n, c_n) are (num_layers, batch, n). ``lengths`` (batch,) marks the valid steps of
    padded sequences: past its length a sequence's state is carried unchanged and its output is 0,
    so padding cannot change results. ``.cells`` holds one :class:`SlimLSTMCell` per layer.

    ``impl`` chooses how the time loop runs (the results are the same): ``"fused"`` runs each
    layer's whole loop in one autograd function with a hand-written backward (``fused_cpu``; on the
    CPU each step's element-wise work is compiled by numba where it is installed, ``fused_numba``;
    on a CUDA device the loop runs on Triton kernels where triton is installed, ``fused_triton``),
    ``"reference"`` steps :meth:`SlimLSTMCell.recurrent_step` under autograd, and
    ``"auto"`` (default) takes ``$SLIMEDGE_RECURRENCE`` (``fused`` or ``reference``) when set,
    else the fused loop, except while tracing or compiling and where the fused loop cannot serve:
    double backward and forward-mode AD need ``impl="reference"``.
    """

    def __init__(self, variant: str | VariantSpec, input_size: int, hidden_size: int,
                 num_layers: int = 1, batch_first: bool = True, dropout: float = 0.0, *,
                 gate_activation: str = "sigmoid", activation: str = "tanh",
                 constants: Mapping[str, float] | None = None, init: str = "pytorch",
                 forget_bias: float | None = None, input_only_cell: bool = False,
                 impl: str = "auto") -> None:
        super().__init__()
        self.impl = _check_choice("impl", impl, IMPLS)
        if int(num_layers) < 1:
            raise UsageError(f"num_layers must be at least 1, got {num_layers}")
        if not 0.0 <= float(dropout) < 1.0:
            raise UsageError(f"dropout must lie in [0, 1), got {dropout}")
        self.input_size, self.hidden_size = int(input_size), int(hidden_size)
        self.num_layers, self.batch_first, self.dropout = int(num_layers), bool(batch_first), float(dropout)
        self.cells = nn.ModuleList(
            SlimLSTMCell(variant, input_size if k == 0 else hidden_size, hidden_size,
                         gate_activation=gate_activation, activation=activation,
                         constants=constants, init=init, forget_bias=forget_bias,
                         input_only_cell=input_only_cell)
            for k in range(self.num_layers))
        self.spec = self.cells[0].spec
        self.gate_activation, self.activation = gate_activation, activation

    def config(self) -> dict:
        """Everything needed to rebuild this module (weights aside), JSON-able."""
        return {"variant": self.spec.to_config(), "input_size": self.input_size,
                "hidden_size": self.hidden_size, "num_layers": self.num_layers,
                "gate_activation": self.gate_activation, "activation": self.activation,
                "dropout": self.dropout}

    @classmethod
    def from_config(cls, config: Mapping, *, batch_first: bool = True) -> "SlimLSTM":
        spec = _variants.from_config(config["variant"])
        return cls(spec, config["input_size"], config["hidden_size"], config.get("num_layers", 1),
                   batch_first=batch_first, dropout=config.get("dropout", 0.0),
                   gate_activation=config.get("gate_activation", "sigmoid"),
                   activation=config.get("activation", "tanh"))

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def checkpoint_terms(self) -> dict[str, torch.Tensor]:
        """Every layer's weights as ``layers.<k>.<paper name>`` (the checkpoint layout)."""
        return {f"layers.{k}.{name}": t for k, cell in enumerate(self.cells)
                for name, t in cell.terms().items()}

    def load_checkpoint_terms(self, tensors: Mapping[str, object]) -> None:
        for k, cell in enumerate(self.cells):
            prefix = f"layers.{k}."
            cell.load_terms({n[len(prefix):]: t for n, t in tensors.items() if n.startswith(prefix)})

    def checkpoint_state(self) -> tuple[dict, dict[str, torch.Tensor]]:
        """(config, tensors) for :func:`slimedge.checkpoint.save`."""
        return {"kind": "slim_lstm", "lstm": self.config()}, self.checkpoint_terms()

    @classmethod
    def from_checkpoint(cls, ckpt) -> "SlimLSTM":
        model = cls.from_config(ckpt.lstm)
        model.load_checkpoint_terms(ckpt.tensors)
        return model.eval()

    def macs_per_step(self) -> int:
        return sum(c.spec.macs_per_step(c.input_size, c.hidden_size) for c in self.cells)

    def extra_repr(self) -> str:
        return f"num_layers={self.num_layers}, batch_first={self.batch_first}, dropout={self.dropout}"

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None,
                lengths: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        name = type(self).__name__
        if x.dim() not in (2, 3) or x.shape[-1] != self.input_size:
            layout = "(batch, T, m)" if self.batch_first else "(T, batch, m)"
            raise UsageError(f"{name}: input must be {layout} or (T, m) with m = {self.input_size}, "
                             f"got shape {tuple(x.shape)}")
        unbatched = x.dim() == 2
        xs = x.unsqueeze(1) if unbatched else (x.transpose(0, 1) if self.batch_first else x)
        T, B = xs.shape[0], xs.shape[1]
        want = (self.num_layers, self.hidden_size) if unbatched else (self.num_layers, B, self.hidden_size)
        if state is None:
            h0 = c0 = xs.new_zeros(self.num_layers, B, self.hidden_size)
        else:
            h0, c0 = state
            for sname, t in (("h_0", h0), ("c_0", c0)):
                if tuple(t.shape) != want:
                    raise UsageError(f"{name}: {sname} must have shape {want}, got {tuple(t.shape)}")
            if unbatched:
                h0, c0 = h0.unsqueeze(1), c0.unsqueeze(1)
        mask = None
        if lengths is not None:
            lengths = torch.as_tensor(lengths, device=xs.device)
            if lengths.shape != (B,):
                raise UsageError(f"{name}: lengths must have shape ({B},), got {tuple(lengths.shape)}")
            if int(lengths.min()) < 1 or int(lengths.max()) > T:
                raise UsageError(f"{name}: lengths must lie in [1, {T}], got "
                                 f"[{int(lengths.min())}, {int(lengths.max())}]")
            mask = (torch.arange(T, device=xs.device).unsqueeze(1) < lengths.unsqueeze(0)).unsqueeze(-1)
        engine = self._engine(xs)
        hs, cs, layer_in = [], [], xs
        for k, cell in enumerate(self.cells):
            if k > 0 and self.dropout > 0 and self.training:
                layer_in = nn.functional.dropout(layer_in, self.dropout, True)
            if engine is None:
                layer_in, h, c = _reference_layer(cell, layer_in, h0[k], c0[k], mask)
            else:
                layer_in, h, c = fused_cpu.run_layer(cell, layer_in, h0[k], c0[k], mask, engine)
            hs.append(h)
            cs.append(c)
        out, h_n, c_n = layer_in, torch.stack(hs), torch.stack(cs)
        if unbatched:
            return out.squeeze(1), (h_n.squeeze(1), c_n.squeeze(1))
        return (out.transpose(0, 1) if self.batch_first else out), (h_n, c_n)

    def _engine(self, xs: torch.Tensor) -> str | None:
        """The fused loop's engine for this call (``"numba"``, ``"torch"`` or ``"triton"``), or None for the
        reference loop (see the class docstring)."""
        impl = self.impl
        if impl == "auto":
            impl = os.environ.get("SLIMEDGE_RECURRENCE", "").strip().lower() or "fused"
            if impl not in ("fused", "reference"):
                raise UsageError(f"$SLIMEDGE_RECURRENCE must be fused or reference, got {impl!r}")
            if torch.jit.is_tracing() or torch.compiler.is_compiling() or \
                    torch.onnx.is_in_onnx_export():
                impl = "reference"
        if impl == "reference":
            return None
        if xs.is_cuda and fused_cpu.available("triton"):
            return "triton"
        if xs.device.type == "cpu" and fused_cpu.available("numba"):
            from . import fused_numba

            if fused_numba.supports(xs.dtype):
                return "numba"
        return "torch"

    def step(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One time step of every layer, for streaming: x (B, m), h and c (layers, B, n) ->
        (the top layer's h', h', c') with h', c' (layers, B, n). What the exported step graphs
        compute (with ``y`` the top layer's h)."""
        hs, cs = [], []
        for k, cell in enumerate(self.cells):
            hk, ck = cell.recurrent_step(cell.input_part(x), h[k], c[k])
            hs.append(hk)
            cs.append(ck)
            x = hk
        return x, torch.stack(hs), torch.stack(cs)

    # ---- interop with torch.nn.LSTM ----------------------------------------------------------
    @classmethod
    def from_torch_lstm(cls, lstm: nn.LSTM) -> "SlimLSTM":
        """An LSTM0 with the weights of a ``torch.nn.LSTM`` (unidirectional, no projection)."""
        if lstm.bidirectional or lstm.proj_size:
            raise UsageError("only unidirectional torch.nn.LSTM without proj_size can be converted")
        model = cls("LSTM0", lstm.input_size, lstm.hidden_size, lstm.num_layers,
                    batch_first=lstm.batch_first, dropout=lstm.dropout)
        n = lstm.hidden_size
        for k, cell in enumerate(model.cells):
            w_ih, w_hh = getattr(lstm, f"weight_ih_l{k}"), getattr(lstm, f"weight_hh_l{k}")
            bias = (getattr(lstm, f"bias_ih_l{k}") + getattr(lstm, f"bias_hh_l{k}")
                    if lstm.bias else w_ih.new_zeros(4 * n))
            terms = {}
            for j, s in enumerate("ifco"):  # torch's gate order is i, f, g(=c), o
                terms[f"W_{s}"] = w_ih[j * n:(j + 1) * n]
                terms[f"U_{s}"] = w_hh[j * n:(j + 1) * n]
                terms[f"b_{s}"] = bias[j * n:(j + 1) * n]
            cell.load_terms({k_: v.detach() for k_, v in terms.items()})
        return model


__all__ = ["SlimLSTMCell", "SlimLSTM", "hard_sigmoid", "GATE_ACTIVATIONS", "ACTIVATIONS", "INITS",
           "IMPLS"]
