"""The `search` entry point end to end on the tiny model: D_p, the MLflow run, resume, bad input."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from mlflow.tracking import MlflowClient

from conftest import ROOT, run_entrypoint
from ixmcts.io import read_jsonl

TINY = ["--policy-model", "tiny", "--K", "4", "--e", "2", "--T", "3", "--num-conditions", "3",
        "--max-new-tokens", "16", "--threads", "1", "--closing", "true"]


def runs(uri, scenario):
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(f"ixmcts-{scenario}")
    return client, (client.search_runs([exp.experiment_id]) if exp else [])


@pytest.mark.parametrize("scenario", ["p4g", "esc"])
def test_search_run_logs_pairs_params_metrics_datasets_and_artifacts(scenario, tracking_env, tmp_path, tiny_model):
    proc = run_entrypoint("search", "--scenario", scenario, *TINY, "--budget", "6", "--seed", "3",
                          "--checkpoint-dir", str(tmp_path / "ckpt"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    client, found = runs(tracking_env, scenario)
    (run,) = found
    assert run.info.status == "FINISHED"
    assert run.data.tags["ixmcts.stage"] == "search" and run.data.tags["ixmcts.scenario"] == scenario
    assert run.data.tags["ixmcts.profile"] == "cpu" and run.data.tags["ixmcts.reward"] == "engagement"
    p = run.data.params
    assert (p["scenario"], p["K"], p["e"], p["T"], p["policy_model"], p["budget"]) == (scenario, "4", "2", "3", "tiny", "6")
    m = run.data.metrics
    # 3 trees × budget 6: each trajectory either finished a conversation or was pruned away
    assert m["search/trees"] == 3 and m["search/trajectories"] + m["search/pruned_trajectories"] == 18
    assert m["search/nodes"] > 3 and m["search/llm_calls"] > 0 and m["search/generated_tokens"] > 0
    assert m["search/wall_sec"] > 0 and "search/engaged_trajectories" in m
    arts = {a.path for a in client.list_artifacts(run.info.run_id, "data")}
    assert {"data/dp.jsonl", "data/trees.jsonl.gz", "data/conditions.jsonl"} <= arts
    local = client.download_artifacts(run.info.run_id, "data", str(tmp_path / "dl"))
    pairs = read_jsonl(os.path.join(local, "dp.jsonl"))
    assert m["search/pairs"] == len(pairs)
    gaps = sorted(p["chosen_value"] - p["rejected_value"] for p in pairs)  # the median by its definition
    assert gaps or scenario == "esc"  # the tiny P4G search finds pairs, so the median is checked there
    if gaps:
        middle = (gaps[(len(gaps) - 1) // 2] + gaps[len(gaps) // 2]) / 2
        assert m["search/pair_value_gap_median"] == pytest.approx(middle) and middle > 0
    else:  # no pairs: no gap, and a NaN metric is left out of the run
        assert "search/pair_value_gap_median" not in m
    trees = read_jsonl(os.path.join(local, "trees.jsonl.gz"))
    assert len(trees) == 3 and sum(t["nodes"][0]["N"] for t in trees) == m["search/trajectories"]
    contexts = {"conditions"} | ({"D_p"} if pairs else set())
    assert {d.dataset.name for d in run.inputs.dataset_inputs} == contexts
    for pair in pairs:
        assert pair["scenario"] == scenario and pair["chosen_value"] > pair["rejected_value"]
        assert pair["context"][0]["role"] == "system" and pair["chosen_node"] != pair["rejected_node"]
    # with the closing question every conversation at depth T ends with a real engagement
    at_t = [n for t in trees for n in t["nodes"] if n["role"] == "user" and n["depth"] == 3]
    assert at_t and all(n["terminal"] and n["ended"] and n["reward"] is not None for n in at_t)
    # D_p is exactly what the trees imply: every pair of visited siblings whose values differ
    expected = set()
    for t in trees:
        nodes = t["nodes"]
        for u in nodes:
            kids = [nodes[i] for i in u["children"] if nodes[i]["N"] > 0]
            for a in kids:
                for b in kids:
                    if a["Q"] / a["N"] > b["Q"] / b["N"]:
                        expected.add((t["condition"]["id"], a["id"], b["id"]))
    assert {(q["condition_id"], q["chosen_node"], q["rejected_node"]) for q in pairs} == expected
    assert p["closing"] == "True"


def _checkpoint_step(path):
    import gzip

    try:
        return json.loads(gzip.decompress(path.read_bytes()))["stats"]["steps"]
    except (OSError, ValueError, KeyError):
        return 0


def test_killed_search_resumes_to_the_same_pairs(tracking_env, tmp_path, tiny_model):
    args = ["--scenario", "p4g", "--policy-model", "tiny", "--K", "6", "--e", "3", "--T", "6", "--num-conditions", "6",
            "--budget", "6", "--max-new-tokens", "24", "--threads", "1", "--seed", "11", "--closing", "true"]
    ckpt = tmp_path / "killed"
    cmd = [sys.executable, str(ROOT / "entrypoints" / "search.py"), *args, "--checkpoint-dir", str(ckpt)]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while _checkpoint_step(ckpt / "checkpoint.json.gz") < 3 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the search finished before it could be killed; make it longer"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = _checkpoint_step(ckpt / "checkpoint.json.gz")
    assert killed_at >= 3

    resumed = run_entrypoint("search", *args, "--checkpoint-dir", str(ckpt), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"at step {killed_at}" in resumed.stderr
    fresh = run_entrypoint("search", *args, "--checkpoint-dir", str(tmp_path / "fresh"), cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stderr[-3000:]

    client, found = runs(tracking_env, "p4g")
    finished = sorted((r for r in found if r.info.status == "FINISHED"), key=lambda r: r.info.start_time)
    assert len(finished) == 2
    dp = [read_jsonl(client.download_artifacts(r.info.run_id, "data/dp.jsonl", str(tmp_path / r.info.run_id))) for r in finished]
    trees = [read_jsonl(client.download_artifacts(r.info.run_id, "data/trees.jsonl.gz", str(tmp_path / r.info.run_id)))
             for r in finished]
    assert dp[0] == dp[1] and trees[0] == trees[1] and len(trees[0]) == 6  # the resumed search is the same search
    assert finished[0].data.metrics["search/resumed_at_step"] == killed_at
    assert finished[0].data.metrics["search/nodes"] == finished[1].data.metrics["search/nodes"]


def _write_bad_corpus(tmp_path):
    from ixmcts.data.samples import P4G_DIR, P4G_FILES

    d = tmp_path / "bad_p4g"
    d.mkdir()
    (d / "full_dialog.csv").write_text((P4G_DIR / P4G_FILES["dialog_csv"]).read_text())
    lines = (P4G_DIR / P4G_FILES["info_csv"]).read_text().splitlines()
    header = lines[0].split(",")
    drop = header.index("B6")
    (d / "full_info.csv").write_text("\n".join(",".join(c for i, c in enumerate(l.split(",")) if i != drop) for l in lines))
    return d


def _write_malformed_psyqa(tmp_path):
    f = tmp_path / "psyqa.json"
    f.write_text('[{"questionID": 1, "description": "sad"},')
    return f


def _write_corpus_with_empty_dialogue(tmp_path):
    from ixmcts.data.samples import P4G_DIR, P4G_FILES

    d = tmp_path / "empty_p4g"
    d.mkdir()
    (d / "full_info.csv").write_text((P4G_DIR / P4G_FILES["info_csv"]).read_text())
    (d / "full_dialog.csv").write_text((P4G_DIR / P4G_FILES["dialog_csv"]).read_text() + '99999," ",0,0,20240101-000003_sample_x\n')
    return d


@pytest.mark.parametrize("args,message", [
    (["--scenario", "chess"], "'chess' is not one of 'esc', 'p4g'"),
    (["--K", "0"], "K must be at least 1"),
    (["--e", "0"], "e must be at least 1"),
    (["--conditions", "nowhere.jsonl"], "nowhere.jsonl: file not found"),
    (["--conditions", "synth", "--data-dir", "BAD"], r"full_info.csv: missing column(s) B6"),
    (["--scenario", "esc", "--conditions", "MALFORMED"], "psyqa.json: malformed JSON at line 1"),
    (["--conditions", "corpus", "--data-dir", "EMPTY"], "dialogue 20240101-000003_sample_x: empty dialogue"),
])
def test_bad_input_fails_clearly_with_no_pairs_and_no_finished_run(args, message, tracking_env, tmp_path):
    make = {"BAD": _write_bad_corpus, "MALFORMED": _write_malformed_psyqa, "EMPTY": _write_corpus_with_empty_dialogue}
    args = [str(make[a](tmp_path)) if a in make else a for a in args]
    proc = run_entrypoint("search", "--policy-model", "tiny", *args, cwd=tmp_path)
    assert proc.returncode == 2
    err = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
    assert len(err) == 1 and message in err[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    for scenario in ("p4g", "esc"):
        assert not runs(tracking_env, scenario)[1]
    assert not list(tmp_path.rglob("dp.jsonl"))
