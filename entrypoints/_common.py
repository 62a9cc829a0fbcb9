"""Shared by the entry-point scripts: import the package from this checkout, and build each
stage's options and Config from its dataclass and the profile."""

import os
import random
import sys
from contextlib import contextmanager
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from ixmcts.errors import IxmctsError  # noqa: E402
from ixmcts.options import ON_ERROR, Command  # noqa: E402,F401  (Command: every entry point's click class)


def _tag_run_with_error(message: str) -> None:
    """Under `mlflow run` the run exists before the entry point starts, so a refused input
    leaves it FAILED: the tag ``ixmcts.error`` says why in the UI."""
    from ixmcts.tracking.runs import record_error

    record_error(message)


ON_ERROR.append(_tag_run_with_error)


def stage_options(stage: str):
    """The stage's options, generated from its Config (empty: the profile's value), and
    ``--scenario`` / ``--profile``, which every stage takes."""
    from ixmcts.options import config_options, profile_option, scenario_option
    from ixmcts.profiles import COMMON, is_profiled, stages

    def decorate(fn):
        fn = config_options(stages()[stage], profiled=lambda name: is_profiled(stage, name), skip=COMMON)(fn)
        return scenario_option()(profile_option()(fn))

    return decorate


def stage_config(stage: str, scenario: str, profile_name: str, given: dict, variant: str = ""):
    """The stage's Config resolved as ``main``'s plan resolves it (given, else the profile's
    block for ``variant``, the sft role or evaluated method, then for the stage, else the
    paper's); bad values and a missing corpus fail here, before any run."""
    from ixmcts.options import build
    from ixmcts.profiles import resolve_stage, stages

    values = resolve_stage(profile_name, scenario, stage, given, variant=variant)
    return build(stages()[stage], {**values, "scenario": scenario})


@contextmanager
def progress_bar(total: int, desc: str, unit: str):
    """A tqdm bar, and the ``progress(done, total)`` callback that the library's long loops call."""
    from tqdm.auto import tqdm

    with tqdm(total=total, desc=desc, unit=unit) as bar:
        def progress(done, _total):
            bar.n = done
            bar.refresh()

        yield progress


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
