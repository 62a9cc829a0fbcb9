"""Supervised fine-tuning of the policy and the user simulator (TRL SFTTrainer + LoRA).

Examples are conversational prompt/completion pairs, so the loss covers the assistant turn
only. Policy: the scenario's policy prompt → the reply (ESC: CoT with the predicted state,
then the reply). Simulator: the user condition and the talk so far → the user's turn, plus one example per
dialogue that ends it (``Scenario.end_example``: ESC the final annotated state then ``EOC``;
P4G the task's closing question answered by the corpus's actual donation, ``B6`` capped at $2).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..data.schema import MODEL, USER, Dialogue
from ..errors import IxmctsError
from ..scenarios import LANGUAGES
from ..scenarios.base import Scenario
from ..options import setting
from ..memory import keep_freed_memory
from .common import TrainingSettings, log_history, step_callbacks, trainer_arguments

ROLES = ("policy", "simulator")


@dataclass
class SFTStageConfig(TrainingSettings):
    """SFT of the policy and the user simulator. Defaults: the paper's (§4.6: LoRA r = 8, lr 5e-5, 3 epochs)."""

    base_model: str = setting("", "backbone: registry name, folder or hub id (empty: the scenario's paper backbone, "
                                  "ESC Qwen2.5-7B-Instruct, P4G Llama-3.2-3B-Instruct; §4.6)")
    data: str = setting("", "dialogues: sample | a P4G corpus folder | a PsyDTCorpus JSON file with annotated states "
                            "(empty: the scenario's paper corpus in data_dir)")
    language: str = setting("", "ESC prompt language: zh (the paper's) | en (empty: the scenario's)", choices=LANGUAGES)
    lr: float = setting(5e-5, "learning rate (paper 5e-5, §4.6)")
    epochs: float = setting(3.0, "training epochs (paper 3)")
    max_examples: int = setting(0, "subsample the SFT examples to this many (0: all)")


def build_sft_examples(scenario: Scenario, dialogues: list[Dialogue], role: str) -> list[dict]:
    """One example per turn of ``role`` in every dialogue (plus the end examples)."""
    if role not in ROLES:
        raise IxmctsError(f"unknown role {role!r}; choose policy or simulator")
    speaker = MODEL if role == "policy" else USER
    examples = []
    for d in dialogues:
        for i, turn in enumerate(d.turns):
            if turn.role != speaker:
                continue
            if role == "policy":
                prompt, target = scenario.policy_messages(d.condition, d.turns[:i]), scenario.policy_target(turn)
            else:
                prompt, target = scenario.simulator_messages(d.condition, d.turns[:i]), scenario.simulator_target(turn)
            examples.append(_example(d, prompt, target))
        if role == "simulator":
            examples.append(_example(d, *scenario.end_example(d)))
    if not examples:
        raise IxmctsError(f"no {role} turns in {len(dialogues)} dialogues")
    return examples


def _example(d: Dialogue, prompt: list[dict], target: str) -> dict:
    return {"dialogue_id": d.id, "prompt": prompt, "completion": [{"role": "assistant", "content": target}]}


def fit_to_length(tokenizer, prompt: list[dict], completion: list[dict], max_length: int) -> list[dict]:
    """The prompt with its oldest turns dropped until prompt + completion fit ``max_length``
    tokens; the system message (the instructions, the simulator's persona) and the latest turn
    stay. A long P4G dialogue's end example (the closing question and the donation, the one
    example that teaches the decision) would otherwise lose its persona to token truncation."""
    def length(messages):
        text = tokenizer.apply_chat_template(messages + completion, tokenize=False)
        return len(tokenizer(text, add_special_tokens=False).input_ids)

    if length(prompt) <= max_length:
        return prompt
    head = prompt[:1] if prompt and prompt[0]["role"] == "system" else []
    turns = prompt[len(head):]
    lo, hi = 1, len(turns) - 1  # drop the fewest oldest turns that make it fit (binary search; keep the last)
    while lo <= hi:
        mid = (lo + hi) // 2
        if length(head + turns[mid:]) <= max_length:
            hi = mid - 1
        else:
            lo = mid + 1
    return head + turns[min(lo, len(turns) - 1):]


def train_sft(base_spec, examples: list[dict], config: SFTStageConfig, output_dir: str, on_log=None) -> dict:
    """Train a LoRA adapter on ``examples``; save it in ``output_dir``; return the loss curve."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from ..llm.models import load_causal_lm, load_tokenizer

    tokenizer = load_tokenizer(base_spec)
    rows = [{"prompt": fit_to_length(tokenizer, e["prompt"], e["completion"], config.max_length),
             "completion": e["completion"]} for e in examples]
    # keep_end: what still exceeds max_length after fit_to_length (a single over-long turn) loses
    # the start of its prompt, never the target turn (TRL drops examples whose target was cut away).
    # group_by_length: batches of similar lengths pad little (on CPU the padded positions cost as much as
    # real ones; padding-free batches need FlashAttention, which CPUs lack).
    args = SFTConfig(truncation_mode="keep_end", train_sampling_strategy="group_by_length",
                     **trainer_arguments(output_dir, config))
    trainer = SFTTrainer(model=load_causal_lm(base_spec), args=args, train_dataset=Dataset.from_list(rows),
                         processing_class=tokenizer, peft_config=config.lora.config("CAUSAL_LM"),
                         callbacks=step_callbacks(on_log))
    keep_freed_memory()
    trainer.train()
    trainer.save_model(output_dir)
    return {"loss": log_history(trainer, "loss"), "mean_token_accuracy": log_history(trainer, "mean_token_accuracy")}
