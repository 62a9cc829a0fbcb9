"""DPO on D from the SFT policy (TRL DPOTrainer + LoRA). The SFT adapter is merged into
the base first, so the reference model is exactly the SFT policy (the merged model with
the DPO adapter disabled)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..errors import IxmctsError
from ..options import setting
from ..memory import keep_freed_memory
from .common import TrainingSettings, log_history, step_callbacks, trainer_arguments
from .reward import as_preference_rows


@dataclass
class DPOStageConfig(TrainingSettings):
    """The `align` stage. Defaults: the paper's (LoRA r = 8, β = 0.1, sigmoid loss, lr 5e-6, 2 epochs)."""

    beta: float = setting(0.1, "β: strength of the KL anchor to the reference (SFT) policy (paper 0.1)")
    loss_type: str = setting("sigmoid", "DPO loss (TRL loss_type; paper sigmoid)")
    lr: float = setting(5e-6, "learning rate (paper 5e-6)")
    epochs: float = setting(2.0, "training epochs (paper 2)")


def train_dpo(sft_spec, pairs: list[dict], config: DPOStageConfig, output_dir: str, on_log=None) -> dict:
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from ..llm.models import load_causal_lm, load_tokenizer

    if not pairs:
        raise IxmctsError("D is empty: nothing to align on")
    # precompute_ref_log_probs: the reference (SFT) policy scores each pair once, not at every epoch.
    # Not under a launcher: TRL's precomputed columns live in a datasets cache only rank 0 writes.
    single = int(os.environ.get("WORLD_SIZE", "1")) == 1
    args = DPOConfig(beta=config.beta, loss_type=[config.loss_type], precompute_ref_log_probs=single,
                     **trainer_arguments(output_dir, config))
    trainer = DPOTrainer(model=load_causal_lm(sft_spec), args=args, train_dataset=Dataset.from_list(as_preference_rows(pairs)),
                         processing_class=load_tokenizer(sft_spec), peft_config=config.lora.config("CAUSAL_LM"),
                         callbacks=step_callbacks(on_log))
    keep_freed_memory()
    trainer.train()
    trainer.save_model(output_dir)
    return {k: log_history(trainer, k) for k in ("loss", "rewards/margins", "rewards/accuracies", "rewards/chosen", "rewards/rejected")}
