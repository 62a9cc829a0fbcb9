"""MLflow entry point `reward`: the engagement reward model on D_p of a search run.

    mlflow run . -e reward --env-manager local -P scenario=p4g -P search_run=<id>
"""

import tempfile
from pathlib import Path

import click
from _common import adapter_saved, num_processes_option, relaunch, stage_config, stage_options

from ixmcts import tracking
from ixmcts.errors import IxmctsError
from ixmcts.io import read_jsonl, write_jsonl
from ixmcts.llm.models import ModelSpec
from ixmcts.options import Command, flatten, reports_errors
from ixmcts.train.reward import train_reward


@click.command(cls=Command, help=__doc__)  # the module's description, under --help
@click.option("--search-run", required=True, help="run id of the search whose D_p trains the model")
@stage_options("reward")
@num_processes_option
@reports_errors
def main(scenario, search_run, profile_name, num_processes, **settings):
    config = stage_config("reward", scenario, profile_name, settings)
    search = tracking.upstream(search_run, "search", scenario)
    base = config.base_model or search.data.tags.get("ixmcts.base_model") or search.data.params["policy_model"]
    relaunch(num_processes)
    with tempfile.TemporaryDirectory(prefix="ixmcts-reward-") as tmp:
        dp_path = tracking.download(search_run, "data/dp.jsonl", tmp)
        pairs = read_jsonl(dp_path)
        if not pairs:
            raise IxmctsError(f"search run {search_run}: D_p is empty, so there is nothing to train a reward model on")
        with tracking.stage_run("reward", scenario, profile=profile_name, system_metrics=True, method="reward",
                                reward="engagement") as run:
            tracking.tag_upstream(search=search_run)
            tracking.log_upstream_dataset(dp_path, search_run, "data/dp.jsonl", "D_p", "training", json_columns=("context",))
            tracking.log_params({"num_pairs": len(pairs), **flatten(config), "base_model": base})
            adapter = str(Path(tmp) / "adapter")
            result = train_reward(ModelSpec(base), pairs, config, adapter, on_log=tracking.log_training_step)
            if not adapter_saved(adapter, base):
                return  # another rank of a data-parallel launch: rank 0 logs
            tracking.log_finals({"loss": result["loss"]})
            val = result["val"]
            tracking.log_metrics({"reward/accuracy": val["accuracy"], "reward/margin": val["margin"],
                                "reward/accuracy_ci_low": val["accuracy_ci_low"], "reward/accuracy_ci_high": val["accuracy_ci_high"],
                                "reward/accuracy_p_vs_chance": val["accuracy_p_vs_chance"],
                                "reward/train_accuracy": result["train"]["accuracy"], "reward/train_margin": result["train"]["margin"],
                                "reward/train_pairs": result["train_pairs"], "reward/val_pairs": result["val_pairs"]})
            write_jsonl(Path(tmp) / "val_pairs.jsonl", result["val_records"])
            tracking.log_artifact(str(Path(tmp) / "val_pairs.jsonl"), artifact_path="data")
            tracking.log_reward_model(ModelSpec(base, (adapter,)), config.max_length,
                                      register=(tracking.registered_name(scenario, "reward"), "engagement"))
    val = result["val"]
    print(f"\nreward run {run.info.run_id}: validation accuracy {val['accuracy']:.2f} "
          f"[95% CI {val['accuracy_ci_low']:.2f}, {val['accuracy_ci_high']:.2f}; p = {val['accuracy_p_vs_chance']:.3f} vs chance], "
          f"margin {val['margin']:.3f} on {result['val_pairs']} held-out pairs")


if __name__ == "__main__":
    main()
