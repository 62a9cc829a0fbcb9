"""Screenshots of the MLflow UI for the README (issue 15 item 9): the runs table of a
scenario's experiment (the pipeline's parent and child runs), a search run's metrics, the
compare view of the evaluate runs and the registered policy with its aliases.

    python scripts/ui_screenshots.py --tracking-uri sqlite:///mlruns.db --scenario p4g --output-dir docs

Starts `mlflow server` on a free local port, drives Debian's chromium through Playwright
(DESIGN.md §7) and writes docs/mlflow-*.png. MLflow 3's UI opens on its GenAI overview; the
runs table is `#/experiments/<id>/runs`.
"""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import click

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url + "/health", timeout=2)
            return
        except OSError:
            time.sleep(1)
    raise SystemExit(f"mlflow server at {url} did not come up within {timeout:.0f}s")


def hide_assistant(page) -> None:
    """Close MLflow 3's assistant side panel if it is open (it covers a third of the page)."""
    for button in page.locator('button[aria-label="Close"]').all():
        box = button.bounding_box()
        if box and box["x"] > 1200:  # the panel's own close button, top right
            button.click()
            time.sleep(1)
            return


def expand_parent_runs(page) -> None:
    """Show the pipeline's child runs under their parent (the row's unlabeled expander button)."""
    page.evaluate("""() => [...document.querySelectorAll('button')]
        .filter(b => !b.getAttribute('aria-label') && !(b.textContent || '').trim())
        .filter(b => { const r = b.getBoundingClientRect(); return r.x > 150 && r.x < 450 && r.y > 180; })
        .forEach(b => b.click())""")
    time.sleep(3)


@click.command()
@click.option("--tracking-uri", required=True, help="the store holding a `main` run (e.g. sqlite:///mlruns.db)")
@click.option("--scenario", default="p4g", show_default=True, help="whose experiment: esc | p4g")
@click.option("--output-dir", default="docs", show_default=True, help="where the PNG files go")
@click.option("--browser", default="/usr/bin/chromium", show_default=True, help="chromium executable")
def main(tracking_uri, scenario, output_dir, browser):
    from mlflow import MlflowClient
    from playwright.sync_api import sync_playwright

    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(f"ixmcts-{scenario}")
    if exp is None:
        raise SystemExit(f"no experiment ixmcts-{scenario} in {tracking_uri}")
    finished = "attributes.status = 'FINISHED'"
    search = client.search_runs([exp.experiment_id], f"tags.`ixmcts.stage` = 'search' and {finished}", max_results=1)
    evaluations = client.search_runs([exp.experiment_id], f"tags.`ixmcts.stage` = 'evaluate' and {finished}",
                                     order_by=["start_time ASC"], max_results=5)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri", tracking_uri,
                               "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy())
    try:
        wait_until_up(url)
        pages = {"mlflow-runs.png": f"#/experiments/{exp.experiment_id}/runs",
                 "mlflow-registry.png": f"#/models/ixmcts-{scenario}-policy"}
        if search:
            pages["mlflow-search-metrics.png"] = f"#/experiments/{exp.experiment_id}/runs/{search[0].info.run_id}/model-metrics"
        if evaluations:
            ids = json.dumps([r.info.run_id for r in evaluations])
            pages["mlflow-compare-evaluate.png"] = f"#/compare-runs?runs={ids}&experiments={json.dumps([exp.experiment_id])}"
        with sync_playwright() as pw:
            chromium = pw.chromium.launch(executable_path=browser, args=CHROMIUM_FLAGS)
            page = chromium.new_page(viewport={"width": 1600, "height": 1000})
            page.goto(f"{url}/{pages['mlflow-runs.png']}")
            time.sleep(20)  # the first load builds the UI's caches
            for name, fragment in pages.items():
                page.goto(f"{url}/{fragment}")
                page.wait_for_load_state("load")
                time.sleep(8)  # the UI keeps polling, so no network-idle moment: let tables and charts render
                hide_assistant(page)
                if name == "mlflow-runs.png":
                    expand_parent_runs(page)
                page.screenshot(path=str(out / name), full_page=False)
                print(f"{out / name}: {url}/{fragment}")
            chromium.close()
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
