"""MLflow entry point `align`: DPO on D from the SFT policy (reference = the SFT policy).

    mlflow run . -e align --env-manager local -P policy_run=<sft id> -P preference_run=<id>
"""

import tempfile
from pathlib import Path

import click
from _common import adapter_saved, num_processes_option, relaunch, stage_config, stage_options

from ixmcts import tracking
from ixmcts.errors import IxmctsError
from ixmcts.io import read_jsonl
from ixmcts.llm.models import ModelSpec
from ixmcts.options import Command, flatten, reports_errors
from ixmcts.train.dpo import train_dpo


@click.command(cls=Command, help=__doc__)  # the module's description, under --help
@click.option("--policy-run", required=True, help="the SFT policy (start and reference): its run id or models:/ixmcts-<scenario>-policy@sft")
@click.option("--preference-run", required=True, help="run id of the preference run whose D is trained on")
@stage_options("align")
@num_processes_option
@reports_errors
def main(scenario, policy_run, preference_run, profile_name, num_processes, **settings):
    config = stage_config("align", scenario, profile_name, settings)
    policy = tracking.upstream(policy_run, "sft", scenario, role="policy")
    preference = tracking.upstream(preference_run, "preference", scenario)
    base = policy.data.tags["ixmcts.base_model"]
    if preference.data.tags.get("ixmcts.base_model") != base:
        raise IxmctsError(f"policy run {policy_run} adapts {base!r}, but D of preference run {preference_run} was sampled "
                          f"from {preference.data.tags.get('ixmcts.base_model')!r}: the base models do not match")
    relaunch(num_processes)
    with tempfile.TemporaryDirectory(prefix="ixmcts-align-") as tmp:
        d_path = tracking.download(preference_run, "data/d.jsonl", tmp)
        pairs = read_jsonl(d_path)
        if not pairs:
            raise IxmctsError(f"preference run {preference_run}: D is empty, so there is nothing to align on")
        sft_spec = tracking.model_spec_of(policy, tmp)
        with tracking.stage_run("align", scenario, profile=profile_name, system_metrics=True, method="aligned",
                                reward="engagement") as run:
            tracking.tag_upstream(policy=policy_run, preference=preference_run)
            tracking.log_upstream_dataset(d_path, preference_run, "data/d.jsonl", "D", "training", json_columns=("context",))
            tracking.log_params({"base_model": base, "num_pairs": len(pairs), **flatten(config)})
            adapter = str(Path(tmp) / "dpo")
            curves = train_dpo(sft_spec, pairs, config, adapter, on_log=tracking.log_training_step)
            if not adapter_saved(adapter, base):
                return  # another rank of a data-parallel launch: rank 0 logs
            tracking.log_finals(curves)
            tracking.log_adapters_and_model(ModelSpec(base, sft_spec.adapters + (adapter,)),
                                            register=(tracking.registered_name(scenario, "policy"), "aligned"))
    margins = curves["rewards/margins"]
    print(f"\nalign run {run.info.run_id}: DPO on {len(pairs)} pairs, reward margin "
          f"{margins[0][1]:.3f} → {margins[-1][1]:.3f}" if margins else f"\nalign run {run.info.run_id}")


if __name__ == "__main__":
    main()
