"""`annotate` against a local OpenAI-compatible fake (127.0.0.1): states land on the
help-seeker messages and are read back; a malformed state stops the job and writes nothing;
rate limits (429 + Retry-After) and cut-off replies are retried; a redirect is refused
without sending the key anywhere; a checkpoint cut mid-line is resumed."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import run_entrypoint
from ixmcts.data.esc import load_psydt
from ixmcts.data.samples import PSYDT
from ixmcts.scenarios import get_scenario

GOOD = ("[Shown]\nObservations: my boss criticizes me\nFeelings: humiliated\nNeeds: respect\nRequests: none\n"
        "[Possibly unexpressed]\nObservations: none\nFeelings: afraid of losing the job\nNeeds: security\nRequests: none")


class FakeEndpoint(BaseHTTPRequestHandler):
    """Replies in order (the last one repeats): a state text (200), or a dict
    ``{"status", "headers"}`` (no body) or ``{"truncate": True}`` (a 200 cut off mid-body)."""

    replies: list = []
    seen: list = []

    def do_POST(self):  # noqa: N802  (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeEndpoint.seen.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body,
                                  "time": time.monotonic()})
        reply = FakeEndpoint.replies[min(len(FakeEndpoint.seen), len(FakeEndpoint.replies)) - 1]
        if isinstance(reply, dict) and "status" in reply:
            self.send_response(reply["status"])
            for k, v in reply.get("headers", {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        content = GOOD if isinstance(reply, dict) else reply
        data = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if isinstance(reply, dict) and reply.get("truncate"):  # the connection drops mid-body
            self.wfile.write(data[: len(data) // 3])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(data)

    def log_message(self, *args):
        pass


class OtherOrigin(BaseHTTPRequestHandler):
    """Another host (another port of 127.0.0.1 is another origin): records what reaches it."""

    seen: list = []

    def _record(self):
        OtherOrigin.seen.append({"method": self.command, "auth": self.headers.get("Authorization")})
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = _record  # noqa: N815

    def log_message(self, *args):
        pass


def _serve(handler):
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture()
def endpoint():
    FakeEndpoint.replies, FakeEndpoint.seen = [GOOD], []
    server = _serve(FakeEndpoint)
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


@pytest.fixture()
def other_origin():
    OtherOrigin.seen = []
    server = _serve(OtherOrigin)
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def annotate(endpoint, out, *extra, cwd):
    return run_entrypoint("annotate", "--input", str(PSYDT), "--output", str(out), "--base-url", endpoint,
                          "--model", "fake-4o", "--language", "en", *extra, cwd=cwd)


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
                          "--max-dialogues", "1", "--max-retries", "1", cwd=tmp_path)
    assert proc.returncode == 2 and "127.0.0.1:9/v1/chat/completions" in proc.stderr and "after 2 attempts" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not list(tmp_path.glob("*annotated*"))


def test_a_rate_limit_is_waited_out_as_retry_after_asks(endpoint, tracking_env, tmp_path):
    """429 with Retry-After: 1, then 200: the job waits about a second and finishes (issue 15)."""
    FakeEndpoint.replies = [{"status": 429, "headers": {"Retry-After": "1"}}, GOOD]
    out = tmp_path / "annotated.json"
    proc = annotate(endpoint, out, "--max-dialogues", "1", "--concurrency", "1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    first, second = FakeEndpoint.seen[:2]
    assert second["time"] - first["time"] >= 0.95  # the client's own first backoff is at most 0.5 s
    seekers = [m for r in json.loads(out.read_text()) for m in r["messages"] if m["role"] == "user"]
    assert seekers and all(m["state"] == GOOD for m in seekers)
    assert len(FakeEndpoint.seen) == len(seekers) + 1


def test_rate_limits_beyond_the_retries_are_one_clear_error(endpoint, tracking_env, tmp_path):
    FakeEndpoint.replies = [{"status": 429, "headers": {"Retry-After": "0.05"}}]
    out = tmp_path / "annotated.json"
    proc = annotate(endpoint, out, "--max-dialogues", "1", "--max-retries", "2", cwd=tmp_path)
    assert proc.returncode == 2 and "HTTP 429" in proc.stderr and "3 attempts" in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and len(FakeEndpoint.seen) == 3 and not out.exists()


def test_a_reply_cut_off_mid_body_is_retried(endpoint, tracking_env, tmp_path):
    FakeEndpoint.replies = [{"truncate": True}, GOOD]
    out = tmp_path / "annotated.json"
    proc = annotate(endpoint, out, "--max-dialogues", "1", "--concurrency", "1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    seekers = [m for r in json.loads(out.read_text()) for m in r["messages"] if m["role"] == "user"]
    assert all(m["state"] == GOOD for m in seekers) and len(FakeEndpoint.seen) == len(seekers) + 1


@pytest.mark.parametrize("status", [302, 307])
def test_a_redirect_is_refused_and_the_key_goes_nowhere_else(status, endpoint, other_origin, tracking_env, tmp_path,
                                                             monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    elsewhere = f"{other_origin}/v1/chat/completions"
    FakeEndpoint.replies = [{"status": status, "headers": {"Location": elsewhere}}]
    out = tmp_path / "annotated.json"
    proc = annotate(endpoint, out, "--max-dialogues", "1", cwd=tmp_path)
    assert OtherOrigin.seen == []  # nothing, let alone the key, reached the other host
    assert proc.returncode == 2 and "redirect" in proc.stderr and elsewhere in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and not out.exists()


def test_a_checkpoint_cut_mid_line_is_resumed(endpoint, tracking_env, tmp_path, monkeypatch):
    """A job killed while writing its checkpoint: the partial last line is dropped and that
    dialogue annotated again; the finished one is not asked for again."""
    monkeypatch.setenv("IXMCTS_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "annotated.json"
    proc = annotate(endpoint, out, "--max-dialogues", "2", "--concurrency", "1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    expected = json.loads(out.read_text())
    (checkpoint,) = (tmp_path / "cache").glob("annotate/*/done.jsonl")
    first, second = checkpoint.read_text(encoding="utf-8").splitlines(keepends=True)
    checkpoint.write_text(first + second[: len(second) // 2], encoding="utf-8")  # killed mid-write
    out.unlink()
    before = len(FakeEndpoint.seen)
    proc = annotate(endpoint, out, "--max-dialogues", "2", "--concurrency", "1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(out.read_text()) == expected
    assert len(FakeEndpoint.seen) - before == sum(m["role"] == "user" for m in expected[1]["messages"])
    assert [json.loads(line)["id"] for line in checkpoint.read_text().splitlines()] == [r["id"] for r in expected]


def test_a_damaged_checkpoint_line_before_the_last_is_named(endpoint, tracking_env, tmp_path, monkeypatch):
    monkeypatch.setenv("IXMCTS_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "annotated.json"
    assert annotate(endpoint, out, "--max-dialogues", "2", cwd=tmp_path).returncode == 0
    (checkpoint,) = (tmp_path / "cache").glob("annotate/*/done.jsonl")
    first, second = checkpoint.read_text(encoding="utf-8").splitlines(keepends=True)
    checkpoint.write_text(first[:20] + "\n" + second, encoding="utf-8")
    proc = annotate(endpoint, out, "--max-dialogues", "2", cwd=tmp_path)
    assert proc.returncode == 2 and f"{checkpoint}:1" in proc.stderr and "delete it" in proc.stderr, proc.stderr[-2000:]
