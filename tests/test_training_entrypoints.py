"""The training entry points chained on the tiny model, as the README shows, and their
refusals of bad upstream runs; what they leave in MLflow (live curves, registered models that
load elsewhere, datasets whose sources stay)."""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from conftest import ROOT, run_entrypoint
from ixmcts.io import read_jsonl

# every test here shares the tiny pipeline built by `chain` (minutes on 2 cores)
pytestmark = pytest.mark.slow

TRAIN = ["--base-model", "tiny", "--max-steps", "6", "--lr", "2e-3", "--max-length", "384"]


def ok(proc):
    assert proc.returncode == 0, proc.stderr[-3000:]
    return re.search(r"run ([0-9a-f]{32})", proc.stdout).group(1)


def fails(proc, message):
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], proc.stderr[-2000:]


LIVE_STEPS = 40  # the simulator's SFT runs long enough to be watched while it trains


def mlflow_run(entry_point: str, *params: str, cwd) -> subprocess.CompletedProcess:
    """`mlflow run <checkout> -e ENTRY --env-manager local -P k=v …`, as the README shows."""
    bindir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bindir + os.pathsep + os.environ.get("PATH", "")}
    env.pop("MLFLOW_RUN_ID", None)
    args = [str(Path(bindir) / "mlflow"), "run", str(ROOT), "-e", entry_point, "--env-manager", "local",
            "--experiment-name", "ixmcts-p4g", *[w for p in params for w in ("-P", p)]]
    return subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=1200)


def watch_training(args: list[str], cwd, uri: str, role: str) -> dict:
    """Run ``sft`` for ``role`` and poll its run meanwhile: the lengths of its ``train/loss``
    history seen while the run was still RUNNING."""
    out, err = open(cwd / f"sft-{role}.out", "w+"), open(cwd / f"sft-{role}.err", "w")
    proc = subprocess.Popen([sys.executable, str(ROOT / "entrypoints" / "sft.py"), "--role", role, *args], cwd=cwd,
                            stdout=out, stderr=err, text=True,
                            env={**os.environ, "MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL": "1"})  # a short run gets samples
    client, seen = MlflowClient(uri), []
    while proc.poll() is None:
        time.sleep(0.25)
        try:
            ids = [e.experiment_id for e in client.search_experiments()]
            running = client.search_runs(ids, f"tags.`ixmcts.role` = '{role}' and attributes.status = 'RUNNING'") if ids else []
            if running:
                seen.append(len(client.get_metric_history(running[0].info.run_id, "train/loss")))
        except Exception:  # the store is being created or written: look again
            continue
    out.seek(0)
    return {"returncode": proc.returncode, "stdout": out.read(), "stderr": (cwd / f"sft-{role}.err").read_text(),
            "seen_while_running": seen}


@pytest.fixture(scope="module")
def chain(tmp_path_factory, tiny_model):
    """sft(policy) → sft(simulator) → search → reward → preference → align, on one store; later
    stages take their upstream models as registered models (``models:/…@alias``)."""
    tmp = tmp_path_factory.mktemp("chain")
    old = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri = f"sqlite:///{tmp / 'mlruns.db'}"
    try:
        runs = {"policy": ok(run_entrypoint("sft", "--role", "policy", *TRAIN, cwd=tmp))}
        live = watch_training([*TRAIN[:2], "--max-steps", str(LIVE_STEPS), *TRAIN[4:]], tmp, uri, "simulator")
        runs["simulator"] = ok(SimpleNamespace(**live))
        runs["search"] = ok(run_entrypoint(
            "search", "--policy-run", runs["policy"], "--simulator-run", runs["simulator"], "--K", "4", "--e", "2", "--T", "3",
            # no closing question: the tiny simulator answers it with $2 on every branch (so no pairs); its
            # own turns' donations differ between branches
            "--num-conditions", "6", "--max-new-tokens", "16", "--closing", "false", "--threads", "1", "--seed", "2", cwd=tmp))
        runs["reward"] = ok(mlflow_run("reward", f"search_run={runs['search']}", "max_steps=6", "lr=2e-3", "max_length=384",
                                       cwd=tmp))
        runs["preference"] = ok(run_entrypoint("preference", "--policy-run", runs["policy"],
                                               "--reward-run", "models:/ixmcts-p4g-reward@engagement",
                                               "--num-contexts", "5", "--n", "3", "--max-new-tokens", "12", cwd=tmp))
        runs["align"] = ok(mlflow_run("align", "policy_run=models:/ixmcts-p4g-policy@sft", f"preference_run={runs['preference']}",
                                      "max_steps=6", "lr=2e-3", "max_length=384", cwd=tmp))
        client = MlflowClient(uri)
        aliases = {f"{name}@{alias}": client.get_model_version_by_alias(name, alias).run_id
                   for name, alias in (("ixmcts-p4g-policy", "sft"), ("ixmcts-p4g-policy", "aligned"),
                                       ("ixmcts-p4g-simulator", "sft"), ("ixmcts-p4g-reward", "engagement"))}
        yield {"uri": uri, "tmp": tmp, "runs": runs, "live": live, "aliases": aliases}
    finally:
        os.environ.pop("MLFLOW_EXPERIMENT_ID", None)  # set by mlflow.set_experiment in the tests below
        if old is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = old


def test_each_stage_names_its_upstream_runs(chain):
    client, runs = MlflowClient(chain["uri"]), chain["runs"]
    tags = {name: client.get_run(rid).data.tags for name, rid in runs.items()}
    assert tags["policy"]["ixmcts.role"] == "policy" and tags["simulator"]["ixmcts.role"] == "simulator"
    assert tags["search"]["ixmcts.upstream.policy"] == runs["policy"]
    assert tags["search"]["ixmcts.upstream.simulator"] == runs["simulator"]
    assert tags["reward"]["ixmcts.upstream.search"] == runs["search"]
    assert tags["preference"]["ixmcts.upstream.reward"] == runs["reward"]
    assert tags["align"]["ixmcts.upstream.preference"] == runs["preference"]
    assert all(t["ixmcts.profile"] == "cpu" and t["ixmcts.scenario"] == "p4g" for t in tags.values())


def test_sft_logs_loss_dataset_adapter_and_model(chain):
    client = MlflowClient(chain["uri"])
    run = client.get_run(chain["runs"]["policy"])
    losses = client.get_metric_history(run.info.run_id, "train/loss")
    assert len(losses) == 6 and "train/loss_final" in run.data.metrics
    assert {d.dataset.name for d in run.inputs.dataset_inputs} == {"sft-policy"}
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"adapters", "data"}
    mlflow.set_tracking_uri(chain["uri"])
    info = mlflow.models.get_model_info(f"runs:/{run.info.run_id}/model")  # MLflow 3: a LoggedModel of the run
    assert "python_function" in info.flavors
    assert run.data.params["base_model"] == "tiny" and run.data.params["lr"] == "0.002"


def test_reward_and_preference_metrics_and_provenance(chain):
    client = MlflowClient(chain["uri"])
    reward = client.get_run(chain["runs"]["reward"]).data.metrics
    assert 0.0 <= reward["reward/accuracy"] <= 1.0 and "reward/margin" in reward
    # the accuracy's interval brackets it (issue 17: report it with a CI)
    assert reward["reward/accuracy_ci_low"] <= reward["reward/accuracy"] <= reward["reward/accuracy_ci_high"]
    assert 0.0 < reward["reward/accuracy_p_vs_chance"] <= 1.0
    pref = client.get_run(chain["runs"]["preference"])
    d = read_jsonl(client.download_artifacts(pref.info.run_id, "data/d.jsonl", str(chain["tmp"] / "d")))
    sources = [p["source"] for p in d]
    assert sources.count("search") == pref.data.metrics["preference/dp_pairs"] > 0
    assert sources.count("rm") == pref.data.metrics["preference/dt_pairs"] > 0
    assert {x.dataset.name for x in pref.inputs.dataset_inputs} == {"D_p", "sft-policy", "D_t", "D"}


def test_aligned_model_reloads_from_mlflow_and_generates(chain):
    mlflow.set_tracking_uri(chain["uri"])
    run = MlflowClient(chain["uri"]).get_run(chain["runs"]["align"])
    assert run.data.tags["ixmcts.num_adapters"] == "2"  # SFT adapter, then the DPO adapter
    assert "train/rewards_margins_final" in run.data.metrics
    model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    messages = [{"role": "system", "content": "You are a persuader."}, {"role": "user", "content": "Hi."}]
    out = model.predict(pd.DataFrame({"messages": [json.dumps(messages), json.dumps(messages)]}))
    assert len(out) == 2 and all(isinstance(t, str) and t for t in out)


def test_training_curve_is_logged_while_the_run_is_running(chain):
    """Issue 15: the loss history shows more than one step while training still runs, and
    it grows during the run (logged step by step, not all at the end)."""
    seen = chain["live"]["seen_while_running"]
    assert any(n > 1 for n in seen), seen
    assert any(1 < n < LIVE_STEPS for n in seen), seen  # a partial history: logged while training
    client = MlflowClient(chain["uri"])
    sim = chain["runs"]["simulator"]
    assert len(client.get_metric_history(sim, "train/loss")) == LIVE_STEPS  # once per step, not again at the end
    assert any(k.startswith("system/") for k in client.get_run(sim).data.metrics)  # system metrics on CPU


def test_registry_aliases_point_at_the_stages_runs(chain):
    runs, aliases = chain["runs"], chain["aliases"]
    assert aliases == {"ixmcts-p4g-policy@sft": runs["policy"], "ixmcts-p4g-policy@aligned": runs["align"],
                       "ixmcts-p4g-simulator@sft": runs["simulator"], "ixmcts-p4g-reward@engagement": runs["reward"]}
    tags = MlflowClient(chain["uri"]).get_run(runs["align"]).data.tags
    # align was given the SFT policy as models:/…@sft: the run behind it is recorded
    assert tags["ixmcts.upstream.policy"] == runs["policy"]
    assert tags["ixmcts.upstream.policy_model"] == "models:/ixmcts-p4g-policy@sft"
    assert tags["ixmcts.registered_model"] == "models:/ixmcts-p4g-policy@aligned"


def test_registered_policy_answers_from_another_folder(chain, tmp_path_factory):
    """`mlflow models predict -m models:/ixmcts-p4g-policy@sft --env-manager local` in a folder
    that is not the checkout, and a Python process there that loads the model: the project
    package comes from the model itself."""
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    messages = [{"role": "system", "content": "You are a persuader."}, {"role": "user", "content": "Hi, who are you?"}]
    (elsewhere / "input.json").write_text(json.dumps({"dataframe_split": {"columns": ["messages"],
                                                                          "data": [[json.dumps(messages)]]}}))
    cli = subprocess.run([str(Path(sys.executable).with_name("mlflow")), "models", "predict", "-m", "models:/ixmcts-p4g-policy@sft",
                          "-i", "input.json", "-t", "json", "--env-manager", "local", "-o", "out.json"],
                         cwd=elsewhere, env=env, capture_output=True, text=True, timeout=600)
    assert cli.returncode == 0, cli.stderr[-3000:]
    answer = json.loads((elsewhere / "out.json").read_text())["predictions"]
    assert len(answer) == 1 and isinstance(answer[0], str) and answer[0].strip()
    script = ("import json, sys, mlflow, pandas as pd\n"
              "m = mlflow.pyfunc.load_model('models:/ixmcts-p4g-policy@sft')\n"
              f"out = m.predict(pd.DataFrame({{'messages': [{json.dumps(json.dumps(messages))}]}}))\n"
              "import ixmcts\n"
              "print(json.dumps({'answer': list(out), 'package': ixmcts.__file__}))\n")
    py = subprocess.run([sys.executable, "-c", script], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=600)
    assert py.returncode == 0, py.stderr[-3000:]
    result = json.loads(py.stdout.strip().splitlines()[-1])
    assert result["answer"][0].strip()
    assert not Path(result["package"]).resolve().is_relative_to(ROOT)  # the copy inside the model, not this checkout


def test_registered_reward_model_scores_a_response(chain):
    mlflow.set_tracking_uri(chain["uri"])
    model = mlflow.pyfunc.load_model("models:/ixmcts-p4g-reward@engagement")
    context = json.dumps([{"role": "user", "content": "Hi."}])
    scores = model.predict(pd.DataFrame({"context": [context, context], "response": ["Hello there.", "Bye."]}))
    assert len(scores) == 2 and all(isinstance(float(s), float) for s in scores)
    assert model.metadata.get_input_schema().input_names() == ["context", "response"]


def _dataset_inputs(uri):
    client = MlflowClient(uri)
    ids = [e.experiment_id for e in client.search_experiments()]
    for run in client.search_runs(ids):
        for d in run.inputs.dataset_inputs:
            yield run, d.dataset, {t.key: t.value for t in d.tags}


def test_every_dataset_input_has_a_source_that_still_exists(chain, evaluated, tmp_path):
    """Issue 15: sources point at a run's artifact location, not a deleted temporary folder;
    consumers log what they use (context training / evaluation), so D_p → reward → D → align."""
    mlflow.set_tracking_uri(chain["uri"])
    seen = {}
    for i, (run, dataset, tags) in enumerate(_dataset_inputs(chain["uri"])):
        source = json.loads(dataset.source)["uri"]
        local = mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(tmp_path / str(i)))
        assert Path(local).is_file() and Path(local).stat().st_size > 0, source
        seen[(run.info.run_id, dataset.name, tags["mlflow.data.context"])] = (dataset.digest, source)
    runs = chain["runs"]
    dp_search = seen[(runs["search"], "D_p", "output")]
    assert seen[(runs["reward"], "D_p", "training")] == dp_search  # the same dataset, at the search run
    d_preference = seen[(runs["preference"], "D", "output")]
    assert seen[(runs["align"], "D", "training")] == d_preference
    assert (runs["policy"], "sft-policy", "training") in seen
    assert all((rid, "eval-conditions", "evaluation") in seen for rid in evaluated.values())


def test_evaluation_is_logged_against_the_evaluated_model(chain, evaluated):
    """Issue 15: the SFT and Aligned evaluations are metrics of the policy's LoggedModel."""
    mlflow.set_tracking_uri(chain["uri"])
    client = MlflowClient(chain["uri"])
    for method, trained in (("sft", "policy"), ("aligned", "align")):
        model_id = client.get_run(chain["runs"][trained]).data.tags["ixmcts.model_id"]
        metrics = {m.key: m.value for m in mlflow.get_logged_model(model_id).metrics or []}
        assert metrics["eval/donation_mean"] == client.get_run(evaluated[method]).data.metrics["eval/donation_mean"]


def _fake_run(stage, scenario, **tags):
    with mlflow.start_run(experiment_id=mlflow.set_experiment(f"ixmcts-{scenario}").experiment_id) as run:
        mlflow.set_tags({"ixmcts.stage": stage, "ixmcts.scenario": scenario, **tags})
        return run.info.run_id


def _stage_runs(uri, stage):
    client = MlflowClient(uri)
    ids = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(ids, filter_string=f"tags.`ixmcts.stage` = '{stage}'")


def test_bad_upstream_runs_fail_before_any_work(chain, tmp_path):
    mlflow.set_tracking_uri(chain["uri"])
    runs, tmp = chain["runs"], chain["tmp"]
    before = {s: len(_stage_runs(chain["uri"], s)) for s in ("sft", "search", "reward", "preference", "align")}

    empty = _fake_run("search", "p4g", **{"ixmcts.base_model": "tiny"})
    (tmp_path / "dp.jsonl").write_text("")
    MlflowClient(chain["uri"]).log_artifact(empty, str(tmp_path / "dp.jsonl"), "data")
    MlflowClient(chain["uri"]).set_terminated(empty)
    fails(run_entrypoint("reward", "--search-run", empty, *TRAIN[2:], cwd=tmp), "D_p is empty")

    esc_reward = _fake_run("reward", "esc")
    MlflowClient(chain["uri"]).set_terminated(esc_reward)
    fails(run_entrypoint("preference", "--policy-run", runs["policy"], "--reward-run", esc_reward, cwd=tmp),
          "is for scenario 'esc', not 'p4g'")

    other_base = _fake_run("preference", "p4g", **{"ixmcts.base_model": "smollm2-135m-instruct"})
    MlflowClient(chain["uri"]).set_terminated(other_base)
    fails(run_entrypoint("align", "--policy-run", runs["policy"], "--preference-run", other_base, cwd=tmp),
          "the base models do not match")

    fails(run_entrypoint("align", "--policy-run", runs["simulator"], "--preference-run", runs["preference"], cwd=tmp),
          "trained the 'simulator', not the policy")
    fails(run_entrypoint("search", "--policy-run", "0" * 32, cwd=tmp), "not found")
    fails(run_entrypoint("reward", "--search-run", runs["policy"], cwd=tmp), "is a sft run, not a search run")
    bad_lr = run_entrypoint("sft", "--lr", "fast", "--base-model", "tiny", cwd=tmp)  # click's usage error
    assert bad_lr.returncode == 2 and "lr must be a number, got 'fast'" in bad_lr.stderr, bad_lr.stderr[-2000:]

    fakes = {empty, esc_reward, other_base}
    for stage, count in before.items():  # no refused command left a run of its own, finished or not
        assert len([r for r in _stage_runs(chain["uri"], stage) if r.info.run_id not in fakes]) == count


EVAL = ["--num-interactions", "3", "--conditions-offset", "10", "--max-turns", "6", "--max-new-tokens", "12",
        "--closing", "true", "--threads", "1"]


@pytest.fixture(scope="module")
def evaluated(chain):
    runs, tmp = chain["runs"], chain["tmp"]
    sim = ["--simulator-run", runs["simulator"]]
    return {
        "sft": ok(run_entrypoint("evaluate", "--method", "sft", "--policy-run", runs["policy"], *sim, *EVAL, cwd=tmp)),
        "bon": ok(run_entrypoint("evaluate", "--method", "bon", "--reward", "engagement", "--policy-run", runs["policy"],
                                 "--reward-run", runs["reward"], *sim, *EVAL, cwd=tmp)),
        "strategy": ok(run_entrypoint("evaluate", "--method", "bon", "--reward", "strategy", "--policy-run", runs["policy"],
                                      *sim, *EVAL, cwd=tmp)),
        "aligned": ok(run_entrypoint("evaluate", "--method", "aligned", "--aligned-run", runs["align"], *sim, *EVAL, cwd=tmp)),
    }


def test_evaluate_every_method_on_the_same_conditions(chain, evaluated):
    runs, tmp, ids = chain["runs"], chain["tmp"], evaluated
    client = MlflowClient(chain["uri"])
    conditions = None
    for name, rid in ids.items():
        run = client.get_run(rid)
        m = run.data.metrics
        assert run.data.tags["ixmcts.stage"] == "evaluate" and m["eval/interactions"] == 3
        assert m["eval/donation_mean_ci_low"] <= m["eval/donation_mean"] <= m["eval/donation_mean_ci_high"]
        records = read_jsonl(client.download_artifacts(rid, "data/interactions.jsonl", str(tmp / rid)))
        assert all(r["ended"] for r in records)  # the closing question at the turn limit
        ids_here = [r["condition_id"] for r in records]
        conditions = conditions or ids_here
        assert ids_here == conditions  # paired: every method sees the same held-out conditions
        if name in ("bon", "strategy"):
            assert all(0 <= k < 3 for r in records for k in r["chosen"])
    assert client.get_run(ids["bon"]).data.tags["ixmcts.reward"] == "engagement"
    fails(run_entrypoint("evaluate", "--method", "aligned", *EVAL, cwd=tmp), "needs aligned_run")
    fails(run_entrypoint("evaluate", "--method", "bon", "--policy-run", runs["policy"], *EVAL, cwd=tmp), "needs reward_run")


def test_aligned_evaluation_measures_how_far_dpo_moved_the_policy(chain, evaluated):
    """Issue 17: the aligned evaluation logs KL(π_aligned ‖ π_sft) over its own policy turns (every
    one of its 3 dialogues: fewer than kl_dialogues); DPO trained an adapter, so it moved (> 0).
    The other methods have no reference to move from."""
    client = MlflowClient(chain["uri"])
    run = client.get_run(evaluated["aligned"])
    records = read_jsonl(client.download_artifacts(run.info.run_id, "data/interactions.jsonl", str(chain["tmp"] / "kl")))
    m = run.data.metrics
    assert m["eval/kl_responses"] == sum(t["role"] == "model" and bool(t["raw"]) for r in records for t in r["turns"])
    assert m["eval/kl_per_token"] > 0 and m["eval/kl_per_response"] > 0
    assert not any(k.startswith("eval/kl_") for k in client.get_run(evaluated["sft"]).data.metrics)


def test_compare_builds_table2_from_the_tracked_evaluate_runs(chain, evaluated):
    out = chain["tmp"] / "results"
    proc = run_entrypoint("compare", "--output-dir", str(out), cwd=chain["tmp"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    md = (out / "table2.md").read_text()
    sft = next(l for l in md.splitlines() if l.startswith("| SFT"))
    assert sft.split(" | ")[2] == "—"  # no ESC evaluation was run: missing, not filled in
    assert "[" in sft.split(" | ")[6] and sft.split(" | ")[8] == "3"  # the P4G donation with its CI; P4G n: 3 dialogues
    assert (out / "table2.png").exists() and (out / "table2.csv").exists() and (out / "table2.tex").exists()
    assert "profile `cpu`" in md


def test_sensitivity_check_on_the_registered_simulator(chain):
    """Issue 17 item 1, as the README runs it: the SFT simulator (by its registry alias) against
    replayed and off-task persuaders; a missing corpus is refused before any run."""
    tmp, out = chain["tmp"], chain["tmp"] / "sensitivity-results"
    proc = run_entrypoint("sensitivity", "--simulator-run", "models:/ixmcts-p4g-simulator@sft", "--data-dir", "sample",
                          "--conditions", "sample", "--conditions-offset", "0", "--num-dialogues", "3", "--max-turns", "4",
                          "--max-new-tokens", "8", "--threads", "1", "--output-dir", str(out), cwd=tmp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = MlflowClient(chain["uri"]).search_runs([MlflowClient(chain["uri"]).get_experiment_by_name("ixmcts-p4g").experiment_id],
                                                 "tags.`ixmcts.stage` = 'sensitivity'")[0]
    m = run.data.metrics
    assert run.info.status == "FINISHED" and m["sensitivity/dialogues"] == 3
    assert m["sensitivity/difference"] == pytest.approx(m["sensitivity/donation_replayed"] - m["sensitivity/donation_off_task"])
    assert 0 <= m["sensitivity/p_value"] <= 1 and m["sensitivity/difference_ci_low"] <= m["sensitivity/difference_ci_high"]
    assert run.data.tags["ixmcts.upstream.simulator"] == chain["runs"]["simulator"]
    assert "persuader | mean donation $" in (out / "sensitivity.md").read_text()
    env_without_corpus = {k: v for k, v in os.environ.items() if k != "IXMCTS_P4G_DIR"}
    proc = subprocess.run([sys.executable, str(ROOT / "entrypoints" / "sensitivity.py"), "--simulator-run",
                           chain["runs"]["simulator"]], cwd=tmp, capture_output=True, text=True, env=env_without_corpus)
    fails(proc, "pass data_dir")
    fails(run_entrypoint("sensitivity", "--data-dir", "sample", cwd=tmp), "give the simulator")


def test_training_runs_data_parallel_with_one_run_logged_by_rank_0(chain):
    """`-P num_processes=2` relaunches the stage under torchrun (gloo on CPU, NCCL on GPUs):
    both processes train, only rank 0 opens and logs the stage's run."""
    client, runs, tmp = MlflowClient(chain["uri"]), chain["runs"], chain["tmp"]
    for stage, args in (("sft", ["--role", "policy", *TRAIN]),
                        ("align", ["--policy-run", runs["policy"], "--preference-run", runs["preference"], "--max-steps", "4",
                                   "--max-length", "384"])):
        before = {r.info.run_id for r in _stage_runs(chain["uri"], stage)}
        proc = run_entrypoint(stage, *args, "--num-processes", "2", cwd=tmp)
        run_id = ok(proc)
        assert proc.stdout.count(f"{stage} run ") == 1  # rank 1 prints and logs nothing
        new = [r for r in _stage_runs(chain["uri"], stage) if r.info.run_id not in before]
        assert [r.info.run_id for r in new] == [run_id] and new[0].info.status == "FINISHED"
        assert new[0].data.tags["ixmcts.world_size"] == "2"
        adapters = {a.path for a in client.list_artifacts(run_id, "adapters")}
        assert len(adapters) == int(new[0].data.tags["ixmcts.num_adapters"]) == (1 if stage == "sft" else 2)
        assert client.get_metric_history(run_id, "train/loss")
