"""Search shards and `merge`: one D_p from shards equals the unsharded search's D_p."""

import pytest

from fakes import ScriptedBackend
from ixmcts.data import load_conditions
from ixmcts.errors import IxmctsError
from ixmcts.scenarios import get_scenario
from ixmcts.search import SearchConfig, SearchEngine, extract_pairs
from ixmcts.search.merge import Shard, merge_shards

SETTINGS = {"scenario": "p4g", "K": "4", "e": "2", "T": "3", "seed": "1", "num_shards": "2"}


def shard(run_id, index, pairs, conditions, num_shards=2, **params):
    p = {**SETTINGS, "num_shards": str(num_shards), "shard": str(index), "threads": str(index + 1), **params}
    return Shard(run_id, p, pairs, [{"id": c} for c in conditions], {"base_model": "tiny"})


def pair(cond, chosen, rejected="no"):
    return {"condition_id": cond, "context": [{"role": "user", "content": cond}], "chosen": chosen, "rejected": rejected}


def test_pairs_come_back_in_unsharded_order_with_provenance_and_no_duplicates():
    a = shard("run-a", 0, [pair("c2", "x"), pair("c0", "y"), pair("c0", "y")], ["c0", "c2"])
    b = shard("run-b", 1, [pair("c3", "z"), pair("c1", "w")], ["c1", "c3"])
    merged = merge_shards([b, a])  # threads differ: how a shard ran does not matter
    assert [(p["condition_id"], p["chosen"]) for p in merged] == [("c0", "y"), ("c1", "w"), ("c2", "x"), ("c3", "z")]
    assert [(p["shard"], p["search_run"]) for p in merged] == [(0, "run-a"), (1, "run-b"), (0, "run-a"), (1, "run-b")]


@pytest.mark.parametrize("other, message", [
    (shard("run-b", 1, [], ["c1"], scenario="esc"), "different scenarios"),
    (shard("run-b", 1, [], ["c1"], K="8"), r"not shards of one search \(K: '4' vs '8'\)"),
    (shard("run-b", 0, [], ["c1"]), "shard 0 of 2 is given twice"),
    (shard("run-b", 1, [], ["c1"], num_shards=3), "not shards of one search"),
])
def test_shards_of_different_searches_are_refused(other, message):
    with pytest.raises(IxmctsError, match=message):
        merge_shards([shard("run-a", 0, [], ["c0"]), other])


def test_other_models_missing_shards_and_no_runs_are_refused():
    a = shard("run-a", 0, [pair("c0", "y")], ["c0"])
    b = shard("run-b", 1, [], ["c1"])
    b.models = {"base_model": "smollm2-135m-instruct"}
    with pytest.raises(IxmctsError, match="different models"):
        merge_shards([a, b])
    with pytest.raises(IxmctsError, match=r"shards \[1\] of 2 are missing"):
        merge_shards([a])
    assert len(merge_shards([a], allow_partial=True)) == 1
    with pytest.raises(IxmctsError, match="at least one search run"):
        merge_shards([])


def test_sharded_engine_searches_merge_to_the_unsharded_pairs():
    """Each tree samples with seeds of its own, so searching conditions i::n on n machines
    and merging gives the very pairs of one search over all conditions."""
    sc = get_scenario("p4g", language="en")
    conditions = load_conditions("p4g", "sample", 4)
    config = SearchConfig(K=4, e=2, T=4, budget=6, seed=2, closing=True)

    def run(conds):
        backend = ScriptedBackend()
        engine = SearchEngine(sc, backend, backend, conds, config)
        engine.run()
        return extract_pairs(engine.trees, sc)

    whole = run(conditions)
    shards = [shard(f"run-{i}", i, run(conditions[i::2]), [c.id for c in conditions[i::2]]) for i in range(2)]
    merged = merge_shards(shards)
    assert whole and [{k: v for k, v in p.items() if k not in ("shard", "search_run")} for p in merged] == whole


TINY = ["--scenario", "p4g", "--policy-model", "tiny", "--K", "4", "--e", "2", "--T", "3", "--num-conditions", "4",
        "--budget", "4", "--max-new-tokens", "12", "--threads", "1", "--seed", "5", "--closing", "true"]


def _search(tmp_path, *extra):
    from conftest import run_entrypoint

    proc = run_entrypoint("search", *TINY, *extra, "--checkpoint-dir", str(tmp_path / f"ckpt{'-'.join(extra)}"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_merge_entry_point_on_tiny_models_equals_one_unsharded_search(tracking_env, tmp_path, tiny_model):
    from mlflow.tracking import MlflowClient

    from conftest import run_entrypoint
    from ixmcts.io import read_jsonl

    client = MlflowClient(tracking_env)
    _search(tmp_path)
    _search(tmp_path, "--shard", "0", "--num-shards", "2")
    _search(tmp_path, "--shard", "1", "--num-shards", "2")
    exp = client.get_experiment_by_name("ixmcts-p4g")
    runs = client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])
    whole, s0, s1 = runs
    proc = run_entrypoint("merge", "--scenario", "p4g", "--runs", f"{s1.info.run_id},{s0.info.run_id}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (merged,) = [r for r in client.search_runs([exp.experiment_id]) if r.data.tags.get("ixmcts.method") == "merge"]
    assert merged.data.tags["ixmcts.stage"] == "search" and merged.info.status == "FINISHED"
    assert merged.data.tags["ixmcts.upstream.shards"] == f"{s1.info.run_id},{s0.info.run_id}"
    load = lambda run: read_jsonl(client.download_artifacts(run.info.run_id, "data/dp.jsonl", str(tmp_path / run.info.run_id)))  # noqa: E731
    expected, got = load(whole), load(merged)
    assert expected, "the unsharded search found no pairs; make it bigger"
    assert [{k: v for k, v in p.items() if k not in ("shard", "search_run")} for p in got] == expected
    assert merged.data.metrics["search/pairs"] == len(expected) and merged.data.metrics["search/trees"] == 4
    assert {p["search_run"] for p in got} <= {s0.info.run_id, s1.info.run_id}

    # shards of another search: one clear error, exit 2, no new run
    proc = run_entrypoint("merge", "--scenario", "p4g", "--runs", f"{whole.info.run_id},{s1.info.run_id}", cwd=tmp_path)
    assert proc.returncode == 2 and "not shards of one search" in proc.stderr
    proc = run_entrypoint("merge", "--scenario", "esc", "--runs", s0.info.run_id, cwd=tmp_path)
    assert proc.returncode == 2 and "not 'esc'" in proc.stderr
    assert len(client.search_runs([exp.experiment_id])) == 4
