"""Hostile input and faults (issue 18): one clear error (exit 2, one line naming the file,
record or parameter, no traceback), nothing written, no model loaded for bad parameters;
a failed write keeps the previous outputs whole; a damaged checkpoint is named."""

import csv
import errno
import gzip
import json
import math
import os
import shutil
import subprocess
import time

import pytest
from click.testing import CliRunner

from fakes import ScriptedBackend
from ixmcts.cli import main as cli
from ixmcts.data import load_conditions
from ixmcts.data.esc import load_psyqa
from ixmcts.data.p4g import load_p4g, read_info
from ixmcts.data.samples import P4G_DIR, P4G_FILES
from ixmcts.errors import IxmctsError
from ixmcts.search import run as search_run
from ixmcts.search.run import SearchParams, run_search

# a search for the scripted backend (no model): 2 trees, K 6, e 3, depth 5 (about 10 steps)
SMALL = dict(scenario="esc", policy_model="tiny", num_conditions=2, K=6, e=3, T=5, closing=True, max_new_tokens=8)


def no_model_load(*args, **kwargs):
    raise AssertionError("a model was loaded although the input is refused")


def scripted_backends(backend):
    return lambda specs, kind="transformers", **kw: {name: backend for name in specs}


@pytest.fixture()
def refuse_model_loads(monkeypatch):
    monkeypatch.setattr("ixmcts.llm.make_backends", no_model_load)


def cli_search(tmp_path, *args):
    """`ixmcts search … --output-dir out` as a user types it; returns (result, output folder)."""
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["search", "--output-dir", str(out), "--checkpoint-dir", str(tmp_path / "ckpt"), *args])
    return result, out


def assert_refused(result, *words):
    """Exit 2 with one `error:` line naming ``words``, and no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    # MLflow's own INFO lines (a first-time store creation) are not ours
    lines = [line for line in result.stderr.splitlines() if line.strip() and " INFO mlflow." not in line]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    for w in words:
        assert w in lines[0], (w, lines[0])


@pytest.fixture()
def read_only_dir(tmp_path):
    """A folder nobody can write into, root included (chmod does not stop root: an immutable
    attribute does)."""
    made = []

    def make(path):
        path.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            path.chmod(0o555)
        elif subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
            pytest.skip("running as root where chattr +i is not supported: cannot make a read-only folder")
        made.append(path)
        return path

    yield make
    for p in made:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(p)], capture_output=True)
        else:
            p.chmod(0o755)


# -- item 9/10: bad parameters are refused before any model loads, nothing written ----------------------------

@pytest.mark.parametrize("args, named", [
    (["--threads", "-1"], "threads"),
    (["--batch-size", "0"], "batch_size"),
    (["--c", "nan"], "c"),
    (["--c", "inf"], "c"),
    (["--gamma", "nan"], "gamma"),
    (["--gamma", "-inf"], "gamma"),
    (["--pair-margin", "nan"], "pair_margin"),
    (["--pair-margin", "inf"], "pair_margin"),
    (["--num-conditions", "-1"], "num_conditions"),
    (["--num-conditions", "0"], "num_conditions"),
])
def test_bad_search_parameters_are_refused_before_a_model_loads(args, named, tmp_path, refuse_model_loads):
    result, out = cli_search(tmp_path, *args)
    assert_refused(result, named, args[1])
    assert not out.exists() and not (tmp_path / "ckpt").exists()


def test_evaluate_refuses_negative_threads_before_a_model_loads():
    from ixmcts.evaluate.params import EvaluateParams

    with pytest.raises(IxmctsError, match="threads must be at least 0, got -1"):
        EvaluateParams(threads=-1)


def _jsonl(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("lines, words", [
    (['{"id": "a", "description": "I am tired."}', "5"], ["line 2", "not a JSON object"]),
    (['{"id": "a", "description": null}'], ["line 1", "description"]),
    (['{"id": "a", "description": ""}'], ["line 1", "description"]),
    (['{"id": "a", "description": {"text": "x"}}'], ["line 1", "description"]),
    (['{"id": "a", "description": "x"}', '{"id": "a", "description": "y"}'], ["line 2", "duplicate", "'a'"]),
])
def test_bad_conditions_jsonl_is_named(lines, words, tmp_path, refuse_model_loads):
    path = _jsonl(tmp_path / "conds.jsonl", lines)
    with pytest.raises(IxmctsError) as err:
        load_conditions("esc", path)
    assert "conds.jsonl" in str(err.value) and all(w in str(err.value) for w in words), str(err.value)
    result, out = cli_search(tmp_path, "--scenario", "esc", "--conditions", path)  # the user's path: exit 2, nothing written
    assert_refused(result, "conds.jsonl", *words)
    assert not out.exists()


def test_non_utf8_conditions_file_is_named(tmp_path, refuse_model_loads):
    path = tmp_path / "conds.jsonl"
    path.write_bytes('{"id": "a", "description": "caf\u00e9"}\n'.encode("latin-1"))
    result, out = cli_search(tmp_path, "--scenario", "esc", "--conditions", str(path))
    assert_refused(result, "conds.jsonl", "UTF-8")
    assert not out.exists()
    psyqa = tmp_path / "psyqa.json"
    psyqa.write_bytes('[{"questionID": 1, "description": "caf\u00e9"}]'.encode("latin-1"))
    with pytest.raises(IxmctsError, match=r"psyqa.json: not UTF-8"):
        load_psyqa(psyqa)


def test_psyqa_description_that_is_not_text_is_refused(tmp_path):
    f = tmp_path / "psyqa.json"
    f.write_text(json.dumps([{"questionID": 3, "description": {"troubles": "work"}}]))
    with pytest.raises(IxmctsError, match=r"psyqa.json: record 0 \(questionID=3\): description must be text"):
        load_psyqa(f)
    f.write_text(json.dumps([{"questionID": 3, "description": "a"}, {"questionID": 3, "description": "b"}]))
    with pytest.raises(IxmctsError, match=r"psyqa.json: record 1: duplicate condition id 'psyqa-3'"):
        load_conditions("esc", str(f))


def _p4g_copy(tmp_path):
    d = tmp_path / "p4g"
    d.mkdir()
    shutil.copyfile(P4G_DIR / P4G_FILES["dialog_csv"], d / "full_dialog.csv")
    shutil.copyfile(P4G_DIR / P4G_FILES["info_csv"], d / "full_info.csv")
    return d


@pytest.mark.parametrize("name", ["full_dialog.csv", "full_info.csv"])
def test_p4g_short_row_is_named(name, tmp_path):
    d = _p4g_copy(tmp_path)
    lines = (d / name).read_text(encoding="utf-8").splitlines(keepends=True)
    lines[3] = ",".join(next(csv.reader([lines[3]]))[:3]) + "\n"  # line 4 loses its last columns
    (d / name).write_text("".join(lines), encoding="utf-8")
    with pytest.raises(IxmctsError, match=rf"{name}: line 4: 3 fields, the header has \d+"):
        load_p4g(d)


def test_p4g_corpus_cut_off_mid_file_is_refused(tmp_path):
    """Cut inside a row (as an interrupted copy leaves it): the cut row is refused with its line,
    never turned into an invented one-turn dialogue."""
    d = _p4g_copy(tmp_path)
    data = (d / "full_dialog.csv").read_bytes()
    cut = data.rindex(b",20240101-") + 1 + 8  # inside the last row's dialogue id
    (d / "full_dialog.csv").write_bytes(data[:cut])
    lineno = data[:cut].count(b"\n") + 1
    with pytest.raises(IxmctsError, match=rf"full_dialog.csv: line {lineno}: dialogue '20240101' has no persuadee row"):
        load_p4g(d)
    # cut inside a quoted utterance
    quoted = data.rindex(b',"') + 5
    (d / "full_dialog.csv").write_bytes(data[:quoted])
    with pytest.raises(IxmctsError, match=r"full_dialog.csv: line \d+: "):
        load_p4g(d)
    (d / "full_dialog.csv").write_bytes(data)
    info = (d / "full_info.csv").read_bytes()
    (d / "full_info.csv").write_bytes(info[: info.index(b"\n", len(info) // 2) + 12])
    with pytest.raises(IxmctsError, match=r"full_info.csv: line \d+: "):
        read_info(d)


def test_p4g_non_utf8_csv_is_named(tmp_path):
    d = _p4g_copy(tmp_path)
    with open(d / "full_dialog.csv", "ab") as fh:
        fh.write("99,caf\u00e9,0,0,20240101-000000_sample\n".encode("latin-1"))
    with pytest.raises(IxmctsError, match=r"full_dialog.csv: not UTF-8"):
        load_p4g(d)


# -- item 9: unknown hub model offline, read-only folders ------------------------------------------------------

def test_unknown_hub_model_offline_fails_fast_and_leaves_no_checkpoint_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("IXMCTS_CACHE", str(tmp_path / "cache"))
    start = time.monotonic()
    result = CliRunner().invoke(cli, ["search", "--output-dir", str(tmp_path / "out"), "--policy-model",
                                      "nobody-here/no-such-model", "--num-conditions", "1"])
    assert_refused(result, "nobody-here/no-such-model", "HF_HUB_OFFLINE")
    assert time.monotonic() - start < 30
    assert not (tmp_path / "out").exists()
    assert not list((tmp_path / "cache").glob("search/*")), "an empty checkpoint folder was left behind"


def test_read_only_output_folder_is_refused_before_the_search(tmp_path, read_only_dir, refuse_model_loads):
    out = read_only_dir(tmp_path / "out")
    result = CliRunner().invoke(cli, ["search", "--output-dir", str(out), "--checkpoint-dir", str(tmp_path / "ckpt")])
    assert_refused(result, str(out), "not writable")


def test_read_only_cache_is_refused_before_the_search(tmp_path, read_only_dir, refuse_model_loads, monkeypatch):
    cache = read_only_dir(tmp_path / "cache")
    monkeypatch.setenv("IXMCTS_CACHE", str(cache))
    result = CliRunner().invoke(cli, ["search", "--output-dir", str(tmp_path / "out")])
    assert_refused(result, str(cache), "IXMCTS_CACHE", "not writable")
    assert not (tmp_path / "out").exists()


def test_require_writable_names_a_database_in_a_read_only_folder(tmp_path, read_only_dir):
    """The check human-eval runs on --db before it serves (SQLite writes beside the file too)."""
    from ixmcts.io import require_writable

    folder = tmp_path / "ro"
    folder.mkdir()
    (folder / "study.db").write_bytes(b"")
    read_only_dir(folder)
    with pytest.raises(IxmctsError, match=rf"{folder / 'study.db'} \(study database\): .*not writable"):
        require_writable(folder / "study.db", "study database")
    require_writable(tmp_path / "new" / "study.db", "study database")  # a new file in a creatable folder is fine
    assert not (tmp_path / "new").exists()  # the check creates nothing


# -- item 3: a failed write keeps the previous outputs whole ------------------------------------------------------

def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_a_failed_write_leaves_the_previous_outputs_whole(tmp_path, monkeypatch):
    monkeypatch.setattr("ixmcts.llm.make_backends", scripted_backends(ScriptedBackend()))
    out = tmp_path / "out"
    run_search(SearchParams(**SMALL, checkpoint_dir=str(tmp_path / "ckpt-a")), out, progress=False)
    before = _snapshot(out)
    assert set(before) == {"conditions.jsonl", "trees.jsonl.gz", "dp.jsonl", "summary.json"}

    real_write = search_run.write_jsonl

    def disk_full_at_dp(path, records):
        if os.path.basename(path) == search_run.DP_FILE:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_write(path, records)

    monkeypatch.setattr(search_run, "write_jsonl", disk_full_at_dp)
    other = {**SMALL, "num_conditions": 3, "seed": 1}  # another search: other conditions, other trees
    with pytest.raises(IxmctsError, match=r"No space left on device.*previous outputs .* unchanged"):
        run_search(SearchParams(**other, checkpoint_dir=str(tmp_path / "ckpt-b")), out, progress=False)
    assert _snapshot(out) == before  # no new conditions.jsonl beside the old dp.jsonl
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt-a", "ckpt-b", "out"]  # no staging folder left

    monkeypatch.setattr(search_run, "write_jsonl", real_write)  # the rerun resumes from the checkpoint and writes all
    outcome = run_search(SearchParams(**other, checkpoint_dir=str(tmp_path / "ckpt-b")), out, progress=False)
    assert outcome.metrics["search/resumed_at_step"] > 0
    assert len((out / "conditions.jsonl").read_text().splitlines()) == 3


def test_an_output_folder_holding_other_files_is_refused(tmp_path, refuse_model_loads):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    result = CliRunner().invoke(cli, ["search", "--output-dir", str(out), "--checkpoint-dir", str(tmp_path / "ckpt")])
    assert_refused(result, str(out), "notes.txt")
    assert (out / "notes.txt").read_text() == "mine"


# -- item 4: a truncated checkpoint is named ---------------------------------------------------------------------

def test_a_truncated_checkpoint_is_named_with_how_to_restart(tmp_path, monkeypatch):
    monkeypatch.setattr("ixmcts.llm.make_backends", scripted_backends(ScriptedBackend()))
    params = SearchParams(**SMALL, checkpoint_dir=str(tmp_path / "ckpt"))
    run_search(params, tmp_path / "out", progress=False)
    ckpt = tmp_path / "ckpt" / "checkpoint.json.gz"
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 2])  # a copy or a disk that stopped half-way
    with pytest.raises(IxmctsError) as err:
        run_search(params, tmp_path / "out2", progress=False)
    assert str(ckpt) in str(err.value) and "delete it" in str(err.value) and "restart" in str(err.value)
    ckpt.write_bytes(gzip.compress(b'{"config": 1}'))  # whole gzip, but not a checkpoint
    with pytest.raises(IxmctsError, match="delete it"):
        run_search(params, tmp_path / "out2", progress=False)
    assert not (tmp_path / "out2").exists()


# -- item 11: generation_share is a share of this process's time --------------------------------------------------

class SlowBackend(ScriptedBackend):
    """20 ms per call; raises KeyboardInterrupt (Ctrl-C) at call ``stop_at``."""

    def __init__(self, stop_at=None):
        super().__init__()
        self.stop_at = stop_at

    def generate(self, *args, **kwargs):
        if self.stop_at is not None and self.stats.calls + 1 >= self.stop_at:
            raise KeyboardInterrupt
        time.sleep(0.02)
        return super().generate(*args, **kwargs)


def test_generation_share_stays_at_most_one_after_a_resume(tmp_path, monkeypatch):
    full = SlowBackend()
    monkeypatch.setattr("ixmcts.llm.make_backends", scripted_backends(full))
    run_search(SearchParams(**SMALL, checkpoint_dir=str(tmp_path / "ckpt-full")), tmp_path / "full", progress=False)
    calls = full.stats.calls
    assert calls >= 6

    params = SearchParams(**SMALL, checkpoint_dir=str(tmp_path / "ckpt"))
    monkeypatch.setattr("ixmcts.llm.make_backends", scripted_backends(SlowBackend(stop_at=calls * 3 // 4)))
    with pytest.raises(KeyboardInterrupt):  # stopped three quarters of the way
        run_search(params, tmp_path / "out", progress=False)
    monkeypatch.setattr("ixmcts.llm.make_backends", scripted_backends(SlowBackend()))
    outcome = run_search(params, tmp_path / "out", progress=False)
    m = outcome.metrics
    assert m["search/resumed_at_step"] > 0
    assert 0 < m["search/generation_share"] <= 1, m["search/generation_share"]
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["metrics"]["search/generation_share"] <= 1
    assert math.isfinite(m["search/wall_sec"])


# -- item 12: a refused input under `mlflow run` leaves a FAILED run that says why ----------------------------------

def test_a_refusal_under_mlflow_run_tags_the_failed_run_with_the_reason(tmp_path):
    """`mlflow run` creates the run before the entry point starts, so a refusal cannot avoid
    it: the run ends FAILED with the reason in the tag ixmcts.error (shown in the UI)."""
    from mlflow.tracking import MlflowClient

    from test_mlflow_run import mlflow_run

    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    proc = mlflow_run(tmp_path, uri, "p4g", "num_conditions=-1")
    assert proc.returncode != 0
    assert "error: num_conditions must be at least 1, got -1" in proc.stderr
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("ixmcts-p4g").experiment_id])
    assert run.info.status == "FAILED"
    assert run.data.tags["ixmcts.error"] == "num_conditions must be at least 1, got -1"


def test_an_error_inside_the_run_tags_it_too(tracking_env, tmp_path, monkeypatch):
    """Run without `mlflow run`: the entry point opened the run itself, then the model was refused."""
    from conftest import run_entrypoint
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    proc = run_entrypoint("search", "--policy-model", "nobody-here/no-such-model", "--num-conditions", "1", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    client = MlflowClient(tracking_env)
    (run,) = client.search_runs([client.get_experiment_by_name("ixmcts-p4g").experiment_id])
    assert run.info.status == "FAILED" and "nobody-here/no-such-model" in run.data.tags["ixmcts.error"]


def test_human_eval_refuses_a_read_only_study_database_before_anything_loads(tmp_path, read_only_dir):
    """Item 9: a read-only human-eval --db is named at once (StudyParams checks it before any model loads)."""
    from ixmcts.human.study import StudyParams

    folder = read_only_dir(tmp_path / "ro")
    with pytest.raises(IxmctsError, match=r"study\.db \(study database\).*not writable"):
        StudyParams(db=str(folder / "study.db"))
    with pytest.raises(IxmctsError, match="threads must be at least 0"):
        StudyParams(db=str(tmp_path / "ok.db"), threads=-1)
