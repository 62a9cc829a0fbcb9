"""The generation protocol and its batched transformers implementation.

A backend turns chat prompts into sampled completions: ``generate(prompts, n,
sampling) -> list[list[str]]`` returns ``n`` completions per prompt. A prompt that ends
with an ``assistant`` message is continued, and its completions start with that message. The search
engine sends every pending call of one step through a single ``generate``, so a
backend is free to batch however it likes; results must depend only on the
prompts, ``n``, the sampling settings and the seed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Protocol, Sequence

Messages = list[dict]  # [{"role": "system"|"user"|"assistant", "content": str}, ...]


@dataclass(frozen=True)
class Sampling:
    """Sampling settings. Paper policy defaults: temperature 0.9, top-p 0.9, top-k 50,
    frequency penalty 1.0, 512 new tokens; the simulator samples at temperature 0.3."""

    temperature: float = 0.9
    top_p: float = 0.9
    top_k: int = 50
    frequency_penalty: float = 1.0
    max_new_tokens: int = 512

    def to_dict(self) -> dict:
        return asdict(self)


POLICY_SAMPLING = Sampling()
SIMULATOR_SAMPLING = Sampling(temperature=0.3)


@dataclass
class GenerationStats:
    calls: int = 0  # generate() invocations
    sequences: int = 0  # completions returned
    generated_tokens: int = 0


class GenerationBackend(Protocol):
    stats: GenerationStats

    def generate(
        self, prompts: Sequence[Messages], n: int, sampling: Sampling, seed: int = 0
    ) -> list[list[str]]: ...


def _frequency_penalty_processor(penalty: float, prompt_len: int):
    """OpenAI-style frequency penalty: subtract ``penalty`` × (count of the token so far
    in the completion). transformers only ships the multiplicative repetition penalty."""
    import torch
    from transformers import LogitsProcessor

    class FrequencyPenalty(LogitsProcessor):
        def __call__(self, input_ids, scores):
            generated = input_ids[:, prompt_len:]
            if generated.shape[1] == 0:
                return scores
            counts = torch.zeros_like(scores)
            counts.scatter_add_(1, generated, torch.ones_like(generated, dtype=scores.dtype))
            return scores - penalty * counts

    return FrequencyPenalty()


class TransformersBackend:
    """Batched sampling with a transformers causal LM (left padding, ``n`` samples per
    prompt via ``num_return_sequences``). Prompts are sorted by length and sent in
    chunks of ``batch_size`` prompts so that padding stays small."""

    def __init__(self, model, *, batch_size: int = 16, threads: int | None = None, device: str | None = None):
        """``model``: a ``ModelSpec`` (base + adapters), a registry name or a folder."""
        import torch

        from .models import ModelSpec, load_causal_lm, load_tokenizer

        if threads:
            torch.set_num_threads(threads)
        spec = model if isinstance(model, ModelSpec) else ModelSpec(str(model))
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = load_tokenizer(spec)
        self.tokenizer.padding_side = "left"
        dtype = torch.bfloat16 if self.device == "cuda" else torch.float32
        self.model = load_causal_lm(spec, dtype=dtype, device=self.device)
        self.batch_size = batch_size
        self.spec = spec
        self.stats = GenerationStats()
        end_ids = {self.tokenizer.eos_token_id}
        im_end = self.tokenizer.convert_tokens_to_ids("<|im_end|>")
        if isinstance(im_end, int) and im_end != self.tokenizer.unk_token_id:
            end_ids.add(im_end)
        self.eos_token_ids = sorted(i for i in end_ids if i is not None)

    def render(self, messages: Messages) -> str:
        if messages and messages[-1]["role"] == "assistant":  # continue a prefilled answer
            return self.tokenizer.apply_chat_template(messages, tokenize=False, continue_final_message=True)
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def generate(self, prompts: Sequence[Messages], n: int, sampling: Sampling, seed: int = 0) -> list[list[str]]:
        import torch

        if not prompts:
            return []
        texts = [self.render(p) for p in prompts]
        prefixes = [p[-1]["content"] if p and p[-1]["role"] == "assistant" else "" for p in prompts]
        lengths = [len(self.tokenizer(t, add_special_tokens=False).input_ids) for t in texts]
        order = sorted(range(len(texts)), key=lambda i: (lengths[i], i))
        results: list[list[str]] = [[] for _ in texts]
        self.stats.calls += 1
        for chunk_no, start in enumerate(range(0, len(order), self.batch_size)):
            idx = order[start : start + self.batch_size]
            enc = self.tokenizer([texts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
            prompt_len = enc.input_ids.shape[1]
            processors = []
            if sampling.frequency_penalty:
                processors.append(_frequency_penalty_processor(sampling.frequency_penalty, prompt_len))
            torch.manual_seed(seed * 1_000_003 + chunk_no)
            with torch.inference_mode():
                out = self.model.generate(
                    **enc,
                    do_sample=sampling.temperature > 0,
                    temperature=sampling.temperature if sampling.temperature > 0 else None,
                    top_p=sampling.top_p,
                    top_k=sampling.top_k,
                    max_new_tokens=sampling.max_new_tokens,
                    num_return_sequences=n,
                    logits_processor=processors or None,
                    eos_token_id=self.eos_token_ids,
                    pad_token_id=self.tokenizer.pad_token_id,
                )
            new = out[:, prompt_len:]
            for row, seq in enumerate(new):
                ids = seq.tolist()
                cut = next((k for k, t in enumerate(ids) if t in self.eos_token_ids), len(ids))
                self.stats.generated_tokens += cut
                self.stats.sequences += 1
                i = idx[row // n]
                text = self.tokenizer.decode(ids[:cut], skip_special_tokens=True)
                results[i].append((prefixes[i] + text).strip() if prefixes[i] else text.strip())
        return results
