"""Reward-model scoring throughput: Best-of-N's candidates scored one full text each vs as
shipped (the context run once, each candidate extending its KV), in one process.

    python bench/reward_scoring.py [--model smollm2-135m-instruct] [--threads 2] [--contexts 64] [--n 3]

The contexts are the policy's prompts at every persuader turn of the bundled P4G sample
dialogues (persona, instructions, the talk so far); each gets ``n`` candidate replies (the
corpus's reply and the next ``n - 1`` contexts' replies). The scorer is the engagement reward
model's architecture on ``--model`` (a sequence-classification head, seeded; its weights do not
change the cost). (a) scores every (context, candidate) text in full, in padded batches of 8:
the scorer before prefix sharing; (b) ``RewardScorer`` as shipped. Prints both wall times, the
largest score difference, how many contexts pick the same candidate, and last ``ratio=<x>``:
(a)'s wall time over (b)'s. Measured ratios, not timed tests: run it alone on the machine.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1])]

from ixmcts.data import MODEL, load_dialogues  # noqa: E402
from ixmcts.evaluate.bon import best  # noqa: E402
from ixmcts.llm.models import ModelSpec  # noqa: E402
from ixmcts.scenarios import get_scenario  # noqa: E402
from ixmcts.train.reward import RewardScorer  # noqa: E402


def score_in_full(scorer: RewardScorer, contexts, responses, batch_size: int = 8) -> list[float]:
    """The scorer before prefix sharing: every text whole, right-padded batches."""
    import torch

    tok = scorer.tokenizer
    tok.padding_side = "right"
    texts = [tok.apply_chat_template(c + [{"role": "assistant", "content": r}], tokenize=False)
             for c, r in zip(contexts, responses)]
    out = []
    for i in range(0, len(texts), batch_size):
        rows = [tok(t, add_special_tokens=False).input_ids[-scorer.max_length:] for t in texts[i : i + batch_size]]
        width = max(map(len, rows))
        ids = torch.tensor([r + [tok.pad_token_id] * (width - len(r)) for r in rows])
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
        with torch.inference_mode():
            out += scorer.model(input_ids=ids, attention_mask=mask).logits[:, 0].tolist()
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--contexts", type=int, default=64)
    p.add_argument("--n", type=int, default=3, help="candidates per context (Best-of-N's N, paper 3)")
    args = p.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    scenario = get_scenario("p4g")
    prompts, replies = [], []
    for d in load_dialogues("p4g", "sample"):
        for i, turn in enumerate(d.turns):
            if turn.role == MODEL:
                prompts.append(scenario.policy_messages(d.condition, d.turns[:i]))
                replies.append(turn.text)
    prompts = prompts[: args.contexts]
    contexts = [c for c in prompts for _ in range(args.n)]
    responses = [replies[(i + k) % len(replies)] for i in range(len(prompts)) for k in range(args.n)]
    scorer = RewardScorer(ModelSpec(args.model), None)
    walls, scores = {}, {}
    for label, fn in (("(a) each text in full", score_in_full), ("(b) as shipped", RewardScorer.score)):
        start = time.perf_counter()
        scores[label] = fn(scorer, contexts, responses)
        walls[label] = time.perf_counter() - start
        print(f"{label}: {len(contexts)} texts, wall {walls[label]:.1f}s", flush=True)
    a, b = scores.values()
    picks = [best(s[k : k + args.n]) for s in (a, b) for k in range(0, len(s), args.n)]
    same = sum(x == y for x, y in zip(picks[: len(prompts)], picks[len(prompts):]))
    print(f"largest score difference {max(abs(x - y) for x, y in zip(a, b)):.2e}; same pick: {same}/{len(prompts)}")
    print(f"ratio={walls['(a) each text in full'] / walls['(b) as shipped']:.2f}")


if __name__ == "__main__":
    main()
