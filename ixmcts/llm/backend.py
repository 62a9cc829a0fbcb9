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
import time
from collections import OrderedDict, deque
from dataclasses import asdict, dataclass
from typing import NamedTuple, Protocol, Sequence

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
    prefill_tokens: int = 0  # prompt tokens run through the model (those reused from the prefix cache are not)
    prefill_positions: int = 0  # positions the prefill batches computed, pads included (÷ prefill_tokens: padding cost)
    prefill_sec: float = 0.0  # prefilling and merging newcomers into the running batch
    decode_steps: int = 0  # one-token forward passes of the running batch
    decode_rows: int = 0  # rows summed over decoding steps (÷ steps: the mean batch)
    decode_context: int = 0  # attention width summed over decoding steps (÷ steps: the mean context)
    decode_sec: float = 0.0
    merges: int = 0  # times waiting prompts joined a running batch


@dataclass(frozen=True)
class Request:
    """One ``generate`` call's arguments, for :meth:`TransformersBackend.generate_many`."""

    prompts: Sequence[Messages]
    n: int
    sampling: Sampling
    seed: int | Sequence[int] = 0  # one for every prompt, or one per prompt


class GenerationBackend(Protocol):
    stats: GenerationStats

    def generate(
        self, prompts: Sequence[Messages], n: int, sampling: Sampling, seed: int | Sequence[int] = 0
    ) -> list[list[str]]: ...


# A running batch holds at most BATCH_SIZE prompts' samples per request and MAX_ROWS rows in all.
# On 2 CPU cores a pure decode of SmolLM2-135M gives 1.7x more tokens/s at 64 rows than at 16
# (bench/baselines.decode_rate, context 400) and 1.1x more at 96; Best-of-N's n samples per
# prompt would multiply the rows past that knee, hence the row cap. Batching never changes what
# is sampled (per-row seeds); bench/evaluate_throughput.py --baseline-batch 16 measures the gain.
BATCH_SIZE = 64
MAX_ROWS = 64
# Prompts per prefill forward: wider, the one forward pads more prompts to the longest new part and
# attends over the longest reused prefix, and a token's prefill gets slower, not faster.
PREFILL_PROMPTS = 16


def seed_of(seed: int | Sequence[int], index: int) -> int:
    """A call's seed for its ``index``-th prompt: one seed for every prompt, or one per prompt
    (identical prompts, such as every dialogue's first persuader turn, then sample apart)."""
    return seed if isinstance(seed, int) else seed[index]


def hashed_seed(*parts, size: int = 8) -> int:
    """A seed derived from ``parts`` alone (blake2b of their NUL-joined text, ``size`` bytes,
    little-endian): the same parts give the same seed in any process, whatever else is sampled."""
    digest = hashlib.blake2b("\x00".join(map(str, parts)).encode(), digest_size=size).digest()
    return int.from_bytes(digest, "little")


def request_seed(seed: int, prompt: str, sample: int) -> int:
    """The sampling seed of one completion: a function of the call's seed, the rendered
    prompt and the sample's index only, so that batching never changes what is sampled."""
    return hashed_seed(seed, sample, prompt) & (2**63 - 1)


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


class _Chunk:
    """KV states of consecutive positions ``[start, start + length)``, shared by every cache
    entry whose tokens run through them (a prompt, its longer continuations, its samples)."""

    def __init__(self, start: int, kv: list):
        self.start, self.kv, self.refs = start, kv, 0
        self.bytes = sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in kv)


class Prefix(NamedTuple):
    """The longest cached prefix of a prompt: its length, its KV as ``(start, [(k, v) per
    layer])`` pieces in order, and the entry it came from."""

    length: int
    parts: list | None
    key: tuple | None = None


class PrefixCache:
    """KV states of recent prompts and completions, so that a prompt extending one seen before
    (the same conversation one turn deeper, in the search and the evaluation) prefills only the
    tokens it adds. An entry that extends another stores only its new positions and shares the
    rest (siblings share their prompt; a conversation shares its history), so memory grows with
    the new tokens, not with the conversations' lengths. Least recently used entries go first
    once ``max_bytes`` (counted over the distinct pieces still held) is reached."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.entries: OrderedDict[tuple[int, ...], tuple] = OrderedDict()  # ids -> (ids array, [(chunk, end)])
        self.bytes = 0
        self.hits = self.reused_tokens = 0

    def longest(self, ids: list[int], count: bool = True) -> Prefix:
        """The longest cached prefix of ``ids`` (at most all but the last token) and its KV;
        ``count``: a use (refreshes the entry, counts as a hit), not a look."""
        import numpy as np

        query, best, found = np.asarray(ids), 0, None
        for key, (arr, _) in self.entries.items():
            m = min(len(arr), len(query) - 1)
            if m <= best:
                continue
            same = arr[:m] == query[:m]
            lcp = m if same.all() else int(same.argmin())
            if lcp > best:
                best, found = lcp, key
        if found is None:
            return Prefix(0, None)
        if not count:
            return Prefix(best, None, found)
        self.entries.move_to_end(found)
        self.hits, self.reused_tokens = self.hits + 1, self.reused_tokens + best
        parts = [(chunk.start, [(k[:, : min(end, best) - chunk.start], v[:, : min(end, best) - chunk.start])
                                for k, v in chunk.kv])
                 for chunk, end in self.entries[found][1] if chunk.start < best]
        return Prefix(best, parts, found)

    def store(self, ids: list[int], kv: list, base: tuple | None = None, base_length: int = 0) -> None:
        """Keep the KV of ``ids``: ``kv`` covers its positions from ``base_length`` on, and the
        first ``base_length`` come from the entry ``base`` (skipped when that entry is gone)."""
        import numpy as np

        key = tuple(ids)
        if key in self.entries:
            return
        pieces = []
        if base_length:
            if base not in self.entries:
                return
            pieces = [(chunk, min(end, base_length)) for chunk, end in self.entries[base][1] if chunk.start < base_length]
        chunk = _Chunk(base_length, kv)
        if chunk.bytes > self.max_bytes:
            return
        pieces.append((chunk, len(ids)))
        for c, _ in pieces:
            c.refs += 1
        self.bytes += chunk.bytes
        self.entries[key] = (np.asarray(ids), pieces)
        while self.bytes > self.max_bytes:
            _, (_, old) = self.entries.popitem(last=False)
            for c, _ in old:
                c.refs -= 1
                if c.refs == 0:
                    self.bytes -= c.bytes


class TransformersBackend:
    """Batched sampling with a transformers causal LM and a decoding loop of its own.

    A call's prompts (or several calls', with :meth:`generate_many`) are decoded in one running
    batch with room for ``batch_size`` prompts' samples per call: prompts enter shortest first,
    finished rows leave, and waiting prompts are prefilled into the batch as rows come free.
    Each prompt is prefilled once, from its longest cached prefix, and its KV cache repeated for
    its ``n`` samples (``generate(num_return_sequences=n)`` would prefill it ``n`` times); every
    completion samples from its own generator seeded by :func:`request_seed`, so results do not
    depend on how requests are batched. On CPU, building one sets glibc to keep the memory the
    process frees for its next use (:func:`ixmcts.memory.keep_freed_memory`, for the whole
    process: freed memory is reused, not handed back to the system)."""

    def __init__(self, model, *, batch_size: int = BATCH_SIZE, max_rows: int = MAX_ROWS, threads: int | None = None,
                 device: str | None = None, prefix_cache_mb: int = 2048):
        """``model``: a ``ModelSpec`` (base + adapters), a registry name or a folder.
        ``batch_size``: prompts per request in the running batch; ``max_rows``: rows (samples)
        in it in all (0: no cap; a prompt's ``n`` samples always fit).
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
        if self.device == "cpu":  # CUDA's fast kernels take no mask with grouped heads: keep transformers' sdpa there
            from ..memory import keep_freed_memory
            from .attention import use_grouped_sdpa

            use_grouped_sdpa(self.model)
            keep_freed_memory()  # KV buffers and logits come and go at every step: reuse them, unfaulted
        self.batch_size, self.max_rows = batch_size, max_rows
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

    def generate(self, prompts: Sequence[Messages], n: int, sampling: Sampling, seed: int | Sequence[int] = 0) -> list[list[str]]:
        return self.generate_many([Request(prompts, n, sampling, seed)])[0]

    def generate_many(self, requests: Sequence[Request]) -> list[list[list[str]]]:
        """Several calls' requests (other roles, other ``n`` and sampling settings) decoded in
        one running batch; each request's answer is what its own ``generate`` returns."""
        jobs: list[_Job] = []
        for r, req in enumerate(requests):
            for i, prompt in enumerate(req.prompts):
                text = self.render(prompt)
                ids = self.tokenizer(text, add_special_tokens=False).input_ids
                seeds = [request_seed(seed_of(req.seed, i), text, k) for k in range(req.n)]
                jobs.append(_Job(r, i, ids, req.n, req.sampling, seeds))
        results = [[[] for _ in req.prompts] for req in requests]
        if not jobs:
            return results
        self.stats.calls += 1
        # room for batch_size prompts' samples per request, so a call joined by another role's
        # gets a batch as full as each would get alone, up to max_rows
        capacity = sum(min(len(req.prompts), self.batch_size) * req.n for req in requests)
        if self.max_rows:
            capacity = max(min(capacity, self.max_rows), max(req.n for req in requests))
        live = [job for job in jobs if job.sampling.max_new_tokens > 0]  # the others complete with nothing
        decoded = dict(zip(map(id, live), self._decode(live, capacity))) if live else {}
        for job in jobs:
            samples = decoded.get(id(job), [[] for _ in range(job.n)])
            prompt = requests[job.request].prompts[job.prompt]
            results[job.request][job.prompt] = [self.completion(prompt, ids) for ids in samples]
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

        reuse = [self.prefix_cache.longest(ids) if self.prefix_cache else Prefix(0, None) for ids in prompts]
        past = max(r.length for r in reuse)
        new = [ids[r.length:] for ids, r in zip(prompts, reuse)]
        rows, width = len(prompts), max(len(x) for x in new)
        self.stats.prefill_tokens += sum(len(x) for x in new)
        self.stats.prefill_positions += rows * width
        input_ids = torch.full((rows, width), self.tokenizer.pad_token_id or 0, dtype=torch.long)
        mask = torch.zeros((rows, past + width), dtype=torch.long)
        positions = torch.zeros((rows, width), dtype=torch.long)  # pads stay 0: they are masked
        for i, (ids, (c, *_)) in enumerate(zip(new, reuse)):
            input_ids[i, width - len(ids):] = torch.tensor(ids)
            mask[i, past - c : past] = 1
            mask[i, past + width - len(ids):] = 1
            positions[i, width - len(ids):] = torch.arange(c, c + len(ids))
        cache = RoomyCache(self.model.config.num_hidden_layers, room=past + width + room)
        if past:
            template = next(r.parts[0][1] for r in reuse if r.parts)
            for layer, (k0, _) in enumerate(template):
                k, v = cache.layers[layer].reserve(k0, rows, past)
                for i, r in enumerate(reuse):
                    for start, kv in r.parts or ():
                        at, (ks, vs) = past - r.length + start, kv[layer]
                        k[i, :, at : at + ks.shape[1]], v[i, :, at : at + vs.shape[1]] = ks, vs
        mask = mask.to(self.device)
        out = self.model(input_ids=input_ids.to(self.device), attention_mask=mask, position_ids=positions.to(self.device),
                         cache=cache, use_cache=True, logits_to_keep=1)
        cache = out.cache  # (transformers 5 names the KV cache `cache`)
        if self.prefix_cache is not None:  # each prompt's new positions (the row's last ones), on top of the entry it reused
            for i, (ids, r, x) in enumerate(zip(prompts, reuse, new)):
                start = cache.layers[0].keys.shape[2] - len(x)
                self.prefix_cache.store(ids, [(_copy(k[i, :, start:]), _copy(v[i, :, start:])) for k, v, *_ in cache],
                                        base=r.key, base_length=r.length)
        return cache, out.logits[:, -1, :].float(), mask

    def _decode(self, jobs: list["_Job"], capacity: int) -> list[list[list[int]]]:
        """Token ids of every job's ``n`` samples (end token cut), decoded in one running batch
        of at most ``capacity`` rows: prompts enter shortest first, finished rows leave, and
        waiting prompts are prefilled into the batch whenever a quarter of it (or room for the
        next prompt's samples) has come free."""
        import torch

        pending = deque(sorted(range(len(jobs)), key=lambda j: (len(jobs[j].ids), j)))
        out: list[list[list[int]]] = [[[] for _ in range(job.n)] for job in jobs]
        end = torch.tensor(self.eos_token_ids, device=self.device)
        batch: _Batch | None = None
        with torch.inference_mode():
            while pending or batch is not None:
                free = capacity - (len(batch.rows) if batch else 0)
                if pending and (batch is None or free >= max(jobs[pending[0]].n, capacity // 4)):
                    admitted: list[int] = []
                    while pending and (jobs[pending[0]].n <= free or not admitted and batch is None):
                        admitted.append(pending.popleft())
                        free -= jobs[admitted[-1]].n
                    started = self._start([jobs[j] for j in admitted], admitted)
                    batch = started if batch is None else self._merge(batch, started)
                start = time.perf_counter()
                picked = self._pick(batch)
                done = torch.isin(picked, end).tolist()
                keep = []
                for pos, (row, t, d) in enumerate(zip(batch.rows, picked.tolist(), done)):
                    if not d:
                        out[row.job][row.sample].append(t)
                    row.steps += 1
                    if not d and row.steps < row.sampling.max_new_tokens:
                        keep.append(pos)
                    elif self.prefix_cache is not None:
                        self._remember(batch, pos, jobs[row.job].ids, out[row.job][row.sample])
                if not keep:
                    batch = None
                    self.stats.decode_sec += time.perf_counter() - start
                    continue
                if len(keep) < len(batch.rows):  # finished rows leave the batch (rows' order is free)
                    order = batch.cache.keep_rows(keep)
                    index = torch.tensor(order, device=self.device)
                    batch.rows = [batch.rows[p] for p in order]
                    picked, batch.mask, batch.counts = picked[index], batch.mask[index], batch.counts[index]
                batch.counts.scatter_add_(1, picked[:, None], torch.ones_like(batch.counts[:, :1]))
                next_pos = batch.mask.sum(-1, keepdim=True)
                batch.mask = torch.cat([batch.mask, torch.ones_like(batch.mask[:, :1])], dim=-1)
                result = self.model(input_ids=picked[:, None], attention_mask=batch.mask, position_ids=next_pos,
                                    cache=batch.cache, use_cache=True)
                batch.cache, batch.logits = result.cache, result.logits[:, -1, :].float()
                self.stats.decode_steps += 1
                self.stats.decode_rows += len(batch.rows)
                self.stats.decode_context += batch.mask.shape[1]
                self.stats.decode_sec += time.perf_counter() - start
        return out

    def _remember(self, batch: "_Batch", pos: int, prompt: list[int], tokens: list[int]) -> None:
        """Keep a finished row's KV (its prompt and the sampled tokens run through the model)
        in the prefix cache, on top of its prompt's entry: the next turn's prompt carries this
        completion (a conversation's reply is its next prompt's history)."""
        fed = tokens[: int(batch.mask[pos].sum()) - len(prompt)]  # a row cut at max_new_tokens never ran its last token
        if not fed:
            return
        # the sampled tokens are the row's last positions: every decoding step appends one to every row
        start = batch.mask.shape[1] - len(fed)
        self.prefix_cache.store(prompt + fed, [(_copy(layer.keys[pos, :, start:]), _copy(layer.values[pos, :, start:]))
                                              for layer in batch.cache.layers], base=tuple(prompt), base_length=len(prompt))

    def _share_prefixes(self, prompts: list[list[int]], least: int = 48) -> None:
        """Prefill, once each, the prefixes that several of ``prompts`` share beyond what the
        prefix cache holds (the same system prompt and condition across trees or dialogues),
        so that the prompts' own prefill finds them in the cache instead of running each copy."""
        shared: list[list[int]] = []
        ordered = sorted(prompts)
        run_start, common = 0, None
        for i in range(1, len(ordered) + 1):
            lcp = common_length(ordered[i - 1], ordered[i]) if i < len(ordered) else 0
            if lcp >= least:
                common = lcp if common is None else min(common, lcp)
                continue
            if common is not None:
                prefix = ordered[run_start][:common]
                if common - self.prefix_cache.longest(prefix + [-1], count=False).length >= least:
                    shared.append(prefix)
            run_start, common = i, None
        if shared:
            self._prefill(shared)

    def _start(self, jobs: list["_Job"], numbers: list[int]) -> "_Batch":
        """Prefill the jobs' prompts (once each) and give every sample a row of its own. The
        prompts go through the model in groups of at most ``PREFILL_PROMPTS`` with similar
        numbers of uncached tokens (one forward pads every prompt to its group's longest new
        part), and the groups' batches are merged into one."""
        import torch

        start = time.perf_counter()
        if self.prefix_cache is not None and len(jobs) > 1:
            self._share_prefixes([job.ids for job in jobs])
        cached = [self.prefix_cache.longest(job.ids, count=False).length if self.prefix_cache else 0 for job in jobs]
        order = sorted(range(len(jobs)), key=lambda j: (len(jobs[j].ids) - cached[j], j))
        room = max(j.sampling.max_new_tokens for j in jobs)
        batches = []
        for g in range(0, len(order), PREFILL_PROMPTS):
            group = [jobs[j] for j in order[g : g + PREFILL_PROMPTS]]
            cache, logits, mask = self._prefill([job.ids for job in group], room=room)
            if any(job.n > 1 for job in group):  # one prefill per prompt, shared by its n samples
                index = torch.repeat_interleave(torch.arange(len(group), device=self.device),
                                                torch.tensor([job.n for job in group], device=self.device))
                cache.batch_select_indices(index)
                logits, mask = logits[index], mask[index]
            rows = [_Row(numbers[j], k, torch.Generator(device=self.device).manual_seed(seed), jobs[j].sampling)
                    for j in order[g : g + PREFILL_PROMPTS] for k, seed in enumerate(jobs[j].seeds)]
            batches.append(_Batch(cache, mask, logits, torch.zeros_like(logits), rows))
        self.stats.prefill_sec += time.perf_counter() - start
        batch = batches[0]
        for other in batches[1:]:  # (each merge counts its own time)
            batch = self._merge(batch, other)
        return batch

    def _merge(self, a: "_Batch", b: "_Batch") -> "_Batch":
        """One batch of both: every row's real positions moved to the right end of a common
        width (the pads between a reused prefix and the new tokens, and those left behind by
        rows that came and went, are dropped), so attention never spans more than the
        longest row."""
        import torch

        from .kv_cache import RoomyCache

        start = time.perf_counter()
        width = int(max(a.mask.sum(-1).max(), b.mask.sum(-1).max()))
        room = width + max(r.sampling.max_new_tokens - r.steps for r in a.rows + b.rows)
        merged = RoomyCache(len(a.cache.layers), room=room)
        index_a, mask_a = _right_aligned(a.mask, width)
        index_b, mask_b = _right_aligned(b.mask, width)
        for layer, la, lb in zip(merged.layers, a.cache.layers, b.cache.layers):
            heads, dim = la.keys.shape[1], la.keys.shape[3]
            ia = index_a[:, None, :, None].expand(-1, heads, -1, dim)
            ib = index_b[:, None, :, None].expand(-1, heads, -1, dim)
            layer.update(torch.cat([la.keys.gather(2, ia), lb.keys.gather(2, ib)]),
                         torch.cat([la.values.gather(2, ia), lb.values.gather(2, ib)]))
        self.stats.merges += 1
        self.stats.prefill_sec += time.perf_counter() - start
        return _Batch(merged, torch.cat([mask_a, mask_b]), torch.cat([a.logits, b.logits]),
                      torch.cat([a.counts, b.counts]), a.rows + b.rows)

    def _pick(self, batch: "_Batch"):
        """The next token of every row, each sampled with its own settings and generator."""
        import torch

        groups: dict[Sampling, list[int]] = {}
        for pos, row in enumerate(batch.rows):
            groups.setdefault(row.sampling, []).append(pos)
        picked = torch.empty(len(batch.rows), dtype=torch.long, device=self.device)
        for sampling, positions in groups.items():
            if len(groups) == 1:
                where, logits, counts = slice(None), batch.logits, batch.counts
            else:
                where = torch.tensor(positions, device=self.device)
                logits, counts = batch.logits[where], batch.counts[where]
            scores = next_token_scores(logits, counts, sampling)
            if sampling.temperature > 0:
                values, ids = candidates(scores, sampling)
                probs = torch.softmax(values, dim=-1)
                picked[where] = torch.cat([ids[k, torch.multinomial(probs[k], 1, generator=batch.rows[p].generator)]
                                           for k, p in enumerate(positions)])
            else:
                picked[where] = scores.argmax(-1)
        return picked


@dataclass
class _Job:
    """One prompt of one request: its token ids and its samples' settings and seeds."""

    request: int
    prompt: int
    ids: list[int]
    n: int
    sampling: Sampling
    seeds: list[int]


@dataclass
class _Row:
    """One sample being decoded."""

    job: int
    sample: int
    generator: object  # torch.Generator
    sampling: Sampling
    steps: int = 0  # tokens sampled so far (the end token included)


@dataclass
class _Batch:
    """The running batch: KV cache, attention mask, next-token logits, token counts (for the
    frequency penalty) and which sample each row is."""

    cache: object
    mask: object
    logits: object
    counts: object
    rows: list[_Row]


def _copy(kv):
    """A compact copy of a slice of the batch's KV buffers (a prefix cache entry must not hold
    the whole buffer)."""
    import torch

    return kv.clone(memory_format=torch.contiguous_format)


def common_length(a: list[int], b: list[int]) -> int:
    """How many leading tokens ``a`` and ``b`` share."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _right_aligned(mask, width: int):
    """Gather indices that move each row's real positions to the right end of ``width``
    columns (pads point at column 0, which always holds finite values), and the new mask."""
    import torch

    lengths = mask.sum(-1)
    index = torch.zeros((mask.shape[0], width), dtype=torch.long, device=mask.device)
    for i in range(mask.shape[0]):
        real = mask[i].nonzero().squeeze(-1)
        index[i, width - real.numel():] = real
    columns = torch.arange(width, device=mask.device)
    return index, (columns[None, :] >= width - lengths[:, None]).long()
