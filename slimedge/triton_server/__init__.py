"""Triton Inference Server for fleets: a model repository per model (:mod:`.repository`), the
Python-backend model that steps the slimedge runtime (:mod:`.python_model`), the bundled server
of nvidia-pytriton for tests and benchmarks (:mod:`.bundled`) and a client (:mod:`.client`).

    from slimedge import triton_server
    repo = triton_server.write("model.safetensors", "repo")   # repo/model/, repo/model_python/
"""
from __future__ import annotations

from .repository import Repository, Sequencing, write

__all__ = ["write", "Repository", "Sequencing"]
