"""A sequence classifier: input normalisation -> SlimLSTM -> linear head.

The normalisation (per-feature mean and std, learned from the training split) is part of the model
and of its checkpoint, so exported graphs take raw frames. The head reads the top layer's h: at the
last valid step for whole sequences (:meth:`forward`), or at every step for streaming use
(:meth:`forward_steps`), which is what the exported step graphs compute as ``y``.

Checkpoint layout (kind ``"classifier"``): the SlimLSTM's ``layers.<k>.<term>`` tensors, plus
``head.weight`` (K, n), ``head.bias`` (K,), ``norm.mean`` (m,), ``norm.std`` (m,); config keys
``lstm``, ``head`` ({"num_classes", "labels"}) and ``normalization`` ({"kind": "standard"}).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .slim import SlimLSTM

MIN_STD = 1e-6


class SequenceClassifier(nn.Module):
    def __init__(self, variant, input_size: int, hidden_size: int, num_classes: int,
                 num_layers: int = 1, dropout: float = 0.0, *,
                 labels: Sequence[str] | None = None, **cell_options) -> None:
        super().__init__()
        if int(num_classes) < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        self.lstm = SlimLSTM(variant, input_size, hidden_size, num_layers, batch_first=True,
                             dropout=dropout, **cell_options)
        self.head = nn.Linear(hidden_size, int(num_classes))
        self.labels = [str(x) for x in labels] if labels is not None else [str(k) for k in range(num_classes)]
        if len(self.labels) != num_classes:
            raise ValueError(f"{len(self.labels)} labels for {num_classes} classes")
        self.register_buffer("norm_mean", torch.zeros(input_size))
        self.register_buffer("norm_std", torch.ones(input_size))

    @property
    def spec(self):
        return self.lstm.spec

    @property
    def num_classes(self) -> int:
        return self.head.out_features

    @torch.no_grad()
    def set_normalization(self, mean, std) -> None:
        """Per-feature mean and std of the training split (std below 1e-6 is taken as 1)."""
        mean = torch.as_tensor(mean, dtype=self.norm_mean.dtype).reshape(-1)
        std = torch.as_tensor(std, dtype=self.norm_std.dtype).reshape(-1)
        if mean.numel() != self.lstm.input_size or std.numel() != self.lstm.input_size:
            raise ValueError(f"normalisation needs {self.lstm.input_size} features, got "
                             f"mean {mean.numel()} and std {std.numel()}")
        self.norm_mean.copy_(mean)
        self.norm_std.copy_(torch.where(std < MIN_STD, torch.ones_like(std), std))

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.norm_mean) / self.norm_std

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
                  "normalization": {"kind": "standard"}}
        tensors = {**self.lstm.checkpoint_terms(), "head.weight": self.head.weight,
                   "head.bias": self.head.bias, "norm.mean": self.norm_mean,
                   "norm.std": self.norm_std}
        return config, tensors

    @classmethod
    def from_checkpoint(cls, ckpt) -> "SequenceClassifier":
        cfg, t = ckpt.config, ckpt.tensors
        lstm = SlimLSTM.from_config(cfg["lstm"])
        k = int(cfg["head"]["num_classes"])
        model = cls(lstm.spec, lstm.input_size, lstm.hidden_size, k, lstm.num_layers,
                    lstm.dropout, labels=cfg["head"].get("labels"),
                    gate_activation=lstm.gate_activation, activation=lstm.activation)
        model.lstm.load_checkpoint_terms(t)
        with torch.no_grad():
            model.head.weight.copy_(torch.as_tensor(t["head.weight"]))
            model.head.bias.copy_(torch.as_tensor(t["head.bias"]))
            if "norm.mean" in t:  # checkpoint.read checked the shapes
                model.norm_mean.copy_(torch.as_tensor(t["norm.mean"]))
                model.norm_std.copy_(torch.as_tensor(t["norm.std"]))
        return model.eval()


__all__ = ["SequenceClassifier"]
