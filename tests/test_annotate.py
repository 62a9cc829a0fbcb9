"""`annotate` against a local OpenAI-compatible fake (127.0.0.1): states land on the
help-seeker messages and are read back; a malformed state stops the job and writes nothing."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import run_entrypoint
from ixmcts.data.esc import load_psydt
from ixmcts.data.samples import PSYDT
from ixmcts.scenarios import get_scenario

GOOD = ("[Shown]\nObservations: my boss criticizes me\nFeelings: humiliated\nNeeds: respect\nRequests: none\n"
        "[Possibly unexpressed]\nObservations: none\nFeelings: afraid of losing the job\nNeeds: security\nRequests: none")


class FakeEndpoint(BaseHTTPRequestHandler):
    replies: list = []  # what each request gets, in order (the last one repeats)
    seen: list = []

    def do_POST(self):  # noqa: N802  (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeEndpoint.seen.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        content = FakeEndpoint.replies[min(len(FakeEndpoint.seen), len(FakeEndpoint.replies)) - 1]
        data = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture()
def endpoint():
    FakeEndpoint.replies, FakeEndpoint.seen = [GOOD], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeEndpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def test_state_format_check():
    sc = get_scenario("esc", language="en")
    assert sc.is_state(GOOD)
    assert not sc.is_state("I feel sad.")
    assert not sc.is_state(GOOD.split("[Possibly unexpressed]")[0])  # one block only
    assert not sc.is_state("[Possibly unexpressed]\nFeelings: x\n[Shown]\nFeelings: y")  # blocks swapped
    assert get_scenario("esc", language="zh").is_state("【已表达】\n感受：难过\n【可能未表达】\n感受：无")


def test_annotated_states_are_read_back_for_training(endpoint, tracking_env, tmp_path, monkeypatch):
    monkeypatch.setenv("IXMCTS_TEST_KEY", "sk-test")
    out = tmp_path / "annotated.json"
    proc = run_entrypoint("annotate", "--input", str(PSYDT), "--output", str(out), "--base-url", endpoint,
                          "--model", "fake-4o", "--api-key-env", "IXMCTS_TEST_KEY", "--language", "en",
                          "--max-dialogues", "2", "--concurrency", "2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    records = json.loads(out.read_text())
    seekers = [m for r in records for m in r["messages"] if m["role"] == "user"]
    assert len(records) == 2 and all(m["state"] == GOOD for m in seekers)
    assert len(FakeEndpoint.seen) == len(seekers)
    first = FakeEndpoint.seen[0]
    assert first["path"] == "/v1/chat/completions" and first["auth"] == "Bearer sk-test"
    assert first["body"]["model"] == "fake-4o" and "[Possibly unexpressed]" in first["body"]["messages"][0]["content"]
    dialogues = load_psydt(out)
    supporter = next(t for t in dialogues[0].turns if t.role != dialogues[0].turns[0].role)
    assert supporter.state == GOOD  # the supporter's chain of thought predicts the seeker's state
    sc = get_scenario("esc", language="en")
    assert sc.policy_target(supporter).startswith(sc.words.lead_in + "\n[Shown]")

    # run again: every dialogue comes from the checkpoint, no request is sent
    before = len(FakeEndpoint.seen)
    proc = run_entrypoint("annotate", "--input", str(PSYDT), "--output", str(out), "--base-url", endpoint,
                          "--model", "fake-4o", "--language", "en", "--max-dialogues", "2", cwd=tmp_path)
    assert proc.returncode == 0 and len(FakeEndpoint.seen) == before


def test_a_malformed_state_stops_the_job_and_writes_nothing(endpoint, tracking_env, tmp_path):
    FakeEndpoint.replies = [GOOD, GOOD, "I guess I feel bad."]
    out = tmp_path / "annotated.json"
    proc = run_entrypoint("annotate", "--input", str(PSYDT), "--output", str(out), "--base-url", endpoint,
                          "--model", "other", "--language", "en", "--max-dialogues", "1", "--concurrency", "1", cwd=tmp_path)
    assert proc.returncode == 2
    assert "message 5" in proc.stderr and "not in the A.1 format" in proc.stderr and "I guess I feel bad" in proc.stderr
    assert not out.exists() and not list(tmp_path.glob(".annotated.json.*"))


def test_an_unreachable_endpoint_is_one_clear_error(tracking_env, tmp_path):
    proc = run_entrypoint("annotate", "--input", str(PSYDT), "--base-url", "http://127.0.0.1:9/v1", "--language", "en",
                          "--max-dialogues", "1", cwd=tmp_path)
    assert proc.returncode == 2 and "127.0.0.1:9/v1/chat/completions" in proc.stderr
    assert not list(tmp_path.glob("*annotated*"))
