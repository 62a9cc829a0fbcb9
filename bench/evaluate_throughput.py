"""Evaluation throughput: interactive evaluation (SFT and Best-of-N) one model call per
completion vs as shipped, in one process.

    python bench/evaluate_throughput.py [--model smollm2-135m-instruct] [--threads 2] [--dialogues 16]
                                        [--max-turns 6] [--max-new-tokens 32] [--n 3] [--bon strategy]
                                        [--conditions sample|synth] [--baseline-batch B] [--batch-size B]

Both runs evaluate the same method twice on the same P4G conditions: plain (``sft``: one
policy sample per turn) and Best-of-N with an advisor (``--bon strategy`` or ``knowledge``:
``n`` candidates per turn, the advisor LLM's advice, MiniLM picks the closest candidate).
(a) sends every completion to the model alone (batch 1, n = 1, every prompt prefilled in
full): one call per turn and candidate; (b) is the evaluation as shipped (all dialogues
advance together: one batched call per role per round, the n candidates of a prompt share
its prefill, prompts join the running batch as rows finish, and KV reuse of the
conversation so far). The policy, the simulator and the advisor are the same model here.
``--baseline-batch B`` makes (a) the shipped evaluation with running batches of at most B
prompts per call and no row cap instead (what the default batch buys over the earlier 16:
``--conditions synth --dialogues 64 --baseline-batch 16``).
Prints each run's wall seconds, LLM calls and tokens, whether both produced identical
dialogues (every turn's raw text and every chosen candidate), and last ``ratio=<x>``:
(a)'s wall time over (b)'s for the whole evaluation (both methods).
Measured ratios, not timed tests: run it alone on the machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

from ixmcts.data import load_conditions  # noqa: E402
from ixmcts.evaluate import AdviceChooser, EvalConfig, interact  # noqa: E402
from ixmcts.llm import Sampling, make_backends  # noqa: E402
from ixmcts.llm.models import ModelSpec  # noqa: E402
from ixmcts.scenarios import get_scenario  # noqa: E402

from baselines import OneCallPerNode  # noqa: E402


def evaluate(label, backend, args, conditions):
    """Both methods' records with ``backend`` as policy, simulator and advisor; prints the run's numbers."""
    scenario = get_scenario("p4g")
    records = {}
    start, calls, tokens = time.perf_counter(), backend.stats.calls, backend.stats.generated_tokens
    for method, n in (("sft", 1), (f"bon-{args.bon}", args.n)):
        config = EvalConfig(max_turns=args.max_turns, n=n, seed=args.seed,
                            policy_sampling=Sampling(max_new_tokens=args.max_new_tokens),
                            simulator_sampling=Sampling(temperature=0.3, max_new_tokens=args.max_new_tokens))
        chooser = AdviceChooser(backend, args.bon, "p4g", max_new_tokens=args.max_new_tokens) if n > 1 else None
        records[method] = interact(scenario, backend, backend, conditions, config, chooser=chooser)
    wall = time.perf_counter() - start
    generated = backend.stats.generated_tokens - tokens
    print(f"{label}: wall {wall:.1f}s  llm_calls {backend.stats.calls - calls}  generated tokens {generated}  "
          f"tokens/s {generated / wall:.1f}", flush=True)
    return wall, records


def dialogues(records):
    return [[(t["role"], t["raw"]) for t in r["turns"]] + [tuple(r["chosen"])] for r in records]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dialogues", type=int, default=16, help="interactions per method (the paper: 128)")
    p.add_argument("--max-turns", type=int, default=6, help="utterances of both sides per interaction (P4G paper: 30)")
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--n", type=int, default=3, help="Best-of-N candidates (paper 3)")
    p.add_argument("--bon", default="strategy", choices=("strategy", "knowledge"), help="the Best-of-N advisor")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--conditions", default="sample", help="sample (30 bundled personas) | synth (personas synthesized "
                   "from --data-dir, or from the bundled sample corpus without it)")
    p.add_argument("--data-dir", default=os.environ.get("IXMCTS_P4G_DIR", ""), help="P4G corpus folder for --conditions synth")
    p.add_argument("--baseline-batch", type=int, default=0,
                   help="(a) is the shipped evaluation at running batches of this many prompts (0: one call per completion)")
    p.add_argument("--batch-size", type=int, default=0, help="(b)'s running batch in prompts (0: make_backends' default)")
    args = p.parse_args()
    conditions = load_conditions("p4g", args.conditions, args.dialogues, data_dir=args.data_dir or None)
    if args.baseline_batch:
        baseline = make_backends({"policy": ModelSpec(args.model)}, batch_size=args.baseline_batch, max_rows=0,
                                 threads=args.threads)["policy"]
        base_wall, base = evaluate(f"(a) as shipped at batch {args.baseline_batch}", baseline, args, conditions)
    else:
        base_wall, base = evaluate("(a) one call per completion", OneCallPerNode(args.model, args.threads), args, conditions)
    wide = {"batch_size": args.batch_size} if args.batch_size else {}
    backend = make_backends({"policy": ModelSpec(args.model)}, threads=args.threads, **wide)["policy"]
    wall, shipped = evaluate(f"(b) as shipped (batch {backend.batch_size})", backend, args, conditions)
    for method in base:
        same = sum(a == b for a, b in zip(dialogues(base[method]), dialogues(shipped[method])))
        print(f"identical dialogues ({method}): {same}/{len(conditions)}")
    st = backend.stats
    if args.baseline_batch:
        sa = baseline.stats
        print(f"(a) prefill {sa.prefill_sec:.1f}s ({sa.prefill_tokens} tokens), decode {sa.decode_sec:.1f}s "
              f"({sa.decode_steps} steps, mean batch {sa.decode_rows / max(sa.decode_steps, 1):.1f} rows)")
    print(f"(b) prefill {st.prefill_sec:.1f}s ({st.prefill_tokens} tokens), decode {st.decode_sec:.1f}s "
          f"({st.decode_steps} steps, mean batch {st.decode_rows / max(st.decode_steps, 1):.1f} rows), merges {st.merges}, "
          f"prefix cache {backend.prefix_cache.hits} hits, {backend.prefix_cache.reused_tokens} tokens reused")
    print(f"ratio={base_wall / wall:.2f}")


if __name__ == "__main__":
    main()
