"""The generation protocol and its batched transformers implementation.

A backend turns chat prompts into sampled completions: ``generate(prompts, n,
sampling) -> list[list[str]]`` returns ``n`` completions per prompt. A prompt that ends
with an ``assistant`` message is continued, and its completions start with that message. The search
engine sends every pending call of one step through a single ``generate``, so a
backend is free to batch however it likes; results must depend only on the
prompts, ``n``, the sampling settings and the seed.
"""

from __future__ import annotations

import hashlib
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


def request_seed(seed: int, prompt: str, sample: int) -> int:
    """The sampling seed of one completion: a function of the call's seed, the rendered
    prompt and the sample's index only, so that batching never changes what is sampled."""
    digest = hashlib.blake2b(f"{seed}\x00{sample}\x00{prompt}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def next_token_scores(logits, counts, sampling: Sampling, warpers=()):
    """Scores to sample the next token from, in ``generate``'s order: the OpenAI-style
    frequency penalty (minus ``penalty`` × the token's count so far in the completion;
    transformers only ships the multiplicative repetition penalty), temperature, top-k, top-p."""
    scores = logits - sampling.frequency_penalty * counts if sampling.frequency_penalty else logits
    if sampling.temperature > 0:
        scores = scores / sampling.temperature
        for warp in warpers:
            scores = warp(None, scores)
    return scores


class TransformersBackend:
    """Batched sampling with a transformers causal LM and a decoding loop of its own.

    Prompts are sorted by length and sent in chunks of ``batch_size`` (left padding kept
    small). Each prompt is prefilled once and its KV cache repeated for its ``n`` samples
    (``generate(num_return_sequences=n)`` would prefill it ``n`` times), finished rows leave
    the batch, and every completion samples from its own generator seeded by
    :func:`request_seed`, so results do not depend on how requests are batched."""

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
        if not prompts:
            return []
        texts = [self.render(p) for p in prompts]
        prefixes = [p[-1]["content"] if p and p[-1]["role"] == "assistant" else "" for p in prompts]
        lengths = [len(self.tokenizer(t, add_special_tokens=False).input_ids) for t in texts]
        order = sorted(range(len(texts)), key=lambda i: (lengths[i], i))
        results: list[list[str]] = [[] for _ in texts]
        self.stats.calls += 1
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            seeds = [request_seed(seed, texts[i], j) for i in idx for j in range(n)]
            for row, ids in enumerate(self._sample([texts[i] for i in idx], n, sampling, seeds)):
                i = idx[row // n]
                self.stats.generated_tokens += len(ids)
                self.stats.sequences += 1
                text = self.tokenizer.decode(ids, skip_special_tokens=True)
                results[i].append((prefixes[i] + text).strip() if prefixes[i] else text.strip())
        return results

    def _sample(self, texts: list[str], n: int, sampling: Sampling, seeds: list[int]) -> list[list[int]]:
        """Token ids of ``n`` completions per text (rows in order text × sample), end token cut."""
        import torch
        from transformers.generation.logits_process import TopKLogitsWarper, TopPLogitsWarper

        enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        mask = enc.attention_mask
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        warpers = [TopKLogitsWarper(sampling.top_k)] if sampling.top_k else []
        if sampling.top_p < 1.0:
            warpers.append(TopPLogitsWarper(sampling.top_p))
        generators = [torch.Generator(device=self.device).manual_seed(s) for s in seeds]
        rows = len(seeds)
        tokens: list[list[int]] = [[] for _ in range(rows)]
        active = torch.arange(rows, device=self.device)  # the rows still generating
        end = torch.tensor(self.eos_token_ids, device=self.device)
        with torch.inference_mode():
            out = self.model(input_ids=enc.input_ids, attention_mask=mask, position_ids=positions, use_cache=True)
            cache, logits = out.past_key_values, out.logits[:, -1, :].float()
            if n > 1:  # one prefill per prompt, shared by its n samples
                cache.batch_repeat_interleave(n)
                logits, mask = logits.repeat_interleave(n, 0), mask.repeat_interleave(n, 0)
            counts = torch.zeros_like(logits)  # per-row token counts, for the frequency penalty
            for step in range(sampling.max_new_tokens):
                scores = next_token_scores(logits, counts, sampling, warpers)
                if sampling.temperature > 0:
                    probs = torch.softmax(scores, dim=-1)
                    picked = torch.cat([torch.multinomial(probs[k], 1, generator=generators[r])
                                        for k, r in enumerate(active.tolist())])
                else:
                    picked = scores.argmax(-1)
                done = torch.isin(picked, end)
                for r, t, d in zip(active.tolist(), picked.tolist(), done.tolist()):
                    if not d:
                        tokens[r].append(t)
                keep = (~done).nonzero().squeeze(-1)
                if keep.numel() == 0 or step == sampling.max_new_tokens - 1:
                    break
                if keep.numel() < active.numel():  # finished rows leave the batch
                    cache.batch_select_indices(keep)
                    active, picked, mask, counts = active[keep], picked[keep], mask[keep], counts[keep]
                counts.scatter_add_(1, picked[:, None], torch.ones_like(counts[:, :1]))
                next_pos = mask.sum(-1, keepdim=True)
                mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=-1)
                out = self.model(input_ids=picked[:, None], attention_mask=mask, position_ids=next_pos,
                                 past_key_values=cache, use_cache=True)
                cache, logits = out.past_key_values, out.logits[:, -1, :].float()
        return tokens
