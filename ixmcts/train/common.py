"""What every trainer shares: LoRA and training settings, and CPU-safe TRL arguments."""

from __future__ import annotations

from dataclasses import dataclass, field

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


@dataclass
class TrainingSettings:
    """The settings every trainer takes; each stage's Config (sft, reward, align) adds its own
    and sets the paper's learning rate and epochs."""

    lr: float = setting(5e-5, "learning rate")
    epochs: float = setting(1.0, "training epochs")
    max_steps: int = setting(0, "training steps; > 0 overrides epochs")
    batch_size: int = setting(4, "per-device batch size")
    max_length: int = setting(4096, "maximum tokens per example (an SFT prompt loses its oldest turns first, never its system message)")
    seed: int = setting(0, "random seed")
    lora: LoraSettings = field(default_factory=LoraSettings)


def trainer_arguments(output_dir: str, config: TrainingSettings) -> dict:
    """Arguments shared by SFTConfig / RewardConfig / DPOConfig. On CPU TRL's bf16 and
    gradient-checkpointing defaults must be off (DESIGN.md §7); metrics are logged through
    ``step_callbacks`` by the entry point, not by TRL's MLflow callback (its params would
    collide with ours)."""
    import torch

    cuda = torch.cuda.is_available()
    return dict(output_dir=output_dir, learning_rate=config.lr, num_train_epochs=config.epochs,
                max_steps=config.max_steps if config.max_steps > 0 else -1, per_device_train_batch_size=config.batch_size,
                seed=config.seed, max_length=config.max_length, use_cpu=not cuda, bf16=cuda,
                gradient_checkpointing=False, activation_checkpointing=False, report_to="none", logging_steps=1,
                save_strategy="no", disable_tqdm=False)


def log_history(trainer, key: str) -> list[tuple[int, float]]:
    """(step, value) for one logged quantity of a finished trainer."""
    return [(int(h["step"]), float(h[key])) for h in trainer.state.log_history if key in h and "step" in h]


def step_callbacks(on_log=None) -> list:
    """Trainer callbacks that hand every logging step's numbers to ``on_log(logs, step)`` on the
    main process only, while training runs (none without ``on_log``). The library stays
    tracking-free: the entry point passes the function that logs."""
    if on_log is None:
        return []
    from transformers import TrainerCallback

    class StepLogger(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.is_world_process_zero and logs:
                on_log(dict(logs), state.global_step)

    return [StepLogger()]
