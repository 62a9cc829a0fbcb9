"""MLflow entry point `merge`: one D_p from the shards of a search.

    mlflow run . -e search --env-manager local -P shard=0 -P num_shards=2   (and shard=1, anywhere)
    mlflow run . -e merge --env-manager local -P scenario=p4g -P runs=<id0>,<id1>

The merged run is a ``search`` run (method ``merge``) that ``reward`` accepts like any other.
"""

import tempfile
from pathlib import Path

import click
import _common  # noqa: F401  (puts this checkout on sys.path)

from ixmcts import tracking
from ixmcts.options import Command, flag, profile_option, reports_errors, scenario_option
from ixmcts.errors import IxmctsError
from ixmcts.io import read_jsonl, write_jsonl
from ixmcts.search.merge import RUN_ONLY, Shard, merge_shards, merged_conditions

SUMMED = ("search/trees", "search/trajectories", "search/engaged_trajectories", "search/pruned_trajectories",
          "search/ended_without_state", "search/conversations", "search/nodes", "search/llm_calls", "search/generated_tokens", "search/wall_sec")


@click.command(cls=Command, help=__doc__)  # the module's description, under --help
@scenario_option()
@click.option("--runs", required=True, help="comma-separated run ids of the search shards")
@flag("allow_partial", False, "merge even if shards are missing")
@profile_option(help="profile tag recorded on the run", dest="profile")
@reports_errors
def main(scenario, runs, allow_partial, profile):
    ids = [r.strip() for r in runs.split(",") if r.strip()]
    if not ids:
        raise IxmctsError("runs is empty: give the search shards' run ids, comma-separated")
    found = [tracking.upstream(run_id, "search", scenario) for run_id in ids]  # all checked before any work
    with tempfile.TemporaryDirectory(prefix="ixmcts-merge-") as tmp:
        shards = []
        for run in found:
            rid, tags = run.info.run_id, run.data.tags
            local = Path(tracking.download(rid, "data", f"{tmp}/{rid}"))
            models = {k: tags.get(f"ixmcts.{k}", "") for k in ("upstream.policy", "upstream.simulator", "base_model")}
            shards.append(Shard(rid, dict(run.data.params), read_jsonl(local / "dp.jsonl"),
                                read_jsonl(local / "conditions.jsonl"), models))
        pairs = merge_shards(shards, allow_partial=allow_partial)
        num_shards = int(shards[0].params.get("num_shards", 1))
        with tracking.stage_run("search", scenario, profile=profile, method="merge", reward="engagement") as run:
            tracking.set_tags({"ixmcts.upstream.shards": ",".join(ids),
                               **{f"ixmcts.{k}": v for k, v in shards[0].models.items() if v}})
            for shard in shards:
                if shard.pairs:  # each shard's D_p, at its own run
                    tracking.log_upstream_dataset(Path(tmp) / shard.run_id / "data" / "dp.jsonl", shard.run_id, "data/dp.jsonl",
                                                  "D_p", "input", json_columns=("context",))
            tracking.log_params({k: v for k, v in shards[0].params.items() if k not in RUN_ONLY})
            tracking.log_params({"shards": len(shards), "allow_partial": allow_partial})
            tracking.log_metrics({m: sum(r.data.metrics.get(m, 0.0) for r in found) for m in SUMMED})
            tracking.log_metrics({"search/pairs": len(pairs), "search/shards": len(shards)})
            write_jsonl(Path(tmp) / "conditions.jsonl", merged_conditions(shards))
            tracking.log_jsonl_dataset(Path(tmp) / "conditions.jsonl", "conditions", "search", json_columns=("attributes",))
            write_jsonl(Path(tmp) / "dp.jsonl", pairs)
            if pairs:
                tracking.log_jsonl_dataset(Path(tmp) / "dp.jsonl", "D_p", json_columns=("context",))
            else:
                tracking.log_artifact(str(Path(tmp) / "dp.jsonl"), artifact_path="data")
    print(f"merge run {run.info.run_id}: {len(pairs)} preference pairs from {len(shards)} of {num_shards} shards")


if __name__ == "__main__":
    main()
