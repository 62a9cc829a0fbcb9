"""The engagement reward model: a sequence-classification head on the policy's backbone,
LoRA, trained pairwise on D_p (TRL RewardTrainer), validated on a held-out split."""

from __future__ import annotations

import random
from dataclasses import dataclass

from ..errors import IxmctsError
from ..options import setting
from ..memory import keep_freed_memory
from .common import TrainingSettings, log_history, step_callbacks, trainer_arguments


@dataclass
class RewardStageConfig(TrainingSettings):
    """The engagement reward model on D_p. Defaults: the paper's (LoRA r = 8, lr 1e-4, 10 epochs)."""

    base_model: str = setting("", "backbone (empty: the search policy's base model)")
    lr: float = setting(1e-4, "learning rate (paper 1e-4)")
    epochs: float = setting(10.0, "training epochs (paper 10)")
    val_fraction: float = setting(0.2, "share of D_p held out for reward/accuracy (split with seed)")


def split_pairs(pairs: list[dict], val_fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    if not pairs:
        raise IxmctsError("D_p is empty: the search produced no preference pairs to train a reward model on")
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    n_val = max(1, round(len(pairs) * val_fraction)) if len(pairs) > 1 else 0
    return [pairs[i] for i in order[n_val:]], [pairs[i] for i in order[:n_val]]


def as_preference_rows(pairs: list[dict]) -> list[dict]:
    """TRL's conversational preference format."""
    return [{"prompt": p["context"], "chosen": [{"role": "assistant", "content": p["chosen"]}],
             "rejected": [{"role": "assistant", "content": p["rejected"]}]} for p in pairs]


def load_reward_model(base_spec, adapter: str | None = None):
    import torch
    from transformers import AutoModelForSequenceClassification

    from ..llm.models import load_tokenizer
    from ..llm.registry import resolve_model

    tok = load_tokenizer(base_spec)
    model = AutoModelForSequenceClassification.from_pretrained(resolve_model(base_spec.base), num_labels=1, dtype=torch.float32)
    model.config.pad_token_id = tok.pad_token_id
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    return model.eval(), tok


class RewardScorer:
    """Scores (context, response) pairs with a trained reward model.

    Consecutive pairs with the same context (Best-of-N's candidates, D_t's samples, a pair's
    chosen and rejected) share one forward pass over their common start: the context runs
    once and each response extends its KV, so N candidates cost one context, not N (the
    scores equal scoring each text in full, to float rounding; tests/test_train.py). A text
    over ``max_length`` tokens keeps its end: the response is what is scored."""

    def __init__(self, base_spec, adapter: str | None, max_length: int = 1024):
        self.model, self.tokenizer = load_reward_model(base_spec, adapter)
        self.max_length = max_length

    def score(self, contexts: list[list[dict]], responses: list[str]) -> list[float]:
        import torch

        from ..llm.backend import common_length

        ids = [self.tokenizer(self.tokenizer.apply_chat_template(c + [{"role": "assistant", "content": r}], tokenize=False),
                              add_special_tokens=False).input_ids[-self.max_length:] for c, r in zip(contexts, responses)]
        backbone, head = getattr(self.model, self.model.base_model_prefix), self.model.score
        out: list[float] = []
        with torch.inference_mode():
            for group in _same_context_runs(contexts):
                rows = [ids[i] for i in group]
                start = min(min(common_length(rows[0], r) for r in rows), min(map(len, rows)) - 1)  # every row keeps a token of its own
                cache = None
                if start:
                    cache = backbone(input_ids=torch.tensor([rows[0][:start]]), use_cache=True).cache
                    cache.batch_repeat_interleave(len(rows))
                lengths = torch.tensor([len(r) - start for r in rows])
                width = int(lengths.max())
                pad = self.tokenizer.pad_token_id or 0
                tail = torch.tensor([r[start:] + [pad] * (width - len(r) + start) for r in rows])
                mask = torch.cat([torch.ones(len(rows), start, dtype=torch.long),
                                  (torch.arange(width)[None] < lengths[:, None]).long()], dim=1)
                positions = torch.arange(start, start + width).expand(len(rows), -1)
                hidden = backbone(input_ids=tail, attention_mask=mask, position_ids=positions, cache=cache,
                                  use_cache=False).last_hidden_state
                out += head(hidden[torch.arange(len(rows)), lengths - 1])[:, 0].float().tolist()
        return out


def _same_context_runs(contexts: list) -> list[list[int]]:
    """Indices of ``contexts`` in runs of consecutive equal contexts."""
    runs: list[list[int]] = []
    for i, c in enumerate(contexts):
        if runs and contexts[runs[-1][0]] == c:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


def evaluate_pairs(scorer: RewardScorer, pairs: list[dict]) -> dict:
    """Pairwise accuracy (chosen scored above rejected; a tie counts as wrong) and mean margin
    on ``pairs``, with the accuracy's uncertainty (:func:`accuracy_interval`)."""
    if not pairs:
        return {"accuracy": float("nan"), "margin": float("nan"), **accuracy_interval(0, 0)}
    # each pair's chosen and rejected side by side: they share the context's forward pass
    scores = scorer.score([p["context"] for p in pairs for _ in (0, 1)], [r for p in pairs for r in (p["chosen"], p["rejected"])])
    chosen, rejected = scores[0::2], scores[1::2]
    gaps = [c - r for c, r in zip(chosen, rejected)]
    correct = sum(g > 0 for g in gaps)
    return {"accuracy": correct / len(gaps), "margin": sum(gaps) / len(gaps), **accuracy_interval(correct, len(gaps))}


def accuracy_interval(correct: int, total: int) -> dict:
    """95% Wilson interval of a pairwise accuracy and the exact two-sided binomial test against
    chance (0.5): whether a reward model ranks held-out pairs better than a coin would."""
    if total == 0:
        return {"accuracy_ci_low": float("nan"), "accuracy_ci_high": float("nan"), "accuracy_p_vs_chance": float("nan")}
    from scipy.stats import binomtest

    test = binomtest(correct, total, 0.5)
    ci = test.proportion_ci(confidence_level=0.95, method="wilson")
    return {"accuracy_ci_low": float(ci.low), "accuracy_ci_high": float(ci.high), "accuracy_p_vs_chance": float(test.pvalue)}


def train_reward(base_spec, pairs: list[dict], config: RewardStageConfig, output_dir: str, on_log=None) -> dict:
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer

    train, val = split_pairs(pairs, config.val_fraction, config.seed)
    model, tok = load_reward_model(base_spec)
    args = RewardConfig(**trainer_arguments(output_dir, config))
    trainer = RewardTrainer(model=model, args=args, train_dataset=Dataset.from_list(as_preference_rows(train)),
                            processing_class=tok, peft_config=config.lora.config("SEQ_CLS"), callbacks=step_callbacks(on_log))
    keep_freed_memory()
    trainer.train()
    trainer.save_model(output_dir)
    scorer = RewardScorer(base_spec, output_dir, max_length=config.max_length)
    return {"loss": log_history(trainer, "loss"), "train_pairs": len(train), "val_pairs": len(val),
            "val": evaluate_pairs(scorer, val), "train": evaluate_pairs(scorer, train), "val_records": val}
