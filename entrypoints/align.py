"""MLflow entry point `align`: DPO on D from the SFT policy (reference = the SFT policy).

    mlflow run . -e align --env-manager local -P policy_run=<sft id> -P preference_run=<id>
"""

import tempfile
from pathlib import Path

import click
from _common import adapter_saved, config_params, lora, lora_options, num_processes_option, relaunch, typed

from ixmcts import tracking
from ixmcts.cli import reports_errors
from ixmcts.errors import IxmctsError
from ixmcts.io import read_jsonl
from ixmcts.llm.models import ModelSpec
from ixmcts.profiles import stage_settings
from ixmcts.train.dpo import DPOStageConfig, train_dpo


@click.command()
@click.option("--scenario", default="p4g", show_default=True)
@click.option("--policy-run", required=True, help="run id of the policy's SFT run (start and reference)")
@click.option("--preference-run", required=True, help="run id of the preference run whose D is trained on")
@click.option("--profile", "profile_name", default="cpu", show_default=True)
@click.option("--beta", default="", help="β (paper 0.1)")
@click.option("--lr", default="")
@click.option("--epochs", default="")
@click.option("--max-steps", default="")
@click.option("--max-length", default="")
@click.option("--batch-size", default="")
@click.option("--seed", default=0, type=int)
@lora_options
@num_processes_option
@reports_errors
def main(scenario, policy_run, preference_run, profile_name, seed, num_processes, **kw):
    policy = tracking.upstream(policy_run, "sft", scenario, role="policy")
    preference = tracking.upstream(preference_run, "preference", scenario)
    base = policy.data.tags["ixmcts.base_model"]
    if preference.data.tags.get("ixmcts.base_model") != base:
        raise IxmctsError(f"policy run {policy_run} adapts {base!r}, but D of preference run {preference_run} was sampled "
                          f"from {preference.data.tags.get('ixmcts.base_model')!r}: the base models do not match")
    settings = stage_settings(profile_name, "dpo", {k: kw[k] for k in ("beta", "lr", "epochs", "max_steps", "max_length", "batch_size")})
    config = typed(DPOStageConfig, settings, seed=seed, lora=lora(kw["lora_r"], kw["lora_alpha"], kw["lora_dropout"], kw["lora_targets"]))
    relaunch(num_processes)
    with tempfile.TemporaryDirectory(prefix="ixmcts-align-") as tmp:
        pairs = read_jsonl(tracking.download(preference_run, "data/d.jsonl", tmp))
        if not pairs:
            raise IxmctsError(f"preference run {preference_run}: D is empty, so there is nothing to align on")
        sft_spec = tracking.model_spec_of(policy, tmp)
        with tracking.stage_run("align", scenario, profile=profile_name, method="aligned", reward="engagement") as run:
            tracking.tag_upstream(policy=policy_run, preference=preference_run)
            tracking.log_params({"base_model": base, "num_pairs": len(pairs),
                                 **config_params(config)})
            adapter = str(Path(tmp) / "dpo")
            curves = train_dpo(sft_spec, pairs, config, adapter)
            if not adapter_saved(adapter, base):
                return  # another rank of a data-parallel launch: rank 0 logs
            for key, points in curves.items():
                tracking.log_curve("train/" + key.replace("/", "_"), points)
            tracking.log_adapters_and_model(ModelSpec(base, sft_spec.adapters + (adapter,)))
    margins = curves["rewards/margins"]
    print(f"\nalign run {run.info.run_id}: DPO on {len(pairs)} pairs, reward margin "
          f"{margins[0][1]:.3f} → {margins[-1][1]:.3f}" if margins else f"\nalign run {run.info.run_id}")


if __name__ == "__main__":
    main()
