"""Training throughput on CPU: SFT and DPO tokens/s with the trainer settings as shipped vs
TRL's plain defaults, in one process.

    python bench/train_throughput.py [--model smollm2-135m-instruct] [--stage sft|dpo|both]
                                     [--examples 64] [--epochs 2] [--batch-size 4] [--threads 2]

Both variants train ``--epochs`` epochs of LoRA on the same examples (SFT: the policy's turns of the
bundled P4G sample dialogues; DPO: pairs built from them, the reply as chosen and another
turn's reply as rejected) through the library's own ``train_sft`` / ``train_dpo``.
(a) ``before``: examples in random order, so each batch pads to its longest example, DPO
runs the reference model at every step of every epoch, and glibc's default allocator limits
(every block over 32 MB mapped fresh and unmapped when freed); (b) as shipped: SFT batches
grouped by length (``train_sampling_strategy="group_by_length"``), DPO's reference log-probs
computed once before training (``precompute_ref_log_probs``), and freed memory kept in the heap
for the next step (``keep_freed_memory``). Tokens/s counts the examples' real tokens
(prompt and completion, each DPO response with its prompt) over the wall time of
the trainer's construction (where DPO precomputes) and ``trainer.train()``. Last line: ``sft_ratio=<x> dpo_ratio=<y>`` (b over a).
Measured ratios, not timed tests: run it alone on the machine.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1])]

from ixmcts.data import load_dialogues  # noqa: E402
from ixmcts.llm.models import ModelSpec, load_tokenizer  # noqa: E402
from ixmcts.scenarios import get_scenario  # noqa: E402
import ixmcts.train.dpo as dpo_module  # noqa: E402
import ixmcts.train.sft as sft_module  # noqa: E402
from ixmcts.train.dpo import DPOStageConfig, train_dpo  # noqa: E402
from ixmcts.train.sft import SFTStageConfig, build_sft_examples, train_sft  # noqa: E402

BEFORE = {"train_sampling_strategy": "random", "precompute_ref_log_probs": False}  # TRL's and transformers' defaults


def timed_training(variant: dict | None):
    """Patch TRL and the trainer so that each trainer's construction (where DPO precomputes
    the reference log-probs) and ``train()`` are timed and, for ``variant``, its config's
    arguments overridden; returns the list the wall times go to and the undo function."""
    import dataclasses

    import trl
    from transformers import Trainer

    walls: list[float] = []
    originals = {"train": Trainer.train, "__init__": Trainer.__init__}
    configs = {"SFTConfig": trl.SFTConfig, "DPOConfig": trl.DPOConfig}

    def timed(method):
        def call(self, *a, **k):
            start = time.perf_counter()
            out = method(self, *a, **k)
            walls.append(time.perf_counter() - start)
            return out
        return call

    def overridden(cls):
        names = {f.name for f in dataclasses.fields(cls)}
        return lambda **kw: cls(**{**kw, **{k: v for k, v in (variant or {}).items() if k in names}})

    for name, method in originals.items():
        setattr(Trainer, name, timed(method))
    for name, cls in configs.items():
        setattr(trl, name, overridden(cls))

    def undo():
        for name, method in originals.items():
            setattr(Trainer, name, method)
        for name, cls in configs.items():
            setattr(trl, name, cls)

    return walls, undo


def tokens(tok, prompt, completion) -> int:
    return len(tok.apply_chat_template(prompt + completion, tokenize=True, return_dict=True).input_ids)


def run(stage, variant, spec, examples, pairs, args) -> float:
    from ixmcts.memory import keep_freed_memory as keep

    walls, restore = timed_training(variant)
    keep(keep=False)  # (a) keeps glibc's defaults; (b)'s trainer sets its own
    if variant is not None:
        for module in (sft_module, dpo_module):
            module.keep_freed_memory = lambda: None
    try:
        with tempfile.TemporaryDirectory(prefix="ixmcts-bench-") as out:
            if stage == "sft":
                train_sft(spec, examples, SFTStageConfig(epochs=args.epochs, batch_size=args.batch_size, max_length=args.max_length), out)
            else:
                train_dpo(spec, pairs, DPOStageConfig(epochs=args.epochs, batch_size=args.batch_size, max_length=args.max_length), out)
    finally:
        restore()
        for module in (sft_module, dpo_module):
            module.keep_freed_memory = keep
    return sum(walls)  # the trainer's construction (DPO: reference log-probs) and train()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--stage", default="both", choices=("sft", "dpo", "both"))
    p.add_argument("--examples", type=int, default=64, help="SFT examples (and DPO pairs) trained on")
    p.add_argument("--epochs", type=float, default=2, help="epochs per run (DPO's paper setting; the reference "
                   "log-probs are computed once for all of them)")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--max-length", type=int, default=4096)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    spec = ModelSpec(args.model)
    tok = load_tokenizer(spec)
    examples = build_sft_examples(get_scenario("p4g"), load_dialogues("p4g", "sample"), "policy")[: args.examples]
    pairs = [{"context": e["prompt"], "chosen": e["completion"][0]["content"],
              "rejected": examples[(i + 1) % len(examples)]["completion"][0]["content"]} for i, e in enumerate(examples)]
    counts = {"sft": sum(tokens(tok, e["prompt"], e["completion"]) for e in examples),
              "dpo": sum(tokens(tok, x["context"], [{"role": "assistant", "content": x[k]}]) for x in pairs
                         for k in ("chosen", "rejected"))}
    ratios = {}
    for stage in ("sft", "dpo") if args.stage == "both" else (args.stage,):
        rates = {}
        for label, variant in (("(a) before", BEFORE), ("(b) as shipped", None)):
            wall = run(stage, variant, spec, examples, pairs, args)
            rates[label] = counts[stage] * args.epochs / wall
            print(f"{stage} {label}: {len(examples)} examples, {counts[stage]} tokens, train {wall:.1f}s, "
                  f"{rates[label]:.1f} tokens/s", flush=True)
        ratios[stage] = rates["(b) as shipped"] / rates["(a) before"]
    print(" ".join(f"{stage}_ratio={r:.2f}" for stage, r in ratios.items()))


if __name__ == "__main__":
    main()
