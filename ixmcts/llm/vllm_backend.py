"""The generation protocol on vLLM (GPU): prefix caching on, ``n`` samples per prompt,
per-request seeds, LoRA adapters.

vLLM is imported only when a backend is built, so CPU installs never need it (the Docker
image installs it: ``pip install '.[vllm]'``). Models that share a base run on one engine:
a spec with one adapter (the SFT policy, the SFT simulator) is a LoRA request on its base's
engine; a spec with stacked adapters (the aligned policy: SFT, then DPO on the merged SFT
model) is merged into one folder first and gets an engine of its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..io import cache_dir
from .backend import GenerationStats, Messages, Sampling, render_chat, request_seed, seed_of, with_prefill
from .models import ModelSpec, load_causal_lm, load_tokenizer
from .registry import resolve_model

_ENGINES: dict[str, object] = {}  # one vLLM engine per served model folder, for the whole process


def sampling_params(sampling: Sampling, n: int, seed: int, stop_token_ids: Sequence[int]) -> dict:
    """``vllm.SamplingParams`` keyword arguments for one request. vLLM's frequency penalty is
    the OpenAI one, as in the transformers backend; top_k 0 means off in both."""
    return {
        "n": n, "temperature": sampling.temperature, "top_p": sampling.top_p, "top_k": sampling.top_k or 0,
        "frequency_penalty": sampling.frequency_penalty, "max_tokens": sampling.max_new_tokens,
        "seed": seed % 2**31, "stop_token_ids": list(stop_token_ids), "skip_special_tokens": True,
    }


def serving_plan(spec: ModelSpec) -> tuple[str, str | None]:
    """(the model an engine serves, the LoRA adapter a request adds or None) for a spec."""
    if len(spec.adapters) <= 1:
        return spec.base, (spec.adapters[0] if spec.adapters else None)
    return f"merged:{spec.digest()}", None


def _served_folder(spec: ModelSpec, served: str) -> str:
    if not served.startswith("merged:"):
        return resolve_model(served)
    folder = cache_dir("merged", served.split(":", 1)[1])
    if not (folder / "config.json").exists():  # merge once, then reuse
        import torch

        load_causal_lm(spec, dtype=torch.bfloat16).save_pretrained(folder)
        load_tokenizer(spec).save_pretrained(folder)
    return str(folder)


class VLLMBackend:
    """``generate(prompts, n, sampling, seed)`` on a shared vLLM engine."""

    def __init__(self, model, *, gpu_memory_utilization: float = 0.85, max_model_len: int = 8192, max_lora_rank: int = 64):
        from . import check_backend

        check_backend("vllm")
        import vllm

        spec = model if isinstance(model, ModelSpec) else ModelSpec(str(model))
        spec.check()
        self.spec = spec
        served, adapter = serving_plan(spec)
        folder = _served_folder(spec, served)
        if folder not in _ENGINES:
            _ENGINES[folder] = vllm.LLM(model=folder, enable_prefix_caching=True, enable_lora=True, max_lora_rank=max_lora_rank,
                                        max_loras=2, gpu_memory_utilization=gpu_memory_utilization,
                                        max_model_len=max_model_len, dtype="bfloat16")
        self.llm = _ENGINES[folder]
        self.tokenizer = self.llm.get_tokenizer()
        self.lora = None
        if adapter:
            from vllm.lora.request import LoRARequest

            self.lora = LoRARequest(Path(adapter).name or "adapter", abs(hash(adapter)) % 2**31 + 1, adapter)
        ends = {self.tokenizer.eos_token_id, self.tokenizer.convert_tokens_to_ids("<|im_end|>"),
                self.tokenizer.convert_tokens_to_ids("<|eot_id|>")}
        self.stop_token_ids = sorted(i for i in ends if isinstance(i, int) and i != self.tokenizer.unk_token_id)
        self.stats = GenerationStats()

    def generate(self, prompts: Sequence[Messages], n: int, sampling: Sampling, seed: int | Sequence[int] = 0) -> list[list[str]]:
        from vllm import SamplingParams

        if not prompts:
            return []
        texts = [render_chat(self.tokenizer, p) for p in prompts]
        params = [SamplingParams(**sampling_params(sampling, n, request_seed(seed_of(seed, i), t, 0), self.stop_token_ids))
                  for i, t in enumerate(texts)]
        outputs = self.llm.generate(texts, params, lora_request=self.lora, use_tqdm=False)
        self.stats.calls += 1
        results = []
        for prompt, out in zip(prompts, outputs):
            self.stats.sequences += len(out.outputs)
            self.stats.generated_tokens += sum(len(c.token_ids) for c in out.outputs)
            results.append([with_prefill(prompt, c.text) for c in out.outputs])
        return results
