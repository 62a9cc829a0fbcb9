"""The `human-eval` entry point: tracked policy runs in, a served study, and on SIGTERM the
ratings, annotations, Table 5 and Figure 3 logged on its MLflow run."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import httpx
import mlflow
import pytest
from mlflow.tracking import MlflowClient

from conftest import ROOT, run_count, run_entrypoint

RATING = {"a_supportiveness": "6", "a_willingness": "7", "b_supportiveness": "9", "b_willingness": "8"}


def fake_run(stage, scenario, artifact=None, **tags) -> str:
    """A FINISHED run tagged like the stage's own (the tiny base, no adapters: fast to load)."""
    with mlflow.start_run(experiment_id=mlflow.set_experiment(f"ixmcts-{scenario}").experiment_id) as run:
        mlflow.set_tags({"ixmcts.stage": stage, "ixmcts.scenario": scenario, "ixmcts.base_model": "tiny",
                         "ixmcts.num_adapters": "0", **tags})
        if artifact:
            mlflow.log_artifact(str(artifact), "data")
    return run.info.run_id


@pytest.fixture()
def upstream_runs(tracking_env, tmp_path, tiny_model):
    pairs = tmp_path / "dp.jsonl"
    pairs.write_text("".join(json.dumps({"scenario": "esc", "context": [{"role": "user", "content": f"problem {i}"}],
                                         "chosen": f"good {i}", "rejected": f"bad {i}", "chosen_value": 1.0,
                                         "rejected_value": 0.0}) + "\n" for i in range(4)))
    return {"sft": fake_run("sft", "esc", **{"ixmcts.role": "policy"}), "align": fake_run("align", "esc"),
            "search": fake_run("search", "esc", artifact=pairs), "simulator": fake_run("sft", "esc", **{"ixmcts.role": "simulator"})}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_served_study_is_logged_on_its_run_when_stopped(upstream_runs, tracking_env, tmp_path):
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(ROOT / "entrypoints" / "human_eval.py"), "--model-a-run", upstream_runs["sft"],
                             "--model-b-run", upstream_runs["align"], "--pairs-run", upstream_runs["search"],
                             "--port", str(port), "--max-new-tokens", "8", "--db", str(tmp_path / "study.db")],
                            cwd=tmp_path, env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180
        while True:
            assert proc.poll() is None, proc.stdout.read()
            try:
                if httpx.get(url + "/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                assert time.time() < deadline, "the app did not come up"
                time.sleep(0.5)
        with httpx.Client(base_url=url, follow_redirects=True, timeout=60, headers={"origin": url}) as c:
            token = c.post("/rate", data={"name": "r", "consent": "yes"}, follow_redirects=False).headers["location"].split("/")[2]
            for slot in ("A", "B"):
                assert c.post(f"/s/{token}/chat/{slot}", data={"message": "I feel alone."}).status_code == 200
            assert c.post(f"/s/{token}/rate", data=RATING).status_code == 200
            annotator = c.post("/annotate", data={"name": "a"}, follow_redirects=False).headers["location"]
            page = c.get(annotator).text
            assert "problem " in page
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert "1 rated sessions" in out

    client = MlflowClient(tracking_env)
    (run,) = client.search_runs([mlflow.get_experiment_by_name("ixmcts-esc").experiment_id],
                                filter_string="tags.`ixmcts.stage` = 'human-eval'")
    assert run.info.status == "FINISHED"
    assert run.data.tags["ixmcts.upstream.model_a"] == upstream_runs["sft"]
    assert run.data.metrics["human/ratings"] == 2 and run.data.metrics["human/pairs"] == 4
    assert run.data.metrics["human/Aligned_supportiveness"] in (6, 9)  # whichever slot it sat behind
    names = {a.path for a in client.list_artifacts(run.info.run_id, "human")}
    assert names == {f"human/{n}" for n in ("ratings.csv", "annotations.csv", "conversations.jsonl", "table5.md", "figure3.png")}
    ratings = open(client.download_artifacts(run.info.run_id, "human/ratings.csv", str(tmp_path))).read()
    assert upstream_runs["sft"] in ratings and upstream_runs["align"] in ratings

    # `compare` rebuilds Table 5 and Figure 3 from the tracked run (no evaluate runs needed)
    proc = run_entrypoint("compare", "--scenarios", "esc", "--output-dir", str(tmp_path / "results"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    table5 = (tmp_path / "results" / "human-esc" / "table5.md").read_text()
    assert table5.startswith("| Model | n | Supportiveness") and "| Aligned | 1 |" in table5 and "| SFT | 1 |" in table5
    assert (tmp_path / "results" / "human-esc" / "figure3.png").stat().st_size > 1000
    assert not (tmp_path / "results" / "table2.md").exists()


def test_bad_input_fails_before_a_run_starts(upstream_runs, tracking_env, tmp_path):
    before = run_count(tracking_env)
    cases = [
        (["--model-a-run", upstream_runs["sft"]], "needs model_a_run and model_b_run"),
        (["--model-a-run", upstream_runs["sft"], "--model-b-run", "0" * 32], "not found"),
        (["--model-a-run", upstream_runs["simulator"], "--model-b-run", upstream_runs["align"]], "trained the 'simulator'"),
        (["--model-a-run", upstream_runs["sft"], "--model-b-run", upstream_runs["search"]], "not a sft or align run"),
        (["--model-a-run", upstream_runs["sft"], "--model-b-run", upstream_runs["align"], "--host", "0.0.0.0"],
         "refusing to serve on 0.0.0.0"),
        (["--model-a-run", upstream_runs["sft"], "--model-b-run", upstream_runs["align"], "--scenario", "p4g"],
         "is for scenario 'esc', not 'p4g'"),
    ]
    for args, message in cases:
        proc = run_entrypoint("human_eval", *args, cwd=tmp_path)
        assert proc.returncode == 2 and message in proc.stderr, (args, proc.stderr)
    assert run_count(tracking_env) == before
    assert not (tmp_path / "human-eval").exists()


def mlflow_run_human_eval(tmp_path, uri, runs, port) -> subprocess.Popen:
    """`mlflow run . -e human-eval --env-manager local` as the README shows, as the leader of a
    process group of its own (as a terminal's job is): Ctrl-C signals the whole group."""
    bindir = str(Path(sys.executable).parent)  # `python entrypoints/human_eval.py` is this interpreter
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PATH": bindir + os.pathsep + os.environ.get("PATH", "")}
    env.pop("MLFLOW_RUN_ID", None)
    env.pop("MLFLOW_EXPERIMENT_ID", None)
    args = [str(Path(bindir) / "mlflow"), "run", str(ROOT), "-e", "human-eval", "--env-manager", "local",
            "--experiment-name", "ixmcts-esc", "-P", f"model_a_run={runs['sft']}", "-P", f"model_b_run={runs['align']}",
            "-P", f"pairs_run={runs['search']}", "-P", f"port={port}", "-P", "max_new_tokens=8",
            "-P", f"db={tmp_path / 'study.db'}", "-P", "threads=1"]
    return subprocess.Popen(args, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def wait_until_up(url: str, proc: subprocess.Popen, seconds: float = 300) -> None:
    deadline = time.time() + seconds
    while True:
        assert proc.poll() is None, proc.stdout.read()
        try:
            if httpx.get(url + "/healthz").status_code == 200:
                return
        except httpx.TransportError:
            assert time.time() < deadline, "the app did not come up"
            time.sleep(0.5)


def rate_one_session(url: str) -> None:
    with httpx.Client(base_url=url, follow_redirects=True, timeout=60, headers={"origin": url}) as c:
        token = c.post("/rate", data={"name": "r", "consent": "yes"}, follow_redirects=False).headers["location"].split("/")[2]
        for slot in ("A", "B"):
            assert c.post(f"/s/{token}/chat/{slot}", data={"message": "I feel alone."}).status_code == 200
        assert c.post(f"/s/{token}/rate", data=RATING).status_code == 200


def human_eval_run(uri: str):
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("ixmcts-esc").experiment_id],
                                filter_string="tags.`ixmcts.stage` = 'human-eval'")
    return client, run


@pytest.mark.slow
@pytest.mark.parametrize("signals", [(signal.SIGINT,), (signal.SIGTERM,), (signal.SIGINT, signal.SIGINT)],
                         ids=["ctrl-c", "sigterm", "ctrl-c-twice"])
def test_stopping_mlflow_run_by_its_process_group_still_logs_the_study(signals, upstream_runs, tracking_env, tmp_path):
    """Ctrl-C in a terminal (SIGINT to the whole process group: `mlflow run`, and the entry point
    under it), MLflow's own cancel (SIGTERM), or an impatient second Ctrl-C: the run ends
    FINISHED with every file the README promises on stop."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = mlflow_run_human_eval(tmp_path, tracking_env, upstream_runs, port)
    try:
        wait_until_up(url, proc)
        rate_one_session(url)
        for i, sig in enumerate(signals):
            if i:
                time.sleep(1)  # the second Ctrl-C lands while the first is being handled
            os.killpg(proc.pid, sig)
        out, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    # The entry point may outlive a parent that its signal killed, and an interrupted parent marks the
    # run FAILED once the entry point has exited (an MLflow bug the entry point's guard undoes): wait
    # for FINISHED, then check that nothing turns it back.
    deadline = time.time() + 180
    while human_eval_run(tracking_env)[1].info.status != "FINISHED" and time.time() < deadline:
        time.sleep(0.5)
    time.sleep(5)
    client, run = human_eval_run(tracking_env)
    assert run.info.status == "FINISHED", out
    names = {a.path for a in client.list_artifacts(run.info.run_id, "human")}
    assert names == {f"human/{n}" for n in ("ratings.csv", "annotations.csv", "conversations.jsonl", "table5.md", "figure3.png")}, out
    assert run.data.metrics["human/ratings"] == 2
    table5 = open(client.download_artifacts(run.info.run_id, "human/table5.md", str(tmp_path))).read()
    assert "| Aligned | 1 |" in table5 and "| SFT | 1 |" in table5


def test_the_finish_guard_undoes_only_the_launchers_late_failed(tracking_env):
    """What an interrupted `mlflow run` parent does after the entry point exited (marks the run
    FAILED although it is FINISHED) is undone once that parent is gone, whether the parent writes
    while the guard watches or before the guard has even started (it needs seconds to import
    MLflow: the race CI lost); a run that the entry point did not finish gets no guard."""
    from ixmcts.tracking import finish_guard

    client = MlflowClient(tracking_env)
    mark_failed = ("import sys, time; from mlflow import MlflowClient; time.sleep(float(sys.argv[3])); "
                   "MlflowClient(sys.argv[1]).set_terminated(sys.argv[2], 'FAILED')")
    for delay_s, parent_gone_first in ((1, False), (0, True)):
        finished = fake_run("human-eval", "esc")
        end_time = client.get_run(finished).info.end_time
        launcher = subprocess.Popen([sys.executable, "-c", mark_failed, tracking_env, finished, str(delay_s)])
        if parent_gone_first:
            launcher.wait()
            assert client.get_run(finished).info.status == "FAILED"
        assert finish_guard.keep_finished(finished, launcher.pid, end_time, wait_s=60, grace_s=0.5)
        launcher.wait()
        run = client.get_run(finished)
        assert run.info.status == "FINISHED" and run.info.end_time == end_time
        assert "FAILED" in run.data.tags[finish_guard.RESTORED_TAG]

    failed = fake_run("human-eval", "esc")
    client.set_terminated(failed, "FAILED")  # the entry point itself failed: nothing to keep
    with mock.patch.object(finish_guard.subprocess, "Popen") as popen:
        finish_guard.start(failed, os.getpid())
    popen.assert_not_called()
    assert client.get_run(failed).info.status == "FAILED"
