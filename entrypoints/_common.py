"""Shared by the entry-point scripts: import the package from this checkout, cast
profile settings, and the LoRA options every training stage takes."""

import dataclasses
import os
import random
import sys
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from ixmcts.errors import IxmctsError  # noqa: E402
from ixmcts.train.common import LoraSettings  # noqa: E402


def typed(cls, settings: dict, **extra):
    """Build a stage config dataclass from profile settings (strings from MLflow are cast)."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    for k, v in {**settings, **extra}.items():
        if k not in fields:
            continue
        kind = type(fields[k].default)
        if isinstance(v, str) and kind in (int, float):
            try:
                v = kind(float(v)) if kind is float or float(v).is_integer() else None
            except ValueError:
                v = None
            if v is None:
                raise IxmctsError(f"parameter {k} must be a {'whole number' if kind is int else 'number'}, got {settings.get(k, extra.get(k))!r}")
        values[k] = v
    return cls(**values)


def lora_options(fn):
    for name, default, help in reversed([("lora_r", 8, "LoRA rank r"), ("lora_alpha", 16, "LoRA alpha"),
                                         ("lora_dropout", 0.05, "LoRA dropout"),
                                         ("lora_targets", "all-linear", "LoRA target modules (comma-separated or all-linear)")]):
        fn = click.option(f"--{name.replace('_', '-')}", name, default=default, type=type(default), show_default=True, help=help)(fn)
    return fn


def lora(lora_r, lora_alpha, lora_dropout, lora_targets) -> LoraSettings:
    if lora_r < 1:
        raise IxmctsError(f"lora_r must be at least 1, got {lora_r}")
    return LoraSettings(r=lora_r, alpha=lora_alpha, dropout=lora_dropout, targets=lora_targets)


def config_params(config) -> dict:
    """A stage config as flat run parameters (its LoRA block as ``lora_*``)."""
    params = {k: v for k, v in dataclasses.asdict(config).items() if k != "lora"}
    if hasattr(config, "lora"):
        params.update({f"lora_{k}": v for k, v in dataclasses.asdict(config.lora).items()})
    return params


def subsample(items: list, count: int, seed: int) -> list:
    if not count or count >= len(items):
        return items
    return [items[i] for i in sorted(random.Random(seed).sample(range(len(items)), count))]


def relaunch(num_processes: int) -> None:
    """Run this entry point again as ``num_processes`` data-parallel processes (torchrun, the
    launcher ``accelerate launch --multi_gpu`` uses), once the input has been checked. The
    processes inherit ``MLFLOW_RUN_ID``; rank 0 logs the run, the others only train. Under a
    launcher already (``RANK`` set) or with one process, it returns."""
    if num_processes < 1:
        raise IxmctsError(f"num_processes must be at least 1, got {num_processes}")
    if num_processes == 1 or "RANK" in os.environ:
        return
    sys.stdout.flush()
    os.execv(sys.executable, [sys.executable, "-m", "torch.distributed.run", "--standalone",
                              f"--nproc_per_node={num_processes}", sys.argv[0], *sys.argv[1:]])


def num_processes_option(fn):
    return click.option("--num-processes", default=1, type=int, show_default=True,
                        help="data-parallel training processes (one per GPU; torchrun)")(fn)


def adapter_saved(adapter: str, base: str) -> bool:
    """After training: on rank 0, record the adapter's base model and return True (it logs);
    on other ranks of a data-parallel launch return False (rank 0 saved the adapter)."""
    from ixmcts.llm.models import record_base
    from ixmcts.tracking import is_main_process

    if not is_main_process():
        return False
    record_base(adapter, base)
    return True
