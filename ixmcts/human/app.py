"""The blind A/B human-evaluation web app (the paper's user study, Section 5.3 / Table 5).

A rater reads a consent note, gets a problem statement, chats with "Model A" and then
"Model B" — two tracked policies (e.g. SFT and Aligned) in a random order per session — and
rates each 1–10 on supportiveness and willingness to use it again, with free-text strengths
and weaknesses. An annotator labels preference pairs from D_p as a1 / a2 / tie (Section 5.2).

Pages are rendered on the server with Jinja2 autoescaping and carry no JavaScript; the
Content-Security-Policy forbids scripts outright, so a chat message or a name is only ever
text. Which model sits behind A and B lives in the database only. A request must name this
server as its Host (a page on another site cannot reach it by DNS rebinding), and a request
that changes anything must come from this app's own pages (Origin, else Referer): another
site cannot create sessions, ratings or annotators in a rater's browser.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI, Form, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException

from ..data.schema import MODEL, USER, Condition, Turn
from ..errors import IxmctsError
from .store import LABELS, SLOTS, Conflict, Store

HERE = Path(__file__).parent
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'none'; style-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    # same-origin: URLs (which carry rater tokens) never go to another site, while the app's own
    # form posts keep their real Origin (under no-referrer a browser sends "Origin: null").
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
}
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Responder(Protocol):
    def reply(self, problem: Condition, history: list[Turn], seed: int) -> tuple[str, str]:
        """The model's next turn: (the text the rater sees, the raw output)."""


class PolicyResponder:
    """A policy behind a generation backend, speaking in the scenario's format. Generation is
    serialised (one model call at a time) because a backend's KV cache is not thread-safe."""

    _lock = threading.Lock()

    def __init__(self, scenario, backend, sampling):
        self.scenario, self.backend, self.sampling = scenario, backend, sampling

    def reply(self, problem: Condition, history: list[Turn], seed: int) -> tuple[str, str]:
        messages = self.scenario.policy_messages(problem, history)
        with self._lock:
            (raw,), = self.backend.generate([messages], 1, self.sampling, seed=seed)
        return self.scenario.parse_policy(raw).reply or raw.strip(), raw


@dataclass
class Limits:
    """Bounds on what a client may send (the request-size limit covers everything else)."""

    max_body_bytes: int = 16_384
    max_message_chars: int = 2_000
    max_name_chars: int = 80
    max_feedback_chars: int = 4_000
    max_exchanges: int = 10  # rater messages per blind chat


@dataclass
class Study:
    store: Store
    problems: list[Condition]
    responders: dict[str, Responder]  # arm name (e.g. SFT, Aligned) → its model
    limits: Limits = field(default_factory=Limits)
    seed: int = 0
    shown_text: Callable[[str], str] = str.strip  # a pair's raw response → what annotators read (ESC: no CoT)
    allowed_hosts: frozenset[str] | None = LOOPBACK_HOSTS  # Host names served; None: any (allow_remote)

    def __post_init__(self):
        if len(self.responders) != 2:
            raise IxmctsError(f"a blind A/B study needs exactly two models, got {len(self.responders)}")
        if not self.problems:
            raise IxmctsError("a rating study needs at least one problem statement")


class BodyLimit:
    """ASGI middleware: a request body over ``max_bytes`` gets 413 before the app reads it."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            return await _too_large(send)
        chunks, size, more = [], 0, True
        while more:  # forms are small: read the whole body, counting, then replay it
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                return await _too_large(send)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _too_large(send):
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": b"request too large"})


def check_request(request: Request, allowed_hosts: frozenset[str] | None) -> None:
    """Refuse (400) a Host that is not this server's address, and (403) a state-changing request
    whose Origin (or, without one, Referer) is not this app: another site's form, a sandboxed
    page (Origin null), or a client that names no page at all."""
    host = request.headers.get("host", "")
    if allowed_hosts is not None and (urlsplit(f"//{host}").hostname or "") not in allowed_hosts:
        raise HTTPException(400, f"Host {host} is not this server's address (serving {', '.join(sorted(allowed_hosts))}); "
                                 "open the address the study printed")
    if request.method in SAFE_METHODS:
        return
    source = request.headers.get("origin") or request.headers.get("referer")
    if source is None:
        raise HTTPException(403, "cross-origin request refused: it names no Origin or Referer; use this app's pages")
    if source == "null" or urlsplit(source).netloc.lower() != host.lower():
        raise HTTPException(403, f"cross-origin request refused: {source} is not this app (http://{host})")


def create_app(study: Study) -> FastAPI:
    def guard(request: Request):
        check_request(request, study.allowed_hosts)

    app = FastAPI(title="ixmcts human evaluation", docs_url=None, redoc_url=None, openapi_url=None,
                  dependencies=[Depends(guard)])
    templates = Jinja2Templates(directory=HERE / "templates")  # autoescapes .html
    store, limits, arms = study.store, study.limits, list(study.responders)
    problems = {c.id: c for c in study.problems}
    store.clear_reservations()  # a server stopped mid-generation left its held exchanges
    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes)

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    def page(request: Request, template: str, status: int = 200, **context):
        return templates.TemplateResponse(request, template, context, status_code=status)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        return page(request, "error.html", exc.status_code, message=exc.detail)

    @app.exception_handler(RequestValidationError)
    async def form_error(request: Request, exc: RequestValidationError):
        fields = sorted({str(e["loc"][-1]) for e in exc.errors()})
        return page(request, "error.html", 422, message=f"missing or invalid: {', '.join(fields)}")

    def text(value: str, what: str, limit: int, required: bool = True) -> str:
        value = value.strip()
        if required and not value:
            raise HTTPException(422, f"{what} is empty")
        if len(value) > limit:
            raise HTTPException(422, f"{what} is longer than {limit} characters")
        return value

    def session_or_404(token: str):
        s = store.session(token)
        if s is None:
            raise HTTPException(404, "no such session")
        return s

    def slot_or_404(slot: str) -> str:
        if slot not in SLOTS:
            raise HTTPException(404, "no such chat")
        return slot

    # pages -----------------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse)
    def index(request: Request):
        return page(request, "index.html", annotate=store.counts()["pairs"] > 0)

    @app.get("/style.css")
    def style():
        return FileResponse(HERE / "templates" / "style.css", media_type="text/css")

    @app.get("/healthz")
    def healthz():
        return {"ok": True}

    @app.get("/rate", response_class=HTMLResponse)
    def consent(request: Request):
        return page(request, "consent.html", max_name=limits.max_name_chars)

    @app.post("/rate")
    def start_session(name: str = Form(...), consent: str = Form("")):
        if consent != "yes":
            raise HTTPException(422, "please read the note and tick the box to take part")
        rater_id, _ = store.add_rater(text(name, "name", limits.max_name_chars), "rater")
        token = store.start_session(rater_id, [(c.id, c.description) for c in study.problems], arms)
        return RedirectResponse(f"/s/{token}/chat/A", status_code=303)

    @app.get("/s/{token}/chat/{slot}", response_class=HTMLResponse)
    def chat(request: Request, token: str, slot: str):
        s, slot = session_or_404(token), slot_or_404(slot)
        if store.rated(token):
            return RedirectResponse(f"/s/{token}/done", status_code=303)
        turns = store.turns(token, slot)
        exchanges = sum(t["role"] == USER for t in turns)
        return page(request, "chat.html", token=token, slot=slot, problem=s["problem"], turns=turns,
                    left=limits.max_exchanges - exchanges, can_continue=exchanges > 0,
                    next_url=f"/s/{token}/chat/B" if slot == "A" else f"/s/{token}/rate",
                    max_message=limits.max_message_chars)

    @app.post("/s/{token}/chat/{slot}")
    def send_message(token: str, slot: str, message: str = Form(...)):
        s, slot = session_or_404(token), slot_or_404(slot)
        message = text(message, "message", limits.max_message_chars)
        try:  # the limit holds inside the write transaction, before the model is paid for
            idx = store.reserve_exchange(token, slot, limits.max_exchanges)
        except Conflict as exc:
            raise HTTPException(409, str(exc)) from None
        try:
            turns = [t for t in store.turns(token, slot) if t["idx"] < idx]
            arm = s["arm_a"] if slot == "A" else s["arm_b"]
            history = [Turn(USER if t["role"] == "user" else MODEL, t["text"]) for t in turns] + [Turn(USER, message)]
            seed = int.from_bytes(hashlib.sha256(f"{study.seed}:{token}:{slot}:{idx}".encode()).digest()[:4], "big")
            problem = problems.get(s["problem_id"]) or Condition(s["problem_id"], "", s["problem"])
            shown, raw = study.responders[arm].reply(problem, history, seed)
        except BaseException:
            store.release_exchange(token, slot, idx)
            raise
        store.fill_exchange(token, slot, idx, message, shown, raw)
        return RedirectResponse(f"/s/{token}/chat/{slot}#last", status_code=303)

    @app.get("/s/{token}/rate", response_class=HTMLResponse)
    def rating_form(request: Request, token: str):
        session_or_404(token)
        if store.rated(token):
            return RedirectResponse(f"/s/{token}/done", status_code=303)
        missing = [slot for slot in SLOTS if not store.turns(token, slot)]
        if missing:
            raise HTTPException(409, f"chat with Model {' and '.join(missing)} first")
        return page(request, "rate.html", token=token, slots=SLOTS, scale=range(1, 11),
                    max_feedback=limits.max_feedback_chars)

    @app.post("/s/{token}/rate")
    def submit_rating(token: str, a_supportiveness: int = Form(...), a_willingness: int = Form(...),
                      b_supportiveness: int = Form(...), b_willingness: int = Form(...),
                      a_strengths: str = Form(""), a_weaknesses: str = Form(""),
                      b_strengths: str = Form(""), b_weaknesses: str = Form("")):
        session_or_404(token)
        values = {"A": (a_supportiveness, a_willingness, a_strengths, a_weaknesses),
                  "B": (b_supportiveness, b_willingness, b_strengths, b_weaknesses)}
        ratings = {}
        for slot, (sup, will, good, bad) in values.items():
            if not (1 <= sup <= 10 and 1 <= will <= 10):
                raise HTTPException(422, f"Model {slot}: ratings go from 1 to 10")
            ratings[slot] = {"supportiveness": sup, "willingness": will,
                             "strengths": text(good, f"Model {slot} strengths", limits.max_feedback_chars, required=False),
                             "weaknesses": text(bad, f"Model {slot} weaknesses", limits.max_feedback_chars, required=False)}
        try:
            store.rate(token, ratings)
        except Conflict as exc:
            raise HTTPException(409, str(exc)) from None
        return RedirectResponse(f"/s/{token}/done", status_code=303)

    @app.get("/s/{token}/done", response_class=HTMLResponse)
    def done(request: Request, token: str):
        return page(request, "done.html", name=session_or_404(token)["rater"])

    # annotation ------------------------------------------------------------------------
    @app.get("/annotate", response_class=HTMLResponse)
    def annotate_start(request: Request):
        return page(request, "annotate_start.html", max_name=limits.max_name_chars)

    @app.post("/annotate")
    def new_annotator(name: str = Form(...)):
        _, token = store.add_rater(text(name, "name", limits.max_name_chars), "annotator")
        return RedirectResponse(f"/a/{token}", status_code=303)

    def annotator_or_404(token: str):
        a = store.annotator(token)
        if a is None:
            raise HTTPException(404, "no such annotator")
        return a

    @app.get("/a/{token}", response_class=HTMLResponse)
    def next_pair(request: Request, token: str):
        a = annotator_or_404(token)
        pair = store.next_pair(a["id"])
        if pair is None:
            return page(request, "annotate_done.html")
        context = [m for m in json.loads(pair["context"]) if m["role"] != "system"]
        return page(request, "annotate.html", token=token, pair_id=pair["id"], context=context,
                    a1=study.shown_text(pair["a1"]), a2=study.shown_text(pair["a2"]), labels=LABELS)

    @app.post("/a/{token}/{pair_id}")
    def label_pair(token: str, pair_id: str, label: str = Form(...)):
        a = annotator_or_404(token)
        if store.pair(pair_id) is None:
            raise HTTPException(404, "no such pair")
        if label not in LABELS:
            raise HTTPException(422, f"label must be one of {', '.join(LABELS)}")
        try:
            store.annotate(pair_id, a["id"], label)
        except Conflict as exc:
            raise HTTPException(409, str(exc)) from None
        return RedirectResponse(f"/a/{token}", status_code=303)

    return app

