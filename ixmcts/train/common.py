"""What every trainer shares: LoRA settings and CPU-safe TRL arguments."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import IxmctsError
from ..options import setting


@dataclass
class LoraSettings:
    """LoRA for every stage; the paper used r = 8."""

    r: int = setting(8, "LoRA rank r (paper 8, §4.6)")
    alpha: int = setting(16, "LoRA alpha")
    dropout: float = setting(0.05, "LoRA dropout")
    targets: str = setting("all-linear", "LoRA target modules: all-linear or a comma-separated list of module names")

    def __post_init__(self):
        if self.r < 1:
            raise IxmctsError(f"lora_r must be at least 1, got {self.r}")

    def config(self, task_type: str):
        from peft import LoraConfig

        targets = self.targets if self.targets == "all-linear" else [t.strip() for t in self.targets.split(",")]
        return LoraConfig(r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout, target_modules=targets, task_type=task_type)


def trainer_arguments(output_dir: str, *, lr: float, epochs: float, max_steps: int, batch_size: int, seed: int,
                      max_length: int) -> dict:
    """Arguments shared by SFTConfig / RewardConfig / DPOConfig. On CPU TRL's bf16 and
    gradient-checkpointing defaults must be off (DESIGN.md §7); metrics are logged by the
    entry point, not by TRL's MLflow callback (its params would collide with ours)."""
    import torch

    cuda = torch.cuda.is_available()
    return dict(output_dir=output_dir, learning_rate=lr, num_train_epochs=epochs, max_steps=max_steps if max_steps > 0 else -1,
                per_device_train_batch_size=batch_size, seed=seed, max_length=max_length, use_cpu=not cuda, bf16=cuda,
                gradient_checkpointing=False, activation_checkpointing=False, report_to="none", logging_steps=1,
                save_strategy="no", disable_tqdm=False)


def log_history(trainer, key: str) -> list[tuple[int, float]]:
    """(step, value) for one logged quantity of a finished trainer."""
    return [(int(h["step"]), float(h[key])) for h in trainer.state.log_history if key in h and "step" in h]
