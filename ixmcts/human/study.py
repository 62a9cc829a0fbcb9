"""Set up and serve a human-evaluation study: problem statements, the two blind models, the
preference pairs to annotate, the database. The CLI (``ixmcts human-eval serve``, local
models) and the MLflow entry point (``human-eval``, tracked model runs) both call this."""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass

from ..data import load_conditions
from ..errors import IxmctsError
from ..io import require_writable
from ..llm import Sampling, check_backend, make_backends
from ..llm.models import ModelSpec
from ..scenarios import get_scenario

PAIR_FIELDS = ("context", "chosen", "rejected", "chosen_value", "rejected_value")


@dataclass
class StudyParams:
    scenario: str = "esc"  # the paper's human study is on emotional support
    language: str = "en"
    conditions: str = "sample"
    conditions_offset: int = 16  # past the search's conditions, like `evaluate`
    num_problems: int = 36  # the paper's 36 comparison pairs (Table 5)
    data_dir: str = ""
    num_pairs: int = 160  # pairs sampled from D_p for annotation (paper: 160 per task)
    max_new_tokens: int = 128
    max_exchanges: int = 10
    db: str = ""  # empty: human-eval/<scenario>.db
    host: str = "127.0.0.1"
    port: int = 8000
    allow_remote: bool = False
    threads: int = 0
    backend: str = "transformers"
    seed: int = 0

    def __post_init__(self):
        for name in ("num_problems", "max_exchanges", "max_new_tokens"):
            if getattr(self, name) < 1:
                raise IxmctsError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.num_pairs < 0 or self.conditions_offset < 0:
            raise IxmctsError("num_pairs and conditions_offset must not be negative")
        if not 0 <= self.port <= 65535:
            raise IxmctsError(f"port must be between 0 and 65535, got {self.port}")
        check_bind(self.host, self.allow_remote)
        if self.threads < 0:
            raise IxmctsError(f"threads must be at least 0, got {self.threads}")
        check_backend(self.backend)
        self.db = self.db or f"human-eval/{self.scenario}.db"
        require_writable(self.db, "study database")  # SQLite writes beside the file too; before any model loads


def check_bind(host: str, allow_remote: bool) -> None:
    """Refuse an address other machines can reach unless the operator says so."""
    if allow_remote:
        return
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise IxmctsError(f"refusing to serve on {host}: raters' chats would be reachable from other machines. "
                          "Bind 127.0.0.1 (the default) or pass allow_remote=true behind your own access control")


def allowed_hosts(params: StudyParams) -> frozenset[str] | None:
    """The Host names the app answers to: loopback names and the bound address; any with
    ``allow_remote`` (the operator's proxy or firewall decides who reaches it)."""
    from .app import LOOPBACK_HOSTS

    return None if params.allow_remote else LOOPBACK_HOSTS | {params.host}


CHOICES = {"scenario": ("esc", "p4g"), "language": ("en", "zh"), "backend": ("transformers", "vllm")}

HELP = {
    "scenario": "esc | p4g: the problem statements and the models' prompt format",
    "language": "ESC prompt language: en | zh",
    "conditions": "where the problem statements come from (the scenario's user conditions: sample, a file, …)",
    "conditions_offset": "skip the first conditions (the search's)",
    "num_problems": "problem statements handed out to raters, least-used first",
    "data_dir": "P4G corpus folder for conditions=synth|corpus",
    "num_pairs": "preference pairs sampled from D_p for annotation (0: none)",
    "max_new_tokens": "max new tokens per model turn",
    "max_exchanges": "rater messages per blind chat",
    "db": "SQLite database (empty: human-eval/<scenario>.db); reopening it resumes the study",
    "host": "address to serve on; anything but loopback needs allow_remote",
    "port": "port to serve on",
    "allow_remote": "serve beyond localhost (put your own access control in front)",
    "threads": "torch CPU threads (0 = torch's default)",
    "backend": "transformers | vllm (CUDA)",
    "seed": "seed for the pair sample, a1/a2 order and the models' sampling",
}


def check_pairs(pairs: list[dict], scenario: str, source: str) -> None:
    for i, p in enumerate(pairs, 1):
        missing = [k for k in PAIR_FIELDS if k not in p]
        if missing:
            raise IxmctsError(f"{source}: pair {i}: missing {', '.join(missing)}")
        if p.get("scenario", scenario) != scenario:
            raise IxmctsError(f"{source}: pair {i} is from scenario {p['scenario']!r}, not {scenario!r}")


def build_study(params: StudyParams, arms: dict[str, tuple[str, ModelSpec]], pairs: list[dict] | None = None,
                pairs_source: str = ""):
    """Build the ``Study`` the app serves. ``arms[name] = (run id or model path, ModelSpec)``. Everything is checked before a
    model loads; reopening an existing database resumes its study."""
    from .app import Limits, PolicyResponder, Study
    from .store import Store

    scenario = get_scenario(params.scenario, language=params.language)
    pool = load_conditions(params.scenario, params.conditions, None, data_dir=params.data_dir or None, seed=params.seed)
    problems = pool[params.conditions_offset : params.conditions_offset + params.num_problems]
    if not problems:
        raise IxmctsError(f"{params.conditions}: no problem statements after the first {params.conditions_offset} (it has {len(pool)})")
    if pairs:
        check_pairs(pairs, params.scenario, pairs_source)
        pairs = random.Random(params.seed).sample(pairs, min(params.num_pairs, len(pairs)))
    store = Store(params.db)
    store.set_arms([(name, run_id, spec.base + (f" + {len(spec.adapters)} adapter(s)" if spec.adapters else ""))
                    for name, (run_id, spec) in arms.items()])
    if pairs:
        store.add_pairs(pairs, seed=params.seed, source=pairs_source)
    backends = make_backends({name: spec for name, (_, spec) in arms.items()}, params.backend, threads=params.threads or None)
    sampling = Sampling(max_new_tokens=params.max_new_tokens)
    return Study(store=store, problems=problems, seed=params.seed, limits=Limits(max_exchanges=params.max_exchanges),
                 responders={name: PolicyResponder(scenario, backends[name], sampling) for name in arms},
                 shown_text=lambda raw: scenario.parse_policy(raw).reply or raw.strip(), allowed_hosts=allowed_hosts(params))


def serve(study, params: StudyParams) -> None:
    """Serve on ``params.host:port`` (checked when the params were made) until SIGINT (Ctrl-C)
    or SIGTERM (MLflow's cancel, ``kill``), then return normally: stopping is how a study ends.

    From the first signal on, both are ignored for the rest of the process, so that what the
    caller does next (export the data, end its MLflow run) cannot be cut short. This matters
    under ``mlflow run``: Ctrl-C reaches the whole process group, and MLflow's parent process
    answers its own SIGINT by sending SIGTERM to the entry point, which would otherwise land in
    the middle of the export (the run then ended FAILED, without its files). A stuck export
    still yields to SIGKILL."""
    import signal
    import threading
    from contextlib import contextmanager

    import uvicorn

    from .app import create_app

    class StudyServer(uvicorn.Server):
        @contextmanager
        def capture_signals(self):
            # uvicorn's own handlers restore the previous ones after shutdown and re-raise the
            # signal; the handlers below stay in charge instead.
            yield

    server = StudyServer(uvicorn.Config(create_app(study), host=params.host, port=params.port, log_level="warning"))
    stop_signals = (signal.SIGINT, signal.SIGTERM)

    def stop(signum, frame):
        for sig in stop_signals:
            signal.signal(sig, signal.SIG_IGN)
        server.should_exit = True

    main_thread = threading.current_thread() is threading.main_thread()
    if main_thread:  # signal handlers can only be set there
        for sig in stop_signals:
            signal.signal(sig, stop)
    print(f"human evaluation: raters open http://{params.host}:{params.port}/rate , annotators "
          f"http://{params.host}:{params.port}/annotate (database {study.store.path}; Ctrl-C stops)", flush=True)
    try:
        server.run()
    finally:
        if main_thread:
            for sig in stop_signals:
                signal.signal(sig, signal.SIG_IGN)
    print("human evaluation stopped", flush=True)
