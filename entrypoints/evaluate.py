"""MLflow entry point `evaluate`: interactions between a method and the user simulator.

    mlflow run . -e evaluate --env-manager local -P method=sft -P policy_run=<id> -P simulator_run=<id>
    mlflow run . -e evaluate ... -P method=bon -P reward=engagement -P reward_run=<id>
    mlflow run . -e evaluate ... -P method=aligned -P aligned_run=<id>
"""

import tempfile
from pathlib import Path

import click
from _common import IxmctsError, progress_bar, stage_config, stage_options

from ixmcts import tracking
from ixmcts.data import load_conditions
from ixmcts.evaluate import AdviceChooser, RewardChooser, interact, summarize
from ixmcts.evaluate.movement import policy_turns, token_kl
from ixmcts.io import write_jsonl
from ixmcts.llm import check_backend, make_backends
from ixmcts.llm.models import ModelSpec, load_causal_lm, load_tokenizer
from ixmcts.options import Command, choice, reports_errors
from ixmcts.scenarios import get_scenario
from ixmcts.train.reward import RewardScorer

METHODS = ("sft", "bon", "aligned")
BON_REWARDS = ("engagement", "strategy", "knowledge")


@click.command(cls=Command, help=__doc__)  # the module's description, under --help
@click.option("--method", default="sft", show_default=True, type=choice(METHODS), help="the method evaluated: sft | bon | aligned")
@click.option("--reward", default="engagement", show_default=True, type=choice(BON_REWARDS),
              help="BoN reranking: engagement (the reward model) | strategy | knowledge (an advisor LLM)")
@click.option("--policy-run", default="", help="SFT policy (sft, bon): run id or models:/ixmcts-<scenario>-policy@sft")
@click.option("--aligned-run", default="", help="aligned policy (aligned): run id or models:/ixmcts-<scenario>-policy@aligned")
@click.option("--reward-run", default="", help="reward model (bon with reward=engagement): run id or models:/ixmcts-<scenario>-reward@engagement")
@click.option("--simulator-run", default="", help="SFT simulator run (empty: simulator_model, prompted)")
@stage_options("evaluate")
@reports_errors
def main(scenario, profile_name, method, reward, policy_run, aligned_run, reward_run, simulator_run, **settings):
    params = stage_config("evaluate", scenario, profile_name, settings, variant=method)  # bad values fail here, before any run
    simulator_model, advisor_model, threads, backend, seed = (params.simulator_model, params.advisor_model, params.threads,
                                                              params.backend, params.seed)
    sc = get_scenario(scenario, language=params.language)
    check_backend(backend)
    config = params.eval_config(method == "bon", sc.max_turns)
    # held out: the pool's first conditions_offset are the search's (a synthesized pool grows to fit)
    offset = params.conditions_offset
    pool = load_conditions(scenario, params.conditions, offset + params.num_interactions, data_dir=params.data_dir or None,
                           seed=seed)
    held_out = pool[offset:]
    if not held_out:
        raise IxmctsError(f"{params.conditions}: no held-out conditions after the first {offset} (it has {len(pool)})")

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
        with progress_bar(len(held_out), "interactions done", "dialogue") as progress:
            records = interact(sc, policy_backend, sim_backend, held_out, config, chooser=chooser, progress=progress)
        write_jsonl(Path(tmp) / "interactions.jsonl", records)
        write_jsonl(Path(tmp) / "conditions.jsonl", (c.to_dict() for c in held_out))
        tracking.log_jsonl_dataset(Path(tmp) / "conditions.jsonl", "eval-conditions", "evaluation",
                                   json_columns=("attributes",))
        tracking.log_artifact(str(Path(tmp) / "interactions.jsonl"), artifact_path="data")
        metrics = summarize(records, scenario, seed=seed)
        if method == "aligned" and params.kl_dialogues:
            # the transformers backend's policy is the aligned model already loaded (vLLM's is not a torch module)
            aligned_model = getattr(policy_backend, "model", None)
            metrics.update(movement_from_sft(sc, policy_spec, held_out, records, params.kl_dialogues, aligned_model,
                                             params.max_new_tokens))
        # SFT and Aligned are the policy itself: their engagement is also its LoggedModel's
        # (BoN is the policy plus a reranker, so it stays on the run only)
        model_id = tracking.logged_model_id(policy) if method in ("sft", "aligned") else None
        tracking.log_metrics(metrics, model_id=model_id)  # a NaN (no engaging dialogue) stays missing
    key = f"eval/{sc.headline_metric}"
    print(f"\nevaluate run {run.info.run_id}: {method}{'/' + reward if method == 'bon' else ''} "
          f"{key.split('/')[1]} = {metrics[key]:.3f} [{metrics[key + '_ci_low']:.3f}, {metrics[key + '_ci_high']:.3f}] "
          f"over {len(records)} interactions")


def movement_from_sft(sc, aligned_spec: ModelSpec, conditions, records, max_dialogues: int, aligned_model=None,
                      max_new_tokens: int = 0) -> dict:
    """``eval/kl_*``: how far DPO moved the policy from its SFT reference (the aligned policy
    without its last adapter) on the evaluation's own policy turns, each with its end-of-turn
    choice unless cut at ``max_new_tokens`` (the evaluation's cap). ``aligned_model``: the
    aligned policy already loaded (else loaded here); the reference gets its dtype and device,
    so that precision differences do not show up as movement."""
    aligned = aligned_model if aligned_model is not None else load_causal_lm(aligned_spec)
    reference = load_causal_lm(ModelSpec(aligned_spec.base, aligned_spec.adapters[:-1]), dtype=aligned.dtype,
                               device=str(aligned.device))
    examples = policy_turns(sc, conditions, records, max_dialogues)
    with progress_bar(len(examples), "KL from the SFT policy", "turn") as progress:
        kl = token_kl(aligned, reference, load_tokenizer(aligned_spec), examples, progress=progress,
                      max_new_tokens=max_new_tokens)
    return {f"eval/{k}": v for k, v in kl.items()}


if __name__ == "__main__":
    main()
