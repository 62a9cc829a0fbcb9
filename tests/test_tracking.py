"""The tracking helpers on a fresh store, without training: registry references, dataset
sources that outlive the temporary files they were written from, metrics on a LoggedModel."""

import json
import tempfile
from pathlib import Path

import mlflow
import pytest

from ixmcts import tracking
from ixmcts.errors import IxmctsError


class Echo(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return list(model_input["messages"])


def _registered(name: str, alias: str) -> str:
    """A FINISHED sft run that registered a trivial model as ``name@alias``; its run id."""
    with tracking.stage_run("sft", "p4g", role="policy") as run:
        info = mlflow.pyfunc.log_model(name="model", python_model=Echo(), registered_model_name=name)
        mlflow.MlflowClient().set_registered_model_alias(name, alias, str(info.registered_model_version))
        tracking.set_tags({"model_id": info.model_id})
    return run.info.run_id


def test_models_uri_resolves_to_the_run_that_logged_it(tracking_env):
    run_id = _registered("ixmcts-p4g-policy", "sft")
    assert tracking.run_id_of("models:/ixmcts-p4g-policy@sft") == run_id
    assert tracking.run_id_of("models:/ixmcts-p4g-policy/1") == run_id
    assert tracking.run_id_of(run_id) == run_id  # a run id stays what it is
    run = tracking.upstream("models:/ixmcts-p4g-policy@sft", "sft", "p4g", role="policy")
    assert run.info.run_id == run_id
    with tracking.stage_run("align", "p4g") as align:
        tracking.tag_upstream(policy="models:/ixmcts-p4g-policy@sft", preference="")
    tags = mlflow.get_run(align.info.run_id).data.tags
    assert tags["ixmcts.upstream.policy"] == run_id
    assert tags["ixmcts.upstream.policy_model"] == "models:/ixmcts-p4g-policy@sft"
    assert "ixmcts.upstream.preference" not in tags


def test_unknown_model_uri_is_one_clear_error(tracking_env):
    _registered("ixmcts-p4g-policy", "sft")
    with pytest.raises(IxmctsError, match="model 'models:/ixmcts-p4g-policy@aligned' not found in the registry"):
        tracking.upstream("models:/ixmcts-p4g-policy@aligned", "align", "p4g")
    with pytest.raises(IxmctsError, match="not found in the registry"):
        tracking.run_id_of("models:/no-such-model/3")
    with pytest.raises(IxmctsError, match="is a sft run, not a reward run"):
        tracking.upstream("models:/ixmcts-p4g-policy@sft", "reward", "p4g")


def test_dataset_sources_outlive_the_temporary_file(tracking_env, tmp_path):
    rows = [{"context": [{"role": "user", "content": "Hi."}], "chosen": "a", "rejected": "b"}]
    with tracking.stage_run("search", "p4g") as producer, tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dp.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        tracking.log_jsonl_dataset(path, "D_p", json_columns=("context",))
    assert not path.exists()  # the temporary folder is gone …
    with tracking.stage_run("reward", "p4g") as consumer:
        local = tracking.download(producer.info.run_id, "data/dp.jsonl", str(tmp_path / "dl"))
        tracking.log_upstream_dataset(local, producer.info.run_id, "data/dp.jsonl", "D_p", "training", json_columns=("context",))
    made, used = (mlflow.get_run(r.info.run_id).inputs.dataset_inputs[0] for r in (producer, consumer))
    assert [t.value for t in made.tags] == ["output"] and [t.value for t in used.tags] == ["training"]
    assert (made.dataset.digest, made.dataset.source) == (used.dataset.digest, used.dataset.source)  # one dataset
    source = json.loads(made.dataset.source)["uri"]
    assert producer.info.run_id in source and source.endswith("artifacts/data/dp.jsonl")
    copy = mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(tmp_path / "src"))  # … its source is not
    assert [json.loads(line)["chosen"] for line in Path(copy).read_text().splitlines()] == ["a"]


def test_metrics_can_be_logged_against_a_logged_model(tracking_env):
    run_id = _registered("ixmcts-p4g-policy", "sft")
    model_id = mlflow.get_run(run_id).data.tags["ixmcts.model_id"]
    with tracking.stage_run("evaluate", "p4g"):
        tracking.log_metrics({"eval/donation_mean": 0.75, "eval/turns_mean": float("nan")}, model_id=model_id)
    metrics = {m.key: m.value for m in mlflow.get_logged_model(model_id).metrics}
    assert metrics == {"eval/donation_mean": 0.75}  # a NaN stays missing


def test_training_steps_are_logged_as_train_metrics(tracking_env):
    with tracking.stage_run("sft", "p4g") as run:
        tracking.log_training_step({"loss": 2.0, "rewards/margins": 0.5, "epoch": 0.1, "note": "text"}, step=1)
        tracking.log_training_step({"loss": 1.5}, step=2)
        tracking.log_finals({"loss": [(1, 2.0), (2, 1.5)], "rewards/margins": []})
    client = mlflow.MlflowClient()
    assert [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "train/loss")] == [(1, 2.0), (2, 1.5)]
    metrics = mlflow.get_run(run.info.run_id).data.metrics
    assert metrics["train/rewards_margins"] == 0.5 and metrics["train/loss_final"] == 1.5
    assert "train/note" not in metrics and "train/rewards_margins_final" not in metrics


def test_entry_points_log_only_through_the_tracking_helpers():
    """Issue 13 item 5: no entry point imports MLflow itself (rank-0 logging, dataset sources
    and the registry live in ixmcts.tracking)."""
    import ast

    from conftest import ROOT

    users = set()
    for path in (ROOT / "entrypoints").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if any(n == "mlflow" or n.startswith("mlflow.") for n in names):
                users.add(path.name)
    assert users == set()


def test_logging_helpers_do_nothing_on_other_ranks(tracking_env, monkeypatch, tmp_path):
    from conftest import run_count

    monkeypatch.setenv("RANK", "1")
    with tracking.stage_run("sft", "p4g") as run:
        tracking.log_params({"a": 1})
        tracking.log_metrics({"m": 1.0})
        tracking.log_curve("train/loss", [(1, 0.5)])
        tracking.log_training_step({"loss": 0.5}, step=1)
        tracking.log_finals({"loss": [(1, 0.5)]})
        tracking.set_tags({"x": "y"})
        (tmp_path / "f.txt").write_text("x")
        tracking.log_artifact(str(tmp_path / "f.txt"), "data")
    assert run.info.run_id and mlflow.active_run() is None
    assert run_count(tracking_env) == 0
