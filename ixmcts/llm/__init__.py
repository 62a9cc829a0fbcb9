"""Generation backends and the model registry."""

from .backend import BATCH_SIZE, MAX_ROWS, GenerationBackend, Request, Sampling, TransformersBackend
from .registry import resolve_model

BACKENDS = ("transformers", "vllm")

__all__ = ["BACKENDS", "GenerationBackend", "Request", "Sampling", "TransformersBackend", "check_backend", "make_backends",
           "resolve_model"]


def check_backend(kind: str) -> None:
    """Fail fast (before a run or a model load) on an unknown or unavailable backend."""
    import importlib.util

    from ..errors import IxmctsError

    if kind not in BACKENDS:
        raise IxmctsError(f"unknown backend {kind!r}; choose one of: {', '.join(BACKENDS)}")
    if kind == "vllm" and importlib.util.find_spec("vllm") is None:
        raise IxmctsError("backend 'vllm' needs vLLM on a CUDA machine: pip install '.[vllm]' "
                          "(the Docker image has it), or use backend=transformers")


def make_backends(specs: dict, kind: str = "transformers", *, batch_size: int = BATCH_SIZE, max_rows: int = MAX_ROWS,
                  threads: int | None = None) -> dict:
    """One backend per named ModelSpec (``{"policy": spec, "simulator": spec}``); equal specs
    share one backend. ``kind``: ``transformers`` (any machine) or ``vllm`` (CUDA; imported
    only here, so CPU installs never need it). ``batch_size`` / ``max_rows``: the running
    batch's prompts per request and rows in all (``backend.BATCH_SIZE``: why 64)."""
    check_backend(kind)
    built: dict = {}
    out = {}
    for name, spec in specs.items():
        if spec not in built:
            if kind == "vllm":
                from .vllm_backend import VLLMBackend

                built[spec] = VLLMBackend(spec)
            else:
                built[spec] = TransformersBackend(spec, batch_size=batch_size, max_rows=max_rows, threads=threads)
        out[name] = built[spec]
    return out
