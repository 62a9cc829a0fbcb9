"""What the benches compare against, shared by them: a backend that makes one model call per
completion, and a pure batched decode (the fastest this model generates on this machine)."""

from __future__ import annotations

import time

from ixmcts.llm import TransformersBackend
from ixmcts.llm.backend import request_seed, seed_of


class OneCallPerNode(TransformersBackend):
    """The baseline: every completion is its own model call (batch 1, n = 1) and every
    prompt is prefilled from scratch (no prefix reuse). It samples each completion with the
    seed the shipped backend gives it, so both runs build the same trees and dialogues."""

    def __init__(self, model, threads):
        super().__init__(model, threads=threads, prefix_cache_mb=0)

    def generate(self, prompts, n, sampling, seed=0):
        from ixmcts.llm.backend import _Job

        out = []
        for i, prompt in enumerate(prompts):
            text = self.render(prompt)
            ids = self.tokenizer(text, add_special_tokens=False).input_ids
            samples = []
            for k in range(n):
                self.stats.calls += 1
                ((tokens,),) = self._decode([_Job(0, 0, ids, 1, sampling, [request_seed(seed_of(seed, i), text, k)])], capacity=1)
                samples.append(self.completion(prompt, tokens))
            out.append(samples)
        return out

    def generate_many(self, requests):
        return [self.generate(r.prompts, r.n, r.sampling, r.seed) for r in requests]


def decode_rate(backend: TransformersBackend, rows: int, context: int, steps: int) -> float:
    """Tokens/s of a pure batched decode: ``rows`` rows that each attend to ``context``
    positions, one token per row per step for ``steps`` steps (greedy, no prefill, no
    finished rows, no sampling bookkeeping): the limit the engine's generation is held against."""
    import torch

    from ixmcts.llm.kv_cache import RoomyCache

    model = backend.model
    ids = torch.randint(100, 1000, (1, context), generator=torch.Generator().manual_seed(0)).to(backend.device)
    with torch.inference_mode():
        cache = RoomyCache(model.config.num_hidden_layers, room=context + steps)
        out = model(input_ids=ids, cache=cache, use_cache=True, logits_to_keep=1)  # one row prefilled, untimed
        out.cache.batch_repeat_interleave(rows)  # the same context in every row: attention costs what it costs
        mask = torch.ones((rows, context), dtype=torch.long, device=backend.device)
        picked = out.logits[:, -1].argmax(-1).repeat(rows)
        start = time.perf_counter()
        for _ in range(steps):
            position = mask.sum(-1, keepdim=True)
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=-1)
            out = model(input_ids=picked[:, None], attention_mask=mask, position_ids=position, cache=out.cache,
                        use_cache=True)
            picked = out.logits[:, -1].float().argmax(-1)
        wall = time.perf_counter() - start
    return rows * steps / wall
