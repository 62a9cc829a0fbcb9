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
from collections import OrderedDict
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


def render_chat(tokenizer, messages: Messages) -> str:
    """The prompt text: the chat template with the assistant's turn opened, or a trailing
    assistant message (a prefilled answer) left open to be continued."""
    if messages and messages[-1]["role"] == "assistant":
        return tokenizer.apply_chat_template(messages, tokenize=False, continue_final_message=True)
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def with_prefill(prompt: Messages, text: str) -> str:
    """A completion's text, with the prompt's prefilled answer (a trailing assistant
    message the model continued) put back in front."""
    prefix = prompt[-1]["content"] if prompt and prompt[-1]["role"] == "assistant" else ""
    return (prefix + text).strip()


def next_token_scores(logits, counts, sampling: Sampling):
    """Scores to sample the next token from: the OpenAI-style frequency penalty (minus
    ``penalty`` × the token's count so far in the completion; transformers only ships the
    multiplicative repetition penalty), then temperature."""
    scores = logits - sampling.frequency_penalty * counts if sampling.frequency_penalty else logits
    return scores / sampling.temperature if sampling.temperature > 0 else scores


def candidates(scores, sampling: Sampling):
    """The tokens top-k and then top-p keep, in ``generate``'s order and with its semantics,
    as ``(values, token_ids)`` of shape (rows, k), best first; top-p's removals are −inf.
    Sampling among k candidates instead of the whole vocabulary spares a full sort and a
    full-vocabulary softmax per row and step; the distribution is the same."""
    k = min(sampling.top_k or scores.shape[-1], scores.shape[-1])
    values, ids = scores.topk(k, dim=-1)
    if sampling.top_p < 1.0:
        mass_below = values.softmax(-1).flip(-1).cumsum(-1).flip(-1)  # this token's and all lower ones'
        remove = mass_below <= 1 - sampling.top_p
        remove[:, 0] = False  # the best token always stays
        values = values.masked_fill(remove, float("-inf"))
    return values, ids


class PrefixCache:
    """KV states of recent prompts, so that a prompt extending one seen before (the same
    conversation one turn deeper, in the search) prefills only the tokens it adds.
    Least recently used entries go first once ``max_bytes`` is reached."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.entries: OrderedDict[tuple[int, ...], tuple] = OrderedDict()  # ids -> (ids array, [(k, v)] per layer)
        self.bytes = 0
        self.hits = self.reused_tokens = 0

    def longest(self, ids: list[int]) -> tuple[int, list | None]:
        """The longest cached prefix of ``ids`` (at most all but the last token) and its KV."""
        import numpy as np

        query, best, found = np.asarray(ids), 0, None
        for key, (arr, kv) in self.entries.items():
            m = min(len(arr), len(query) - 1)
            if m <= best:
                continue
            same = arr[:m] == query[:m]
            lcp = m if same.all() else int(same.argmin())
            if lcp > best:
                best, found = lcp, key
        if found is None:
            return 0, None
        self.entries.move_to_end(found)
        self.hits, self.reused_tokens = self.hits + 1, self.reused_tokens + best
        return best, [(k[:, :best], v[:, :best]) for k, v in self.entries[found][1]]

    def store(self, ids: list[int], kv: list) -> None:
        import numpy as np

        key = tuple(ids)
        size = sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in kv)
        if key in self.entries or size > self.max_bytes:
            return
        self.entries[key] = (np.asarray(ids), kv)
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, (_, old) = self.entries.popitem(last=False)
            self.bytes -= sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in old)


class TransformersBackend:
    """Batched sampling with a transformers causal LM and a decoding loop of its own.

    Prompts are sorted by length and sent in chunks of ``batch_size`` (left padding kept
    small). Each prompt is prefilled once and its KV cache repeated for its ``n`` samples
    (``generate(num_return_sequences=n)`` would prefill it ``n`` times), finished rows leave
    the batch, and every completion samples from its own generator seeded by
    :func:`request_seed`, so results do not depend on how requests are batched."""

    def __init__(self, model, *, batch_size: int = 16, threads: int | None = None, device: str | None = None,
                 prefix_cache_mb: int = 2048):
        """``model``: a ``ModelSpec`` (base + adapters), a registry name or a folder.
        ``prefix_cache_mb``: memory for the KV states of recent prompts (0 turns reuse off)."""
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
        self.prefix_cache = PrefixCache(prefix_cache_mb * 2**20) if prefix_cache_mb > 0 else None

    def render(self, messages: Messages) -> str:
        return render_chat(self.tokenizer, messages)

    def generate(self, prompts: Sequence[Messages], n: int, sampling: Sampling, seed: int = 0) -> list[list[str]]:
        if not prompts:
            return []
        texts = [self.render(p) for p in prompts]
        lengths = [len(self.tokenizer(t, add_special_tokens=False).input_ids) for t in texts]
        order = sorted(range(len(texts)), key=lambda i: (lengths[i], i))
        results: list[list[str]] = [[] for _ in texts]
        self.stats.calls += 1
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            seeds = [request_seed(seed, texts[i], j) for i in idx for j in range(n)]
            for row, ids in enumerate(self._sample([texts[i] for i in idx], n, sampling, seeds)):
                i = idx[row // n]
                results[i].append(self.completion(prompts[i], ids))
        return results

    def completion(self, prompt: Messages, ids: list[int]) -> str:
        """The text of sampled token ids; a prefilled answer is put back in front."""
        self.stats.generated_tokens += len(ids)
        self.stats.sequences += 1
        return with_prefill(prompt, self.tokenizer.decode(ids, skip_special_tokens=True))

    def _prefill(self, prompts: list[list[int]], room: int = 0):
        """Run the prompts' tokens through the model in one left-padded batch, starting each
        from its longest cached prefix; returns the batch's KV cache (with ``room`` more
        positions for decoding), the next-token logits and the attention mask.
        Layout of row i: [pad][cached c_i][pad][new tokens]."""
        import torch

        from .kv_cache import RoomyCache

        reuse = [self.prefix_cache.longest(ids) if self.prefix_cache else (0, None) for ids in prompts]
        past = max(c for c, _ in reuse)
        new = [ids[c:] for ids, (c, _) in zip(prompts, reuse)]
        rows, width = len(prompts), max(len(x) for x in new)
        input_ids = torch.full((rows, width), self.tokenizer.pad_token_id or 0, dtype=torch.long)
        mask = torch.zeros((rows, past + width), dtype=torch.long)
        positions = torch.zeros((rows, width), dtype=torch.long)  # pads stay 0: they are masked
        for i, (ids, (c, _)) in enumerate(zip(new, reuse)):
            input_ids[i, width - len(ids):] = torch.tensor(ids)
            mask[i, past - c : past] = 1
            mask[i, past + width - len(ids):] = 1
            positions[i, width - len(ids):] = torch.arange(c, c + len(ids))
        cache = RoomyCache(self.model.config.num_hidden_layers, room=past + width + room)
        if past:
            template = next(kv for _, kv in reuse if kv)
            for layer, (k0, v0) in enumerate(template):
                k = k0.new_zeros((rows, k0.shape[0], past, k0.shape[2]))
                v = v0.new_zeros((rows, v0.shape[0], past, v0.shape[2]))
                for i, (c, kv) in enumerate(reuse):
                    if c:
                        k[i, :, past - c :], v[i, :, past - c :] = kv[layer]
                cache.layers[layer].update(k, v)
        mask = mask.to(self.device)
        out = self.model(input_ids=input_ids.to(self.device), attention_mask=mask, position_ids=positions.to(self.device),
                         cache=cache, use_cache=True, logits_to_keep=1)
        cache = out.cache  # (transformers 5 names the KV cache `cache`)
        if self.prefix_cache is not None:
            for i, ids in enumerate(prompts):
                real = mask[i].nonzero().squeeze(-1)
                self.prefix_cache.store(ids, [(k[i].index_select(1, real), v[i].index_select(1, real))
                                              for k, v, *_ in cache])
        return cache, out.logits[:, -1, :].float(), mask

    def _sample(self, texts: list[str], n: int, sampling: Sampling, seeds: list[int]) -> list[list[int]]:
        """Token ids of ``n`` completions per text (rows in order text × sample), end token cut."""
        import torch

        generators = [torch.Generator(device=self.device).manual_seed(s) for s in seeds]
        rows = len(seeds)
        tokens: list[list[int]] = [[] for _ in range(rows)]
        active = torch.arange(rows, device=self.device)  # the rows still generating
        end = torch.tensor(self.eos_token_ids, device=self.device)
        with torch.inference_mode():
            cache, logits, mask = self._prefill([self.tokenizer(t, add_special_tokens=False).input_ids for t in texts],
                                                room=sampling.max_new_tokens)
            if n > 1:  # one prefill per prompt, shared by its n samples
                cache.batch_repeat_interleave(n)
                logits, mask = logits.repeat_interleave(n, 0), mask.repeat_interleave(n, 0)
            counts = torch.zeros_like(logits)  # per-row token counts, for the frequency penalty
            for step in range(sampling.max_new_tokens):
                scores = next_token_scores(logits, counts, sampling)
                if sampling.temperature > 0:
                    values, ids = candidates(scores, sampling)
                    probs = torch.softmax(values, dim=-1)
                    picked = torch.cat([ids[k, torch.multinomial(probs[k], 1, generator=generators[r])]
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
                                 cache=cache, use_cache=True)
                cache, logits = out.cache, out.logits[:, -1, :].float()
        return tokens
