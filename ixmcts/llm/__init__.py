"""Generation backends and the model registry."""

from .backend import GenerationBackend, Sampling, TransformersBackend
from .registry import resolve_model

__all__ = ["GenerationBackend", "Sampling", "TransformersBackend", "resolve_model"]
