import json
import platform
from pathlib import Path

import pytest
import torch

from ixmcts.errors import IxmctsError
from ixmcts.llm import Sampling, TransformersBackend, resolve_model

CHAT = [{"role": "system", "content": "You are a persuader."}, {"role": "user", "content": "Hi."}]


@pytest.fixture(scope="module")
def backend(tiny_model):
    return TransformersBackend(tiny_model, batch_size=2, threads=1)


def test_n_samples_per_prompt_in_input_order(backend):
    prompts = [CHAT, CHAT + [{"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Tell me more about it please."}], CHAT]
    out = backend.generate(prompts, 3, Sampling(max_new_tokens=8), seed=5)
    assert [len(o) for o in out] == [3, 3, 3] and all(isinstance(t, str) for o in out for t in o)
    assert backend.stats.sequences == 9 and 0 < backend.stats.generated_tokens <= 9 * 8


def test_seeded_sampling_is_reproducible(backend):
    a = backend.generate([CHAT], 4, Sampling(max_new_tokens=12), seed=1)
    b = backend.generate([CHAT], 4, Sampling(max_new_tokens=12), seed=1)
    c = backend.generate([CHAT], 4, Sampling(max_new_tokens=12), seed=2)
    assert a == b and a != c


def test_trailing_assistant_message_is_continued(backend):
    prompt = CHAT + [{"role": "assistant", "content": "I will donate $"}]
    assert "continue" not in backend.render(prompt) and backend.render(prompt).endswith("I will donate $")
    (outs,) = backend.generate([prompt], 2, Sampling(max_new_tokens=4), seed=0)
    assert all(o.startswith("I will donate $") for o in outs)


LONGER = CHAT + [{"role": "assistant", "content": "Hello there, thanks for chatting."},
                {"role": "user", "content": "Tell me more about the charity please, I have time."}]


def test_completions_do_not_depend_on_batching(tiny_model):
    """Each completion has its own seeded generator: batch size, batch mates and padding
    leave it unchanged (the search's sharding and the throughput bench rely on this)."""
    sampling = Sampling(max_new_tokens=10)
    alone = TransformersBackend(tiny_model, batch_size=1, threads=1)
    together = TransformersBackend(tiny_model, batch_size=8, threads=1)
    a = [alone.generate([p], 3, sampling, seed=4)[0] for p in (CHAT, LONGER)]
    b = together.generate([LONGER, CHAT, LONGER], 3, sampling, seed=4)
    assert b == [a[1], a[0], a[1]]
    assert len(set(a[1])) > 1  # the n samples of one prompt differ from each other


def test_prompts_prefilled_in_groups_sample_what_they_sample_alone(tiny_model, monkeypatch):
    """A batch's prompts are prefilled in groups of similar uncached length (at most
    PREFILL_PROMPTS per forward) and merged; each completion is still the one its prompt gets
    alone, on a first turn and on a next turn that reuses cached prefixes."""
    import ixmcts.llm.backend as backend_module

    sampling = Sampling(max_new_tokens=10)
    alone = TransformersBackend(tiny_model, batch_size=1, threads=1)
    next_turn = LONGER + [{"role": "assistant", "content": "Sure."}, {"role": "user", "content": "Go on."}]
    want = [alone.generate([p], 2, sampling, seed=3)[0] for p in (CHAT, LONGER, next_turn)]
    monkeypatch.setattr(backend_module, "PREFILL_PROMPTS", 1)
    grouped = TransformersBackend(tiny_model, batch_size=8, threads=1)
    assert grouped.generate([LONGER, CHAT], 2, sampling, seed=3) == [want[1], want[0]]
    merges = grouped.stats.merges
    assert grouped.generate([next_turn, CHAT, LONGER], 2, sampling, seed=3) == [want[2], want[0], want[1]]
    assert grouped.stats.merges >= merges + 2  # three groups of one became one batch


def test_max_rows_caps_the_running_batch_without_changing_completions(tiny_model):
    """``max_rows`` bounds the rows decoded together (Best-of-N's n samples per prompt would
    otherwise multiply the batch); a prompt's n samples still fit when n exceeds it, and what
    is sampled is what an uncapped backend samples."""
    sampling = Sampling(max_new_tokens=10)
    prompts = [CHAT, LONGER, CHAT, LONGER]
    uncapped = TransformersBackend(tiny_model, batch_size=8, max_rows=0, threads=1)
    capped = TransformersBackend(tiny_model, batch_size=8, max_rows=3, threads=1)
    want = uncapped.generate(prompts, 2, sampling, seed=7)
    assert capped.generate(prompts, 2, sampling, seed=7) == want
    assert uncapped.stats.decode_rows > 3 * uncapped.stats.decode_steps  # 8 rows at the start: the cap binds
    assert capped.stats.decode_rows <= 3 * capped.stats.decode_steps
    narrow = TransformersBackend(tiny_model, batch_size=8, max_rows=1, threads=1)
    assert narrow.generate(prompts, 2, sampling, seed=7) == want  # n = 2 > max_rows: one prompt's samples at a time


def test_prefix_cache_reuses_earlier_prompts_without_changing_completions(tiny_model):
    """A prompt that extends an earlier one prefills only its new tokens; greedy and seeded
    samples are those of a backend without the cache, in a batch that mixes both kinds."""
    cached = TransformersBackend(tiny_model, batch_size=4, threads=1, prefix_cache_mb=64)
    plain = TransformersBackend(tiny_model, batch_size=4, threads=1, prefix_cache_mb=0)
    other = [{"role": "system", "content": "You are someone else entirely."}, {"role": "user", "content": "Why?"}]
    for sampling in (Sampling(temperature=0.0, top_p=1.0, top_k=0, max_new_tokens=10), Sampling(max_new_tokens=10)):
        assert cached.generate([CHAT], 2, sampling, seed=3) == plain.generate([CHAT], 2, sampling, seed=3)
        hits = cached.prefix_cache.hits
        assert cached.generate([LONGER, other], 2, sampling, seed=3) == plain.generate([LONGER, other], 2, sampling, seed=3)
        assert cached.prefix_cache.hits > hits and cached.prefix_cache.reused_tokens > 10
    assert plain.prefix_cache is None and 0 < cached.prefix_cache.bytes <= 64 * 2**20


def test_a_running_batch_refilled_as_rows_finish_samples_what_one_prompt_at_a_time_samples(tiny_model):
    """Continuous batching (issue 16): prompts wait for room, join the running batch when
    rows finish (their pads dropped, every row re-aligned), and calls of other roles and
    settings share one batch; every completion is still the one its prompt gets alone."""
    from ixmcts.llm.backend import Request

    short, long = Sampling(temperature=0.3, max_new_tokens=3), Sampling(max_new_tokens=9)
    other = [{"role": "system", "content": "You are someone else entirely."}, {"role": "user", "content": "Why?"}]
    requests = [Request([LONGER, CHAT, other], 2, long, seed=7), Request([CHAT, other, LONGER], 1, short, seed=8)]
    shared = TransformersBackend(tiny_model, batch_size=2, threads=1)  # room for 4 rows: newcomers must wait
    together = shared.generate_many(requests)
    alone = TransformersBackend(tiny_model, batch_size=1, threads=1, prefix_cache_mb=0)
    expected = [[alone.generate([p], r.n, r.sampling, seed=r.seed)[0] for p in r.prompts] for r in requests]
    assert together == expected
    assert shared.stats.merges > 0 and shared.stats.calls == 1
    assert [len(s) for s in together[0]] == [2, 2, 2] and [len(s) for s in together[1]] == [1, 1, 1]


def test_finished_rows_leave_by_moving_only_the_rows_past_the_new_end():
    """A running batch drops finished rows without copying every kept row into new buffers:
    kept rows past the new end fill the dropped places, and the returned order says which row
    each position now holds. Each kept row's keys and values are its own, whole, and the
    cache keeps growing in place after it."""
    from ixmcts.llm.kv_cache import RoomyCache

    rows, heads, length, dim = 6, 2, 5, 3
    keys = torch.arange(rows, dtype=torch.float32)[:, None, None, None].expand(rows, heads, length, dim) * 10
    keys = keys + torch.arange(length, dtype=torch.float32)[None, None, :, None]  # row r, position t: 10r + t
    cache = RoomyCache(2, room=8)
    for layer in cache.layers:
        layer.update(keys.clone(), -keys.clone())
    order = cache.keep_rows([0, 2, 4, 5])  # rows 1 and 3 finished
    assert order == [0, 4, 2, 5]  # rows 4 and 5 fill the places of rows 1 and 3; rows 0 and 2 stay
    for layer in cache.layers:
        assert torch.equal(layer.keys, keys[order]) and torch.equal(layer.values, -keys[order])
    assert cache.keep_rows([1, 2, 3]) == [3, 1, 2]  # the first row (0) leaves: the last (5) fills its place
    grown = torch.full((3, heads, 1, dim), 99.0)
    for layer in cache.layers:
        k, _ = layer.update(grown, grown)
        assert k.shape == (3, heads, length + 1, dim) and torch.equal(k[:, :, :length], keys[[5, 4, 2]])
        assert (k[:, :, length] == 99).all()
    assert cache.keep_rows([0, 1, 2]) == [0, 1, 2]  # nobody left: nothing moves


def test_every_cached_entry_holds_its_own_tokens_kv_after_rows_moved(tiny_model, monkeypatch):
    """What the prefix cache keeps of each prompt and each finished completion is the KV of
    exactly those tokens, also for rows that moved when others left the batch or joined it
    (the next turn reuses it): each entry, assembled from its pieces, equals a fresh forward
    pass over its token ids (to float rounding: a decoding step computes a position alone)."""
    from ixmcts.llm.backend import Request
    from ixmcts.llm.kv_cache import RoomyCache

    short, long = Sampling(temperature=0.3, max_new_tokens=3), Sampling(max_new_tokens=9)
    other = [{"role": "system", "content": "You are someone else entirely."}, {"role": "user", "content": "Why?"}]
    requests = [Request([LONGER, CHAT, other], 2, long, seed=7), Request([CHAT, other, LONGER], 1, short, seed=8)]
    backend = TransformersBackend(tiny_model, batch_size=2, threads=1)  # rows leave and newcomers join
    moved, keep_rows = [], RoomyCache.keep_rows

    def watched(cache, keep):
        order = keep_rows(cache, keep)
        moved.append(order != list(range(len(order))))
        return order

    monkeypatch.setattr(RoomyCache, "keep_rows", watched)
    backend.generate_many(requests)
    assert any(moved)  # some rows did move
    prompts = {tuple(backend.tokenizer(backend.render(p), add_special_tokens=False).input_ids)
               for r in requests for p in r.prompts}
    replies = [ids for ids in backend.prefix_cache.entries if ids not in prompts]
    assert len(replies) >= 6  # the finished completions, on top of their prompts
    for ids in list(backend.prefix_cache.entries):
        found = backend.prefix_cache.longest(list(ids) + [-1], count=True)
        assert found.length == len(ids)
        with torch.inference_mode():
            fresh = backend.model(input_ids=torch.tensor([ids]), use_cache=True).cache
        for layer, ref in enumerate(fresh.layers):
            for which, reference in ((0, ref.keys[0]), (1, ref.values[0])):
                stored = torch.cat([kv[layer][which] for _, kv in found.parts], dim=1)
                assert stored.shape == reference.shape
                assert torch.allclose(stored, reference, atol=1e-5, rtol=1e-4)


def test_keeping_freed_memory_lets_a_freed_block_be_used_again_without_faulting_it_in(tiny_model, monkeypatch):
    """The generation backend (on CPU) and the trainers keep what the process frees in its heap:
    a large block freed and allocated again is not faulted in from the kernel a second time
    (glibc's default unmaps it, and the next one faults in every page again)."""
    import resource

    import ixmcts.memory
    from ixmcts.memory import keep_freed_memory

    def faults_per_block(rounds=10):  # page faults of each 64 MB block written, then freed
        faults = []
        for _ in range(rounds):
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            torch.ones(16 * 2**20)
            faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
        return faults[-3:]  # once the heap has settled

    pages = 64 * 2**20 // resource.getpagesize()
    try:
        keep_freed_memory(keep=False)  # over 32 MB: mapped fresh, faulted in, unmapped, every time
        default = faults_per_block()
        keep_freed_memory()
        kept = faults_per_block()
        # (huge pages would fault a block in far fewer times, but still every time)
        assert min(default) > 0 and max(kept) * 10 < min(default) and max(kept) < pages // 10
    finally:
        keep_freed_memory()
    calls = []
    monkeypatch.setattr(ixmcts.memory, "keep_freed_memory", lambda keep=True: calls.append(keep))
    TransformersBackend(tiny_model, threads=1, device="cpu")
    assert calls == [True]


def test_a_search_whose_roles_share_one_batch_builds_the_same_trees(tiny_model):
    """The engine sends both roles' calls of a step as one running batch when they share a
    backend; the trees are those of roles with backends of their own (one call per role)."""
    from ixmcts.data import load_conditions
    from ixmcts.scenarios import get_scenario
    from ixmcts.search import SearchConfig, SearchEngine

    config = SearchConfig(K=2, e=2, T=2, budget=3, seed=1, closing=True,
                          policy_sampling=Sampling(max_new_tokens=8),
                          simulator_sampling=Sampling(temperature=0.3, max_new_tokens=8))
    conditions = load_conditions("p4g", "sample", 2)
    shared = TransformersBackend(tiny_model, batch_size=2, threads=1)
    one = SearchEngine(get_scenario("p4g"), shared, shared, conditions, config).run()
    policy = TransformersBackend(tiny_model, batch_size=2, threads=1)
    simulator = TransformersBackend(tiny_model, batch_size=2, threads=1)
    two = SearchEngine(get_scenario("p4g"), policy, simulator, conditions, config).run()
    assert [[(n.role, n.raw) for n in t.nodes] for t in one.trees] == [[(n.role, n.raw) for n in t.nodes] for t in two.trees]
    # a step with both roles pending: one call carries both, each role samples what it samples alone
    sims, exps = [CHAT, LONGER], [LONGER]
    calls = shared.stats.calls
    both = one._generate_roles((shared, sims, 1, config.simulator_sampling, 0), (shared, exps, 2, config.policy_sampling, 1))
    apart = two._generate_roles((simulator, sims, 1, config.simulator_sampling, 0), (policy, exps, 2, config.policy_sampling, 1))
    assert both == apart and shared.stats.calls == calls + 1


def test_prefix_cache_evicts_the_least_recently_used_prompts():
    from ixmcts.llm.backend import PrefixCache

    entry = lambda n: [(torch.zeros(1, n, 2), torch.zeros(1, n, 2))]  # noqa: E731  (16 bytes a token)
    cache = PrefixCache(max_bytes=150)  # room for two 4-token entries (64 bytes each)
    cache.store([1, 2, 3, 4], entry(4))
    cache.store([5, 6, 7, 8], entry(4))
    assert cache.longest([1, 2, 3, 9])[0] == 3  # uses, and so refreshes, the first entry
    cache.store([7, 7, 7, 7], entry(4))  # over budget: the least recently used ([5, 6, 7, 8]) goes
    assert cache.longest([5, 6, 7, 8, 9])[0] == 0 and cache.longest([1, 2, 3, 4, 5])[0] == 4
    assert cache.longest([1, 2, 3, 4])[0] == 3  # never the whole prompt: its last token must be run
    assert cache.bytes <= cache.max_bytes


def test_prefix_cache_entries_share_the_positions_they_extend():
    """An entry that extends another (a prompt's sample, a conversation one turn deeper)
    holds only its new positions; shared pieces count once and live while any entry uses them."""
    from ixmcts.llm.backend import PrefixCache

    entry = lambda n, fill=0.0: [(torch.full((1, n, 2), fill), torch.full((1, n, 2), fill))]  # noqa: E731  (16 bytes a token)
    cache = PrefixCache(max_bytes=200)
    cache.store([1, 2, 3, 4], entry(4))
    cache.store([1, 2, 3, 4, 5, 6], entry(2, 1.0), base=(1, 2, 3, 4), base_length=4)
    cache.store([1, 2, 3, 4, 7, 8], entry(2, 2.0), base=(1, 2, 3, 4), base_length=4)
    assert cache.bytes == 64 + 32 + 32
    found = cache.longest([1, 2, 3, 4, 5, 6, 9])
    assert found.length == 6 and [start for start, _ in found.parts] == [0, 4]
    assert torch.cat([kv[0][0] for _, kv in found.parts], dim=1)[0, :, 0].tolist() == [0, 0, 0, 0, 1, 1]
    # over budget (208 bytes): the least recently used entries go, [1, 2, 3, 4] first, but its piece
    # stays (and counts) while [1, 2, 3, 4, 5, 6] uses it; then [1, 2, 3, 4, 7, 8] frees its own 32 bytes
    cache.store([9, 9, 9, 9, 9], entry(5))
    assert cache.bytes == 64 + 32 + 80 and len(cache.entries) == 2
    assert cache.longest([1, 2, 3, 4, 5, 6, 1]).length == 6 and cache.longest([1, 2, 3, 4, 7, 8, 1]).length == 4


def test_a_reply_is_not_prefilled_again_when_the_conversation_goes_on(tiny_model):
    """A finished completion's KV stays in the prefix cache, so the next turn's prompt, which
    carries that reply, reuses it; the samples are those of a backend without the cache."""
    cached = TransformersBackend(tiny_model, batch_size=2, threads=1, prefix_cache_mb=64)
    plain = TransformersBackend(tiny_model, batch_size=2, threads=1, prefix_cache_mb=0)
    greedy = Sampling(temperature=0.0, top_p=1.0, top_k=0, max_new_tokens=10)
    ((reply,),) = cached.generate([CHAT], 1, greedy)
    follow = CHAT + [{"role": "assistant", "content": reply}, {"role": "user", "content": "Go on."}]
    prompt_tokens = len(cached.tokenizer(cached.render(CHAT), add_special_tokens=False).input_ids)
    before = cached.prefix_cache.reused_tokens
    assert cached.generate([follow], 2, Sampling(max_new_tokens=10), seed=3) == plain.generate([follow], 2, Sampling(max_new_tokens=10), seed=3)
    assert cached.prefix_cache.reused_tokens - before > prompt_tokens  # the reply's tokens came from the cache


def test_prompts_of_one_call_prefill_their_shared_start_once(tiny_model):
    """Prompts that share a long start (one system prompt across trees or dialogues) prefill
    it once between them; the samples are those of a backend that prefills each in full."""
    system = {"role": "system", "content": "You are a persuader for a children's charity. " * 8}
    prompts = [[system, {"role": "user", "content": "Hi."}], [system, {"role": "user", "content": "Who are you, and why?"}]]
    cached = TransformersBackend(tiny_model, batch_size=4, threads=1, prefix_cache_mb=64)
    plain = TransformersBackend(tiny_model, batch_size=4, threads=1, prefix_cache_mb=0)
    sampling = Sampling(max_new_tokens=8)
    assert cached.generate(prompts, 2, sampling, seed=1) == plain.generate(prompts, 2, sampling, seed=1)
    shared = len(cached.tokenizer(cached.render([system]), add_special_tokens=False).input_ids) - 2
    assert plain.stats.prefill_tokens - cached.stats.prefill_tokens >= shared - 5  # one copy of the start saved


def test_one_seed_per_prompt_samples_each_as_its_own_call(tiny_model):
    """A call may carry one seed per prompt (the evaluation's dialogues): identical prompts
    then sample apart, and each prompt's samples are those of a call with its seed alone."""
    backend = TransformersBackend(tiny_model, batch_size=4, threads=1)
    prompt, sampling = [{"role": "user", "content": "Say something."}], Sampling(max_new_tokens=8)
    together = backend.generate([prompt, prompt, prompt], 2, sampling, seed=[5, 6, 5])
    assert together == [backend.generate([prompt], 2, sampling, seed=s)[0] for s in (5, 6, 5)]
    assert together[0] == together[2] and together[0] != together[1]


def test_grouped_prefill_attention_gives_transformers_sdpa_logits(tiny_model):
    """On CPU the backend's prefill attends with torch's grouped-query sdpa instead of copying
    each key/value head per query head (transformers' sdpa with a mask): speed never changes
    results, so the logits and the KV written, left pads and a reused prefix included, and the
    samples must equal those of transformers' own sdpa bit for bit."""
    from ixmcts.llm.attention import GROUPED_SDPA

    backend = TransformersBackend(tiny_model, batch_size=4, threads=1, prefix_cache_mb=64)
    assert backend.model.config._attn_implementation == GROUPED_SDPA
    assert backend.model.config.num_attention_heads > backend.model.config.num_key_value_heads  # grouped heads
    first = [[{"role": "user", "content": "Hi."}], CHAT]
    later = [LONGER, CHAT + [{"role": "assistant", "content": "Hello, nice to meet you and talk."}]]

    def prefill(implementation):
        backend.model.set_attn_implementation(implementation)
        backend.prefix_cache = type(backend.prefix_cache)(64 * 2**20)
        ids = [[backend.tokenizer(backend.render(p), add_special_tokens=False).input_ids for p in prompts]
               for prompts in (first, later)]
        with torch.inference_mode():
            backend._prefill(ids[0])
            cache, logits, _ = backend._prefill(ids[1])  # extends the first call's cached prompts
        assert backend.prefix_cache.hits >= 2  # the second prefill ran over a reused prefix
        return logits, [(layer.keys.clone(), layer.values.clone()) for layer in cache.layers]

    logits, kv = prefill(GROUPED_SDPA)
    logits_sdpa, kv_sdpa = prefill("sdpa")
    assert torch.equal(logits, logits_sdpa)
    assert all(torch.equal(a, b) for (ka, va), (kb, vb) in zip(kv, kv_sdpa) for a, b in ((ka, kb), (va, vb)))
    sampling = Sampling(max_new_tokens=8)
    with_sdpa = backend.generate(later, 2, sampling, seed=3)
    backend.model.set_attn_implementation(GROUPED_SDPA)
    assert backend.generate(later, 2, sampling, seed=3) == with_sdpa


def test_prefill_counts_the_positions_it_computes_pads_included(tiny_model):
    """The search bench reports the prefill's padding cost: prompts of unequal length prefilled
    in one left-padded batch compute rows x the longest prompt's positions (no prefix cache)."""
    plain = TransformersBackend(tiny_model, batch_size=4, threads=1, prefix_cache_mb=0)
    prompts = [[{"role": "user", "content": "Hi."}], [{"role": "user", "content": "Who are you, and why do you ask me?"}]]
    lengths = [len(plain.tokenizer(plain.render(p), add_special_tokens=False).input_ids) for p in prompts]
    assert lengths[0] < lengths[1]
    plain.generate(prompts, 1, Sampling(max_new_tokens=2))
    assert plain.stats.prefill_tokens == sum(lengths)
    assert plain.stats.prefill_positions == 2 * max(lengths)


def test_greedy_decoding_matches_transformers_generate_under_left_padding(backend):
    """The own decoding loop (cache, positions, padding, finished rows leaving the batch)
    computes what ``model.generate`` computes."""
    greedy = Sampling(temperature=0.0, frequency_penalty=0.0, top_p=1.0, top_k=0, max_new_tokens=12)
    ours = backend.generate([CHAT, LONGER], 1, greedy)
    tok = backend.tokenizer
    for prompt, (mine,) in zip([CHAT, LONGER], ours):
        enc = tok(backend.render(prompt), return_tensors="pt", add_special_tokens=False)
        ref = backend.model.generate(**enc, do_sample=False, max_new_tokens=12, eos_token_id=backend.eos_token_ids,
                                     pad_token_id=tok.pad_token_id)
        assert mine == tok.decode(ref[0, enc.input_ids.shape[1]:], skip_special_tokens=True).strip()


def test_frequency_penalty_subtracts_counts_then_temperature_applies():
    from ixmcts.llm.backend import next_token_scores

    logits = torch.zeros(1, 10)
    logits[0, 5] = 3.0
    counts = torch.zeros(1, 10)
    counts[0, 3], counts[0, 1] = 3, 1  # generated so far: 3 3 3 1
    out = next_token_scores(logits, counts, Sampling(temperature=0.0, frequency_penalty=1.5))
    assert out[0, 3] == -4.5 and out[0, 1] == -1.5 and out[0, 7] == 0.0 and out[0, 5] == 3.0
    out = next_token_scores(logits, counts, Sampling(temperature=0.5, frequency_penalty=1.5))
    assert out[0, 5] == 6.0 and out[0, 3] == -9.0


@pytest.mark.parametrize("top_k, top_p", [(50, 0.9), (5, 0.5), (0, 0.7), (3, 1.0), (50, 0.999)])
def test_candidates_keep_what_generates_top_k_then_top_p_keep(top_k, top_p):
    """The same tokens, with the same probabilities, as transformers' warpers over the vocabulary."""
    from transformers.generation.logits_process import TopKLogitsWarper, TopPLogitsWarper

    from ixmcts.llm.backend import candidates

    scores = torch.randn(6, 300, generator=torch.Generator().manual_seed(top_k)) * 3
    reference = scores.clone()
    if top_k:
        reference = TopKLogitsWarper(top_k)(None, reference)
    if top_p < 1:
        reference = TopPLogitsWarper(top_p)(None, reference)
    values, ids = candidates(scores, Sampling(top_k=top_k, top_p=top_p))
    for row in range(scores.shape[0]):
        kept = torch.isfinite(values[row])
        assert set(ids[row][kept].tolist()) == set(torch.isfinite(reference[row]).nonzero().squeeze(-1).tolist())
        probs = torch.zeros(300).index_put_((ids[row],), values[row].softmax(-1))
        assert torch.allclose(probs, reference[row].softmax(-1), atol=1e-6)


def test_a_large_frequency_penalty_keeps_tokens_from_coming_back(backend):
    penalized = Sampling(temperature=0.0, frequency_penalty=100.0, top_p=1.0, top_k=0, max_new_tokens=24)
    (pen,), = backend.generate([LONGER], 1, penalized)
    ids = backend.tokenizer(pen, add_special_tokens=False).input_ids
    assert len(ids) > 3 and max(ids.count(t) for t in set(ids)) <= 2  # (re-tokenizing may split once)


def test_registry_resolves_folders_and_rejects_missing_ones(tiny_model, tmp_path):
    assert resolve_model(tiny_model) == tiny_model
    with pytest.raises(IxmctsError, match="'nobody-here/no-such-model'.*HF_HUB_OFFLINE"):  # a hub id neither cached nor
        resolve_model("nobody-here/no-such-model")  # reachable (the tests run offline): one clear error at once (#18)
    with pytest.raises(IxmctsError, match="model folder not found"):
        resolve_model("./no/such/model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(IxmctsError, match="config.json"):
        resolve_model(str(tmp_path / "empty"))


@pytest.mark.slow
def test_embedded_default_converts_with_the_original_pretokenizer():
    from transformers import AutoTokenizer

    path = resolve_model("smollm2-135m-instruct")
    assert resolve_model("smollm2-135m-instruct") == path  # converted once
    cfg = json.loads((Path(path) / "config.json").read_text())
    assert cfg["model_type"] == "llama" and "quantization_config" not in cfg
    tok = AutoTokenizer.from_pretrained(path)
    digits = tok("2024", add_special_tokens=False).input_ids
    assert len(digits) == 4  # SmolLM2 splits digits individually
    assert tok.apply_chat_template(CHAT, tokenize=False, add_generation_prompt=True).endswith("<|im_start|>assistant\n")
    out = TransformersBackend(path, threads=1).generate([CHAT], 2, Sampling(max_new_tokens=6), seed=0)
    assert len(out[0]) == 2 and all(out[0])


def test_dt_pairs_do_not_depend_on_batching(tiny_model):
    """Issue 16: D_t's samples go through one running batch with prefix reuse (contexts of one
    dialogue share their history); the pairs are those of one context at a time."""
    from ixmcts.train.preference import PreferenceStageConfig, build_dt

    class LengthScorer:  # a stand-in reward: longer responses score higher
        def score(self, contexts, responses):
            return [float(len(r)) for r in responses]

    contexts = [CHAT, LONGER, LONGER[:3], CHAT + [{"role": "assistant", "content": "Hi!"}, {"role": "user", "content": "Hm."}]]
    config = PreferenceStageConfig(n=3, max_new_tokens=8, seed=4)
    shipped = TransformersBackend(tiny_model, batch_size=2, threads=1)
    alone = TransformersBackend(tiny_model, batch_size=1, threads=1, prefix_cache_mb=0)
    pairs = build_dt(shipped, LengthScorer(), contexts, config, "p4g")
    assert pairs and pairs == [p for c in contexts for p in build_dt(alone, LengthScorer(), [c], config, "p4g")]
