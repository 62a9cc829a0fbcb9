"""MLflow entry point `search`: run i×MCTS and log D_p, the trees and `search/*` metrics.

    mlflow run . -e search --env-manager local -P scenario=p4g
    mlflow run . -e search --env-manager local -P policy_run=<sft id> -P simulator_run=<sft id>
"""

import dataclasses
import tempfile

import click
from _common import stage_config, stage_options

from ixmcts import tracking
from ixmcts.options import Command, reports_errors
from ixmcts.search.run import prepare_search, run_search


@click.command(cls=Command, help=__doc__)  # the module's description, under --help
@stage_options("search")
@click.option("--policy-run", default="", help="the SFT policy instead of policy_model: run id or models:/ixmcts-<scenario>-policy@sft")
@click.option("--simulator-run", default="", help="SFT run id of the user simulator (instead of simulator_model)")
@reports_errors
def main(scenario, profile_name, policy_run, simulator_run, **settings):
    params = stage_config("search", scenario, profile_name, settings)
    prepare_search(params)  # bad input fails here, before a run or a model load
    # Upstream runs are checked before any work too; their adapters are downloaded in the run.
    policy = tracking.upstream(policy_run, "sft", params.scenario, role="policy") if policy_run else None
    simulator = tracking.upstream(simulator_run, "sft", params.scenario, role="simulator") if simulator_run else None
    with tracking.stage_run("search", params.scenario, profile=profile_name, method="search", reward="engagement") as run, \
            tempfile.TemporaryDirectory(prefix="ixmcts-search-") as out:
        tracking.tag_upstream(policy=policy_run, simulator=simulator_run)
        policy_spec = tracking.model_spec_of(policy, out) if policy else None
        simulator_spec = tracking.model_spec_of(simulator, out) if simulator else None
        # a folder of its own: the outputs replace it as a whole, and the adapters sit beside it
        outcome = run_search(params, f"{out}/outputs", policy_spec=policy_spec, simulator_spec=simulator_spec)
        tracking.log_search(dataclasses.asdict(params), outcome)
        tracking.set_tags({"base_model": policy_spec.base if policy_spec else params.policy_model})
    m = outcome.metrics
    print(f"\nsearch run {run.info.run_id} (experiment {tracking.experiment_name(params.scenario)}): "
          f"{m['search/pairs']} preference pairs from {m['search/trees']} trees, "
          f"{m['search/engaged_trajectories']}/{m['search/trajectories']} engaged trajectories, {m['search/wall_sec']:.0f}s")
    print(f"tracking store: {tracking.configure()}   open the UI: mlflow ui --backend-store-uri {tracking.configure()}")


if __name__ == "__main__":
    main()
