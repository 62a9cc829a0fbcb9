"""Search throughput: the batched engine vs a one-call-per-node baseline, in one process.

    python bench/search_throughput.py [--model smollm2-135m-instruct] [--threads 2] [--trees 16] [--steps 0]

Both runs do the same P4G search (same conditions, seeds, K, e, T, budget). (a) sends every
request to the model alone (batch 1, n = 1: one model call per node, every prompt prefilled in
full); (b) is the engine as shipped (both roles' calls of a step in one running batch that
prompts join as rows finish, one prefill per prompt for its n samples, KV reuse of the
conversation prefix). Prints each run's wall seconds, nodes/s, generated tokens/s and LLM calls,
where (b)'s time went (prefill, decoding, mean batch and context), then a pure batched decode on
the same model at (b)'s mean batch and context (no prefill, no finished rows: the fastest this
machine generates at that load). Last line: ``ratio=<x> overhead=<y> roofline=<z>``: (b)/(a) in
nodes/s, the share of (b)'s wall time spent outside generation, and (b)'s generated tokens/s
over the pure decode's.
Measured ratios, not timed tests: the machine is shared and noisy, so both runs share it.

The default searches 16 trees together, a quarter of the paper's 64 conditions: the engine's
gain is batching across trees, so the ratio grows with them (on 2 CPU cores: 4 trees 3.8,
16 trees 7.0). ``--trees 4`` gives a quick look (about 3.5 minutes instead of 13).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

from ixmcts.data import load_conditions  # noqa: E402
from ixmcts.llm import Sampling, make_backends  # noqa: E402
from ixmcts.llm.models import ModelSpec  # noqa: E402
from ixmcts.scenarios import get_scenario  # noqa: E402
from ixmcts.search import SearchConfig, SearchEngine  # noqa: E402

from baselines import OneCallPerNode, decode_rate  # noqa: E402


def run(label, backend, args, conditions):
    scenario = get_scenario("p4g")
    config = SearchConfig(K=args.K, e=args.e, T=args.T, budget=args.budget, seed=args.seed, closing=True,
                          policy_sampling=Sampling(max_new_tokens=args.max_new_tokens),
                          simulator_sampling=Sampling(temperature=0.3, max_new_tokens=args.max_new_tokens))
    engine = SearchEngine(scenario, backend, backend, conditions, config)
    start = time.perf_counter()
    steps = 0
    while not engine.done and (not args.steps or steps < args.steps):
        engine.step()
        steps += 1
    wall = time.perf_counter() - start
    nodes = sum(len(t.nodes) for t in engine.trees)
    s = engine.stats
    print(f"{label}: wall {wall:.1f}s  nodes {nodes}  nodes/s {nodes / wall:.3f}  tokens/s {s.generated_tokens / wall:.1f}  "
          f"llm_calls {backend.stats.calls}  steps {steps}", flush=True)
    trees = [[(n.role, n.raw) for n in t.nodes] for t in engine.trees]
    return nodes / wall, 1 - s.generation_sec / wall, trees, s.generated_tokens / wall


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--trees", type=int, default=16, help="trees searched together (the paper: 64)")
    p.add_argument("--steps", type=int, default=0, help="stop each run after this many steps (0: run to the end)")
    p.add_argument("--K", type=int, default=4)
    p.add_argument("--e", type=int, default=3)
    p.add_argument("--T", type=int, default=3)
    p.add_argument("--budget", type=int, default=4)
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backend", default="transformers", help="(b)'s backend: transformers | vllm (CUDA)")
    args = p.parse_args()
    conditions = load_conditions("p4g", "sample", args.trees)
    base_rate, _, base_trees, _ = run("(a) one call per node", OneCallPerNode(args.model, args.threads), args, conditions)
    # the search's own settings (ixmcts.search.run): 16 prompts per request, no row cap
    backend = make_backends({"policy": ModelSpec(args.model)}, args.backend, batch_size=16, max_rows=0,
                            threads=args.threads)["policy"]
    engine_rate, overhead, trees, engine_tokens = run(f"(b) batched engine ({args.backend})", backend, args, conditions)
    same = sum(a == b for a, b in zip(base_trees, trees))
    cache = getattr(backend, "prefix_cache", None)
    reuse = f"  prefix cache: {cache.hits} hits, {cache.reused_tokens} tokens reused" if cache else ""
    print(f"identical trees: {same}/{len(trees)}{reuse}")
    roofline = ""
    st = backend.stats
    if getattr(st, "decode_steps", 0):
        rows, context = round(st.decode_rows / st.decode_steps), round(st.decode_context / st.decode_steps)
        limit = decode_rate(backend, rows, context, args.max_new_tokens)
        print(f"(b) time: prefill+merge {st.prefill_sec:.1f}s ({st.prefill_tokens} tokens; {st.prefill_positions} positions "
              f"computed with the pads, {st.prefill_positions / max(st.prefill_tokens, 1):.2f}x), decode {st.decode_sec:.1f}s "
              f"({st.decode_steps} steps, mean batch {st.decode_rows / st.decode_steps:.1f} rows, mean context {context}), "
              f"merges {st.merges}")
        print(f"pure batched decode at batch {rows}, context {context}: {limit:.1f} tokens/s; "
              f"(b) generated {engine_tokens:.1f} tokens/s")
        roofline = f" roofline={engine_tokens / limit:.2f}"
    print(f"ratio={engine_rate / base_rate:.2f} overhead={overhead:.3f}{roofline}")


if __name__ == "__main__":
    main()
