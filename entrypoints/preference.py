"""MLflow entry point `preference`: D_t from reward-ranked policy samples, and D = D_p ∪ D_t.

    mlflow run . -e preference --env-manager local -P policy_run=<sft id> -P reward_run=<id>
"""

import tempfile
from pathlib import Path

import click
from _common import stage_config, stage_options, subsample

from ixmcts import tracking
from ixmcts.io import read_jsonl, write_jsonl
from ixmcts.llm import TransformersBackend
from ixmcts.llm.models import ModelSpec
from ixmcts.options import Command, flatten, reports_errors
from ixmcts.train.preference import build_dt, merge_preferences
from ixmcts.train.reward import RewardScorer


@click.command(cls=Command, help=__doc__)  # the module's description, under --help
@click.option("--policy-run", required=True, help="the SFT policy (its training contexts and model): run id or models:/ixmcts-<scenario>-policy@sft")
@click.option("--reward-run", required=True, help="the reward model (its search run gives D_p): run id or models:/ixmcts-<scenario>-reward@engagement")
@stage_options("preference")
@reports_errors
def main(scenario, policy_run, reward_run, profile_name, **settings):
    config = stage_config("preference", scenario, profile_name, settings)
    policy = tracking.upstream(policy_run, "sft", scenario, role="policy")
    reward = tracking.upstream(reward_run, "reward", scenario)
    search_run = reward.data.tags["ixmcts.upstream.search"]
    with tempfile.TemporaryDirectory(prefix="ixmcts-pref-") as tmp:
        dp_path = tracking.download(search_run, "data/dp.jsonl", tmp)
        sft_path = tracking.download(policy_run, "data/sft.jsonl", tmp)
        dp, sft = read_jsonl(dp_path), read_jsonl(sft_path)
        unique = list({str(e["prompt"]): e["prompt"] for e in sft}.values())
        contexts = subsample(unique, config.num_contexts, config.seed)
        policy_spec = tracking.model_spec_of(policy, tmp)
        reward_spec = ModelSpec(reward.data.tags["ixmcts.base_model"])
        reward_adapter = tracking.download(reward_run, "adapters/0", f"{tmp}/rm")
        with tracking.stage_run("preference", scenario, profile=profile_name, method="preference") as run:
            tracking.tag_upstream(policy=policy_run, reward=reward_run, search=search_run)
            if dp:
                tracking.log_upstream_dataset(dp_path, search_run, "data/dp.jsonl", "D_p", "input", json_columns=("context",))
            tracking.log_upstream_dataset(sft_path, policy_run, "data/sft.jsonl", "sft-policy", "input",
                                          json_columns=("prompt", "completion"))
            tracking.log_params({**flatten(config), "base_model": policy_spec.base})
            backend = TransformersBackend(policy_spec, threads=config.threads or None)
            dt = build_dt(backend, RewardScorer(reward_spec, reward_adapter), contexts, config, scenario)
            d = merge_preferences(dp, dt)
            write_jsonl(Path(tmp) / "dt.jsonl", dt)
            write_jsonl(Path(tmp) / "d.jsonl", d)
            tracking.log_metrics({"preference/dp_pairs": len(dp), "preference/dt_pairs": len(dt), "preference/pairs": len(d),
                                "preference/contexts": len(contexts)})
            if dt:
                tracking.log_jsonl_dataset(Path(tmp) / "dt.jsonl", "D_t", json_columns=("context",))
            else:
                tracking.log_artifact(str(Path(tmp) / "dt.jsonl"), artifact_path="data")
            tracking.log_jsonl_dataset(Path(tmp) / "d.jsonl", "D", json_columns=("context",))
            tracking.set_tags({"base_model": policy_spec.base})
    print(f"\npreference run {run.info.run_id}: D = {len(dp)} search pairs + {len(dt)} reward-model pairs")


if __name__ == "__main__":
    main()
