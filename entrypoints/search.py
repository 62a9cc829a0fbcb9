"""MLflow entry point `search`: run i×MCTS and log D_p, the trees and `search/*` metrics.

    mlflow run . -e search --env-manager local -P scenario=p4g
"""

import dataclasses
import sys
import tempfile
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from ixmcts import tracking  # noqa: E402
from ixmcts.cli import SEARCH_HELP, dataclass_options, reports_errors  # noqa: E402
from ixmcts.search.run import SearchParams, prepare_search, run_search  # noqa: E402


@click.command()
@dataclass_options(SearchParams, SEARCH_HELP)
@click.option("--profile", default="cpu", show_default=True, help="profile tag recorded on the run")
@reports_errors
def main(profile, **kwargs):
    params = SearchParams(**kwargs)
    prepare_search(params)  # bad input fails here, before a run or a model load
    with tracking.stage_run("search", params.scenario, profile=profile, method="search",
                                                    reward="engagement") as run, \
            tempfile.TemporaryDirectory(prefix="ixmcts-search-") as out:
        outcome = run_search(params, out)
        tracking.log_search(dataclasses.asdict(params), outcome)
    m = outcome.metrics
    print(f"\nsearch run {run.info.run_id} (experiment {tracking.experiment_name(params.scenario)}): "
          f"{m['search/pairs']} preference pairs from {m['search/trees']} trees, "
          f"{m['search/engaged_trajectories']}/{m['search/trajectories']} engaged trajectories, {m['search/wall_sec']:.0f}s")
    print(f"tracking store: {tracking.configure()}   open the UI: mlflow ui --backend-store-uri {tracking.configure()}")


if __name__ == "__main__":
    main()
