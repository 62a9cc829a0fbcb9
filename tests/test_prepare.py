"""`prepare`: the real P4G folder verifies; a download from a local mirror (127.0.0.1) lands
atomically and verifies; an altered file or an unknown corpus is one clear error."""

import functools
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import P4G_REAL, run_count, run_entrypoint
from ixmcts.data.sources import prepare_corpus
from ixmcts.errors import IxmctsError

needs_p4g = pytest.mark.skipif(not (P4G_REAL / "full_dialog.csv").exists(), reason="real P4G corpus not present")


@pytest.fixture()
def mirror(tmp_path):
    served = tmp_path / "mirror"
    served.mkdir()
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@needs_p4g
def test_the_real_p4g_folder_verifies_and_is_recorded(tracking_env, tmp_path):
    proc = run_entrypoint("prepare", "--corpus", "p4g", "--path", str(P4G_REAL), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_env)
    (run,) = client.search_runs([client.get_experiment_by_name("ixmcts-p4g").experiment_id])
    assert run.data.metrics["prepare/dialogues"] == 1017
    assert run.data.tags["ixmcts.sha256.full_info.csv"].startswith("93be6f62")


@needs_p4g
def test_download_from_a_mirror_verifies_and_a_corrupt_file_is_refused(mirror, tmp_path):
    served, url = mirror
    for name in ("full_dialog.csv", "full_info.csv"):
        shutil.copyfile(P4G_REAL / name, served / name)
    info = prepare_corpus("p4g", tmp_path / "data", mirror=url)
    assert info["counts"] == {"dialogues": 1017} and (tmp_path / "data" / "p4g" / "SOURCES.json").exists()

    (served / "full_info.csv").write_bytes((P4G_REAL / "full_info.csv").read_bytes()[:-100])  # truncated upstream
    with pytest.raises(IxmctsError, match="is not the published 93be6f62d41f"):
        prepare_corpus("p4g", tmp_path / "again", mirror=url)
    assert not (tmp_path / "again" / "p4g" / "full_info.csv").exists()  # the bad download is not kept


def test_bad_requests_are_one_clear_error(tracking_env, tmp_path):
    proc = run_entrypoint("prepare", "--corpus", "esconv", cwd=tmp_path)
    assert proc.returncode == 2 and "'esconv' is not one of 'p4g', 'psydt', 'psyqa'" in proc.stderr
    proc = run_entrypoint("prepare", "--corpus", "psyqa", cwd=tmp_path)
    assert proc.returncode == 2 and "no public download" in proc.stderr
    proc = run_entrypoint("prepare", "--corpus", "p4g", "--path", str(tmp_path), cwd=tmp_path)
    assert proc.returncode == 2 and "full_dialog.csv: missing" in proc.stderr
    assert run_count(tracking_env) == 0  # nothing was recorded for a refused request
