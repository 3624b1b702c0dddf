"""A sequence classifier: front-end -> SlimLSTM -> linear head.

The front-end (:mod:`slimedge.frontend`; by default the standardisation by the training split's
per-feature mean and std) is part of the model and of its checkpoint, so exported graphs take raw
frames. The head reads the top layer's h: at the
last valid step for whole sequences (:meth:`forward`), or at every step for streaming use
(:meth:`forward_steps`), which is what the exported step graphs compute as ``y``.

Checkpoint layout (kind ``"classifier"``): the SlimLSTM's ``layers.<k>.<term>`` tensors, plus
``head.weight`` (K, n), ``head.bias`` (K,) and the front-end's tensors (``norm.mean`` (m,),
``norm.std`` (m,)); config keys ``lstm``, ``head`` ({"num_classes", "labels"}) and ``frontend``
({"stages": [...]}; an older checkpoint's ``normalization`` reads as the standardisation).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..errors import UsageError
from ..frontend import Frontend, Standardize
from .frontend import FrontendModule
from .slim import SlimLSTM

STANDARD = Frontend((Standardize(),))
"""The front-end a classifier gets unless told otherwise: the training split's standardisation."""


class SequenceClassifier(nn.Module):
    def __init__(self, variant, input_size: int, hidden_size: int, num_classes: int,
                 num_layers: int = 1, dropout: float = 0.0, *,
                 labels: Sequence[str] | None = None, frontend: Frontend = STANDARD,
                 **cell_options) -> None:
        super().__init__()
        if int(num_classes) < 2:
            raise UsageError(f"num_classes must be at least 2, got {num_classes}")
        self.lstm = SlimLSTM(variant, input_size, hidden_size, num_layers, batch_first=True,
                             dropout=dropout, **cell_options)
        self.head = nn.Linear(hidden_size, int(num_classes))
        self.labels = [str(x) for x in labels] if labels is not None else [str(k) for k in range(num_classes)]
        if len(self.labels) != num_classes:
            raise UsageError(f"{len(self.labels)} labels for {num_classes} classes")
        self.frontend = FrontendModule(frontend, input_size)

    @property
    def spec(self):
        return self.lstm.spec

    @property
    def num_classes(self) -> int:
        return self.head.out_features

    def set_normalization(self, mean, std) -> None:
        """Per-feature mean and std of the training split (std below 1e-6 is taken as 1), for the
        front-end's standardisation stage."""
        stage = self.frontend.stage("standardize")
        if stage is None:
            raise UsageError("this model's front-end has no standardisation stage")
        stage.set_stats(mean, std)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Raw frames -> the LSTM's input: the front-end."""
        return self.frontend(x)

    def forward_steps(self, x: torch.Tensor, state=None, lengths=None):
        """Per-step logits (batch, T, K) and the final (h, c): the streaming view."""
        out, state = self.lstm(self.normalize(x), state, lengths=lengths)
        return self.head(out), state

    def step(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One time step for streaming: raw frames x (B, m), h and c (layers, B, n) -> logits
        (B, K), h', c'. What the exported step graphs compute."""
        top, h, c = self.lstm.step(self.normalize(x), h, c)
        return self.head(top), h, c

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (batch, K) at each sequence's last valid step; x is (batch, T, m)."""
        out, (h_n, _) = self.lstm(self.normalize(x), lengths=lengths)
        # with lengths, the state is carried past each sequence's end, so h_n is its last valid h
        return self.head(h_n[-1])

    # ---- checkpoints -------------------------------------------------------------------------
    def checkpoint_state(self):
        config = {"kind": "classifier", "lstm": self.lstm.config(),
                  "head": {"num_classes": self.num_classes, "labels": self.labels},
                  "frontend": self.frontend.config()}
        tensors = {**self.lstm.checkpoint_terms(), "head.weight": self.head.weight,
                   "head.bias": self.head.bias, **self.frontend.tensors()}
        return config, tensors

    @classmethod
    def from_checkpoint(cls, ckpt) -> "SequenceClassifier":
        cfg, t = ckpt.config, ckpt.tensors
        lstm = SlimLSTM.from_config(cfg["lstm"])
        k = int(cfg["head"]["num_classes"])
        model = cls(lstm.spec, lstm.input_size, lstm.hidden_size, k, lstm.num_layers,
                    lstm.dropout, labels=cfg["head"].get("labels"),
                    frontend=Frontend.from_config(cfg),
                    gate_activation=lstm.gate_activation, activation=lstm.activation)
        model.lstm.load_checkpoint_terms(t)
        with torch.no_grad():
            model.head.weight.copy_(torch.as_tensor(t["head.weight"]))
            model.head.bias.copy_(torch.as_tensor(t["head.bias"]))
        model.frontend.load_tensors(t)  # checkpoint.read checked the shapes
        return model.eval()


__all__ = ["SequenceClassifier"]
