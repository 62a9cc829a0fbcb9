"""MLflow entry point `sft`: LoRA SFT of the policy or the user simulator (TRL).

    mlflow run . -e sft --env-manager local -P scenario=p4g -P role=policy
"""

import tempfile
from pathlib import Path

import click
from _common import adapter_saved, num_processes_option, relaunch, stage_config, stage_options, subsample

from ixmcts import tracking
from ixmcts.options import Command, choice, flatten, reports_errors
from ixmcts.data import load_dialogues
from ixmcts.io import write_jsonl
from ixmcts.llm.models import ModelSpec
from ixmcts.scenarios import get_scenario
from ixmcts.train.sft import ROLES, build_sft_examples, train_sft


@click.command(cls=Command, help=__doc__)  # the module's description, under --help
@click.option("--role", default="policy", show_default=True, type=choice(ROLES), help="which model is fine-tuned: policy | simulator")
@stage_options("sft")
@num_processes_option
@reports_errors
def main(scenario, role, profile_name, num_processes, **settings):
    config = stage_config("sft", scenario, profile_name, settings, variant=role)
    base = config.base_model
    sc = get_scenario(scenario, language=config.language)
    examples = subsample(build_sft_examples(sc, load_dialogues(scenario, config.data), role), config.max_examples, config.seed)
    relaunch(num_processes)

    with tracking.stage_run("sft", scenario, profile=profile_name, system_metrics=True, role=role, method="sft") as run, \
            tempfile.TemporaryDirectory(prefix="ixmcts-sft-") as tmp:
        tracking.log_params({"num_examples": len(examples), **flatten(config)})
        write_jsonl(Path(tmp) / "sft.jsonl", examples)
        tracking.log_jsonl_dataset(Path(tmp) / "sft.jsonl", f"sft-{role}", "training", json_columns=("prompt", "completion"))
        adapter = str(Path(tmp) / "adapter")
        curves = train_sft(ModelSpec(base), examples, config, adapter, on_log=tracking.log_training_step)
        if not adapter_saved(adapter, base):
            return  # another rank of a data-parallel launch: rank 0 logs
        tracking.log_finals(curves)
        tracking.log_adapters_and_model(ModelSpec(base, (adapter,)), register=(tracking.registered_name(scenario, role), "sft"))
    print(f"\nsft run {run.info.run_id}: {role} adapter on {base}, {len(examples)} examples, "
          f"loss {curves['loss'][0][1]:.3f} → {curves['loss'][-1][1]:.3f}")


if __name__ == "__main__":
    main()
