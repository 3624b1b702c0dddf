"""PyTorch modules: the SLIM LSTM layers and the models built on them.

``MODEL_KINDS`` maps a checkpoint's ``kind`` to the class that rebuilds it (each class has
``checkpoint_state()`` and ``from_checkpoint(ckpt)``).
"""
from ..errors import CheckpointError
from .classifier import SequenceClassifier
from .slim import SlimLSTM, SlimLSTMCell

MODEL_KINDS = {"slim_lstm": SlimLSTM, "classifier": SequenceClassifier}


def from_checkpoint(ckpt):
    """Rebuild the PyTorch module a :class:`slimedge.checkpoint.Checkpoint` describes."""
    if ckpt.kind not in MODEL_KINDS:
        raise CheckpointError(f"{ckpt.path}: unknown model kind {ckpt.kind!r} "
                              f"(known: {', '.join(MODEL_KINDS)})")
    return MODEL_KINDS[ckpt.kind].from_checkpoint(ckpt)


__all__ = ["SlimLSTMCell", "SlimLSTM", "SequenceClassifier"]
