"""MLflow entry point `sft`: LoRA SFT of the policy or the user simulator (TRL).

    mlflow run . -e sft --env-manager local -P scenario=p4g -P role=policy
"""

import tempfile
from pathlib import Path

import click
from _common import adapter_saved, config_params, lora, lora_options, num_processes_option, relaunch, subsample, typed

from ixmcts import tracking
from ixmcts.cli import reports_errors
from ixmcts.data import load_dialogues
from ixmcts.io import write_jsonl
from ixmcts.llm.models import ModelSpec
from ixmcts.profiles import base_model as base_model_of, profile, stage_settings
from ixmcts.scenarios import get_scenario
from ixmcts.train.sft import SFTStageConfig, build_sft_examples, train_sft


@click.command()
@click.option("--scenario", default="p4g", show_default=True)
@click.option("--role", default="policy", show_default=True, help="policy | simulator")
@click.option("--base-model", default="", help="registry name, folder or hub id (empty: the profile's)")
@click.option("--data", default="sample", show_default=True, help="sample | a P4G folder | a PsyDTCorpus JSON file")
@click.option("--language", default="", help="ESC prompt language (empty: the profile's)")
@click.option("--profile", "profile_name", default="cpu", show_default=True, help="cpu | paper")
@click.option("--lr", default="")
@click.option("--epochs", default="")
@click.option("--max-steps", default="", help="> 0 overrides epochs")
@click.option("--max-length", default="")
@click.option("--batch-size", default="")
@click.option("--max-examples", default="", help="subsample the SFT examples (0: all)")
@click.option("--seed", default=0, type=int)
@lora_options
@num_processes_option
@reports_errors
def main(scenario, role, base_model, data, language, profile_name, seed, num_processes, **kw):
    prof = profile(profile_name)
    base = base_model or base_model_of(profile_name, scenario)
    sc = get_scenario(scenario, language=language or prof["language"])
    settings = stage_settings(profile_name, "sft", {k: kw[k] for k in ("lr", "epochs", "max_steps", "max_length", "batch_size", "max_examples")})
    config = typed(SFTStageConfig, settings, seed=seed, lora=lora(kw["lora_r"], kw["lora_alpha"], kw["lora_dropout"], kw["lora_targets"]))
    examples = subsample(build_sft_examples(sc, load_dialogues(scenario, data), role), int(settings.get("max_examples") or 0), seed)
    relaunch(num_processes)

    with tracking.stage_run("sft", scenario, profile=profile_name, role=role, method="sft") as run, \
            tempfile.TemporaryDirectory(prefix="ixmcts-sft-") as tmp:
        tracking.log_params({"base_model": base, "language": sc.language,
                             "num_examples": len(examples), **config_params(config)})
        write_jsonl(Path(tmp) / "sft.jsonl", examples)
        tracking.log_jsonl_dataset(Path(tmp) / "sft.jsonl", f"sft-{role}", "sft", json_columns=("prompt", "completion"))
        adapter = str(Path(tmp) / "adapter")
        curves = train_sft(ModelSpec(base), examples, config, adapter)
        if not adapter_saved(adapter, base):
            return  # another rank of a data-parallel launch: rank 0 logs
        tracking.log_curve("train/loss", curves["loss"])
        tracking.log_curve("train/mean_token_accuracy", curves["mean_token_accuracy"])
        tracking.log_adapters_and_model(ModelSpec(base, (adapter,)))
    print(f"\nsft run {run.info.run_id}: {role} adapter on {base}, {len(examples)} examples, "
          f"loss {curves['loss'][0][1]:.3f} → {curves['loss'][-1][1]:.3f}")


if __name__ == "__main__":
    main()
