"""Per-stage wall times of a `main` pipeline run, from the tracking store (the table in results/pipeline_times.md).

    python scripts/pipeline_times.py --tracking-uri sqlite:///mlruns.db [--run <main run id>] [--before results/before.json]

Prints a Markdown table: each child run's stage (with its role or method), run id, wall seconds
(end − start as MLflow recorded them) and its headline numbers; with ``--before`` (a JSON
``{label: seconds}`` of an earlier measurement) a before column and the ratio too. The
parent's own wall time is the first row. Without ``--run``: the newest FINISHED main run.
"""

import json

import click


def label_of(run) -> str:
    tags = run.data.tags
    stage = tags.get("ixmcts.stage", "?")
    if stage == "sft":
        return f"sft ({tags.get('ixmcts.role', '?')})"
    if stage == "evaluate":
        method, reward = tags.get("ixmcts.method", "?"), tags.get("ixmcts.reward", "-")
        return f"evaluate {method}" + (f" {reward}" if method == "bon" else "")
    return stage


KEY_METRICS = ("search/pairs", "search/engaged_trajectories", "search/trajectories", "reward/accuracy", "reward/val_pairs",
               "preference/pairs",
               "train/rewards/margins", "eval/donation_mean", "eval/engaged_rate", "eval/interactions")


def wall(run) -> float:
    import time

    end = run.info.end_time or time.time() * 1000  # a run still going: so far
    return (end - run.info.start_time) / 1000


@click.command(help=__doc__)
@click.option("--tracking-uri", required=True, help="the store holding the main run")
@click.option("--run", "run_id", default="", help="the main (parent) run id (default: the newest finished one)")
@click.option("--before", default="", help="JSON {label: seconds} of an earlier measurement, for a before column")
def main(tracking_uri, run_id, before):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not run_id:
        found = client.search_runs(experiments, "tags.`ixmcts.stage` = 'main' and attributes.status = 'FINISHED'",
                                   order_by=["start_time DESC"], max_results=1)
        if not found:
            raise SystemExit(f"no finished main run in {tracking_uri}")
        run_id = found[0].info.run_id
    parent = client.get_run(run_id)
    children = client.search_runs([parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{run_id}'",
                                  order_by=["start_time ASC"])
    previous = json.loads(open(before).read()) if before else {}
    header = "| stage | run id | wall s |" + (" before s | after/before |" if previous else "") + " key numbers |"
    lines = [header, "|" + "---|" * (header.count("|") - 1)]

    def row(label, run):
        numbers = ", ".join(f"{k.split('/')[-1]} {v:.3g}" for k, v in sorted(run.data.metrics.items()) if k in KEY_METRICS)
        cells = [label, f"`{run.info.run_id}`", f"{wall(run):,.0f}"]
        if previous:
            b = previous.get(label)
            cells += [f"{b:,.0f}" if b else "—", f"{wall(run) / b:.2f}" if b else "—"]
        lines.append("| " + " | ".join(cells + [numbers]) + " |")

    row("main (parent)", parent)
    for child in children:
        row(label_of(child), child)
    click.echo("\n".join(lines))


if __name__ == "__main__":
    main()
