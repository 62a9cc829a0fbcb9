import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
P4G_REAL = Path(os.environ.get("IXMCTS_P4G_DIR", ROOT.parent / "shared" / "data" / "p4g"))
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Models and checkpoints go to a per-session cache, unless IXMCTS_CACHE is set
    (CI and developers can share the converted models between runs that way)."""
    if not os.environ.get("IXMCTS_CACHE"):
        os.environ["IXMCTS_CACHE"] = str(tmp_path_factory.mktemp("ixmcts-cache"))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_model():
    from ixmcts.llm.registry import resolve_model

    return resolve_model("tiny")


@pytest.fixture()
def tracking_env(tmp_path, monkeypatch):
    """A fresh SQLite tracking store; the test runs from tmp_path."""
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    monkeypatch.chdir(tmp_path)
    yield uri
    # mlflow.set_experiment() in a test exports MLFLOW_EXPERIMENT_ID; left set, a later
    # `mlflow run --experiment-name` would be given two experiments.
    os.environ.pop("MLFLOW_EXPERIMENT_ID", None)


def run_entrypoint(name: str, *args: str, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "entrypoints" / f"{name}.py"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, env=os.environ.copy())


def run_count(uri: str) -> int:
    """Runs in every experiment of a tracking store (0 when the store was never created)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    return sum(len(client.search_runs([e.experiment_id])) for e in client.search_experiments())
