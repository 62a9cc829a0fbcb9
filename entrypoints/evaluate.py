"""MLflow entry point `evaluate`: interactions between a method and the user simulator.

    mlflow run . -e evaluate --env-manager local -P method=sft -P policy_run=<id> -P simulator_run=<id>
    mlflow run . -e evaluate ... -P method=bon -P reward=engagement -P reward_run=<id>
    mlflow run . -e evaluate ... -P method=aligned -P aligned_run=<id>
"""

import tempfile
from pathlib import Path

import click
from _common import IxmctsError

from ixmcts import tracking
from ixmcts.cli import reports_errors
from ixmcts.data import load_conditions
from ixmcts.evaluate import AdviceChooser, EvalConfig, RewardChooser, interact, summarize
from ixmcts.io import write_jsonl
from ixmcts.llm import Sampling, check_backend, make_backends
from ixmcts.llm.models import ModelSpec
from ixmcts.profiles import profile
from ixmcts.scenarios import get_scenario
from ixmcts.train.reward import RewardScorer

METHODS = ("sft", "bon", "aligned")
BON_REWARDS = ("engagement", "strategy", "knowledge")


@click.command()
@click.option("--scenario", default="p4g", show_default=True)
@click.option("--method", default="sft", show_default=True, help="sft | bon | aligned")
@click.option("--reward", default="engagement", show_default=True, help="BoN reranking: engagement | strategy | knowledge")
@click.option("--n", default=3, type=int, show_default=True, help="BoN candidates per turn")
@click.option("--policy-run", default="", help="SFT policy run (sft, bon)")
@click.option("--aligned-run", default="", help="align run (aligned)")
@click.option("--reward-run", default="", help="reward model run (bon with reward=engagement)")
@click.option("--simulator-run", default="", help="SFT simulator run (empty: simulator_model, prompted)")
@click.option("--simulator-model", default="", help="prompted simulator base model (empty: the policy's base)")
@click.option("--advisor-model", default="", help="advisor LLM for strategy/knowledge BoN (empty: the policy's base)")
@click.option("--conditions", default="sample", show_default=True, help="held-out user conditions source")
@click.option("--conditions-offset", default=16, type=int, show_default=True, help="skip the first conditions (the search's)")
@click.option("--num-interactions", default=128, type=int, show_default=True)
@click.option("--data-dir", default="", help="P4G corpus folder for conditions=synth|corpus")
@click.option("--max-turns", default=0, type=int, help="utterance cap; 0 = the paper's (ESC 50, P4G 30)")
@click.option("--closing", default=False, type=bool, show_default=True, help="ask the closing question at the turn limit")
@click.option("--max-new-tokens", default=64, type=int, show_default=True)
@click.option("--language", default="", help="ESC prompt language (empty: the profile's)")
@click.option("--threads", default=0, type=int)
@click.option("--backend", default="transformers", show_default=True, help="transformers | vllm (CUDA)")
@click.option("--seed", default=0, type=int)
@click.option("--profile", "profile_name", default="cpu", show_default=True)
@reports_errors
def main(scenario, method, reward, n, policy_run, aligned_run, reward_run, simulator_run, simulator_model, advisor_model,
         conditions, conditions_offset, num_interactions, data_dir, max_turns, closing, max_new_tokens, language, threads,
         backend, seed, profile_name):
    prof = profile(profile_name)
    sc = get_scenario(scenario, language=language or prof["language"])
    if method not in METHODS:
        raise IxmctsError(f"unknown method {method!r}; choose one of: {', '.join(METHODS)}")
    if method == "bon" and reward not in BON_REWARDS:
        raise IxmctsError(f"unknown BoN reward {reward!r}; choose one of: {', '.join(BON_REWARDS)}")
    check_backend(backend)
    if num_interactions < 1:
        raise IxmctsError(f"num_interactions must be at least 1, got {num_interactions}")
    config = EvalConfig(max_turns=max_turns or sc.max_turns, n=n if method == "bon" else 1, closing=closing, seed=seed,
                        policy_sampling=Sampling(max_new_tokens=max_new_tokens),
                        simulator_sampling=Sampling(temperature=0.3, max_new_tokens=max_new_tokens))
    pool = load_conditions(scenario, conditions, None, data_dir=data_dir or None, seed=seed)
    held_out = pool[conditions_offset : conditions_offset + num_interactions]
    if not held_out:
        raise IxmctsError(f"{conditions}: no held-out conditions after the first {conditions_offset} (it has {len(pool)})")

    # Upstream runs are checked before any work.
    if method == "aligned":
        if not aligned_run:
            raise IxmctsError("method=aligned needs aligned_run")
        policy = tracking.upstream(aligned_run, "align", scenario)
    else:
        if not policy_run:
            raise IxmctsError(f"method={method} needs policy_run (an SFT policy run)")
        policy = tracking.upstream(policy_run, "sft", scenario, role="policy")
    simulator = tracking.upstream(simulator_run, "sft", scenario, role="simulator") if simulator_run else None
    reward_model = None
    if method == "bon" and reward == "engagement":
        if not reward_run:
            raise IxmctsError("BoN with reward=engagement needs reward_run")
        reward_model = tracking.upstream(reward_run, "reward", scenario)

    with tracking.stage_run("evaluate", scenario, profile=profile_name, method=method,
                            reward=reward if method != "sft" else "-") as run, \
            tempfile.TemporaryDirectory(prefix="ixmcts-eval-") as tmp:
        tracking.tag_upstream(policy=policy_run, aligned=aligned_run, reward=reward_run, simulator=simulator_run)
        policy_spec = tracking.model_spec_of(policy, tmp)
        sim_spec = tracking.model_spec_of(simulator, tmp) if simulator else ModelSpec(simulator_model or policy_spec.base)
        tracking.log_params({"max_turns_effective": config.max_turns, "n_effective": config.n,
                             "num_conditions": len(held_out), "base_model": policy_spec.base})
        advisor = ModelSpec(advisor_model or policy_spec.base)
        backends = make_backends({"policy": policy_spec, "simulator": sim_spec,
                                  **({"advisor": advisor} if method == "bon" and reward != "engagement" else {})},
                                 backend, threads=threads or None)
        policy_backend, sim_backend = backends["policy"], backends["simulator"]
        chooser = None
        if method == "bon" and reward == "engagement":
            adapter = tracking.download(reward_run, "adapters/0", f"{tmp}/rm")
            chooser = RewardChooser(RewardScorer(ModelSpec(reward_model.data.tags["ixmcts.base_model"]), adapter))
        elif method == "bon":
            chooser = AdviceChooser(backends["advisor"], reward, scenario)
        from tqdm.auto import tqdm

        bar = tqdm(total=len(held_out), desc="interactions done", unit="dialogue")

        def progress(done, total):
            bar.n = done
            bar.refresh()

        records = interact(sc, policy_backend, sim_backend, held_out, config, chooser=chooser, progress=progress)
        bar.close()
        write_jsonl(Path(tmp) / "interactions.jsonl", records)
        write_jsonl(Path(tmp) / "conditions.jsonl", (c.to_dict() for c in held_out))
        tracking.log_jsonl_dataset(Path(tmp) / "conditions.jsonl", "eval-conditions", "evaluate.conditions",
                                   json_columns=("attributes",))
        import mlflow

        mlflow.log_artifact(str(Path(tmp) / "interactions.jsonl"), artifact_path="data")
        metrics = summarize(records, scenario, seed=seed)
        mlflow.log_metrics({k: v for k, v in metrics.items() if v == v})  # a NaN (no engaging dialogue) stays missing
    key = f"eval/{sc.headline_metric}"
    print(f"\nevaluate run {run.info.run_id}: {method}{'/' + reward if method == 'bon' else ''} "
          f"{key.split('/')[1]} = {metrics[key]:.3f} [{metrics[key + '_ci_low']:.3f}, {metrics[key + '_ci_high']:.3f}] "
          f"over {len(records)} interactions")


if __name__ == "__main__":
    main()
