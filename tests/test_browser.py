"""The pages a researcher opens, in a real headless Chromium: report.html of a finished sweep, and the MLflow UI on its store.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs
them); skipped where they are absent.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        "--enable-unsafe-swiftshader",
        "--autoplay-policy=no-user-gesture-required",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(120)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory: pytest.TempPathFactory, tiny_collection: Path) -> dict:
    """A real sweep (Ray, Tune, Optuna, MLflow SQLite) over the small demo collection, and its report."""
    from musicvae.config.sweep_file import parse_sweep
    from musicvae.reporting.report import write_report
    from musicvae.tune.sweep import run_sweep

    folder = tmp_path_factory.mktemp("browser")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    cfg = parse_sweep(
        {
            "name": "browser",
            "description": "a sweep for the browser tests",
            "data": {
                "source": {"kind": "manifest", "path": str(tiny_collection / "metadata.csv"), "text_columns": ["title", "artist"]},
                "audio": {"duration": 1.0},
                "cache_dir": str(folder / "cache"),
            },
            "space": {"model": ["pca", "vae"], "latent_dim": [4], "epochs": 5, "beta": [1.0], "clusterer": ["kmeans", "agglomerative"]},
            "search": {"sampler": "grid", "max_concurrent_trials": 2},
            "trials": {"figures": ["umap"]},
            "tracking": {"uri": uri, "experiment": "browser"},
            "storage_path": str(folder / "ray_results"),
        }
    )
    outcome = run_sweep(cfg, "name: browser\n")
    written = write_report(uri, "browser", ["browser"], folder / "reports")
    report = next(path for path in written if path.name == "report.html")
    return {"report": report, "uri": uri, "outcome": outcome, "metadata": pd.read_csv(tiny_collection / "metadata.csv"), "folder": folder}


def severe(driver) -> list[dict]:
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def test_report_opens_without_errors_and_its_explorer_holds_every_track(browser, finished_sweep: dict) -> None:
    report: Path = finished_sweep["report"]
    browser.get(report.as_uri())
    assert severe(browser) == []
    explorers = browser.execute_script("return Array.from(document.querySelectorAll('.explorer')).map(d => d.id)")
    assert explorers, "no embedding explorer on the page"
    # Every projected track is one point, over the cluster traces (the genre traces hold the same points, hidden).
    counts = browser.execute_script(
        "var gd = document.getElementById(arguments[0]);return gd.data.map(t => [t.meta, t.visible !== false, t.customdata.length]);",
        explorers[0],
    )
    assert sum(n for meta, visible, n in counts if meta == "cluster" and visible) == 36
    assert sum(n for meta, visible, n in counts if meta == "genre" and not visible) == 36
    # The hover data carries the tracks' titles and artists.
    titles = set(
        browser.execute_script("var gd = document.getElementById(arguments[0]); return gd.data.flatMap(t => t.customdata.map(c => c[2]));", explorers[0])
    )
    known = finished_sweep["metadata"]
    assert set(known["title"]) <= titles


def test_the_genre_toggle_shows_the_genre_traces(browser, finished_sweep: dict) -> None:
    browser.get(finished_sweep["report"].as_uri())
    explorer = browser.execute_script("return document.querySelector('.explorer').id")
    buttons = browser.execute_script("return Array.from(document.getElementById(arguments[0]).querySelectorAll('.updatemenu-button')).length", explorer)
    assert buttons == 2
    browser.execute_script(
        "document.getElementById(arguments[0]).querySelectorAll('.updatemenu-button')[1].dispatchEvent(new MouseEvent('click', {bubbles: true}))", explorer
    )
    time.sleep(0.5)
    visible = browser.execute_script("return document.getElementById(arguments[0]).data.filter(t => t.visible !== false).map(t => t.meta)", explorer)
    assert visible and set(visible) == {"genre"}
    assert severe(browser) == []


def test_the_method_table_sorts_by_a_column(browser, finished_sweep: dict) -> None:
    from selenium.webdriver.common.by import By

    browser.get(finished_sweep["report"].as_uri())
    headers = browser.find_elements(By.CSS_SELECTOR, "#methods th")
    ari = next(h for h in headers if h.text.startswith("ARI"))
    column = headers.index(ari)

    def values() -> list[float]:
        cells = browser.execute_script("return Array.from(document.querySelectorAll('#methods tbody tr')).map(r => r.cells[arguments[0]].dataset.v)", column)
        return [float(v) for v in cells]

    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", ari)  # clear of the player fixed at the window's foot
    ari.click()
    assert values() == sorted(values(), reverse=True) and ari.get_attribute("aria-sort") == "descending"
    ari.click()
    assert values() == sorted(values()) and ari.get_attribute("aria-sort") == "ascending"
    assert len(values()) == 12  # pca and vae x K-Means and Ward x k 2, 3, 4 (searched: 36 tracks)


def test_clicking_a_point_plays_its_clip(browser, finished_sweep: dict) -> None:
    report: Path = finished_sweep["report"]
    browser.get(report.as_uri())
    explorer = browser.execute_script("return document.querySelector('.explorer').id")
    # A click on a point as plotly reports it (the WebGL canvas cannot be aimed at from here): our handler plays that point's file.
    point = browser.execute_script(
        "var gd = document.getElementById(arguments[0]); var d = gd.data[0].customdata[0];gd.emit('plotly_click', {points: [{customdata: d}]}); return d;",
        explorer,
    )
    time.sleep(1.0)
    state = browser.execute_script(
        "var a = document.getElementById('audio');"
        "return [a.getAttribute('src'), a.error ? a.error.code : null, a.readyState, document.getElementById('playing').textContent]"
    )
    src, error, ready, playing = state
    assert src == point[5] and (report.parent / src).resolve().is_file()
    assert error is None and ready >= 1, state  # the browser found and decoded the FLAC file
    assert point[2] in playing


def test_a_screenshot_of_the_report_is_not_blank(browser, finished_sweep: dict, tmp_path: Path) -> None:
    from PIL import Image

    browser.get(finished_sweep["report"].as_uri())
    path = tmp_path / "report.png"
    assert browser.save_screenshot(str(path))
    image = Image.open(path).convert("L")
    low, high = image.getextrema()
    assert image.size[0] >= 1000 and high - low > 100  # text and charts, not a white page


def test_the_choice_of_k_is_drawn_with_the_chosen_k_marked(browser, finished_sweep: dict) -> None:
    """No n_clusters in the sweep: k was searched, and report.html shows the rules and stability against k."""
    from selenium.webdriver.common.by import By

    browser.get(finished_sweep["report"].as_uri())
    chart = browser.find_element(By.ID, "k-curve")
    browser.execute_script("arguments[0].scrollIntoView();", chart)
    traces = browser.execute_script("return arguments[0].data.map(t => [t.name, t.visible === true || t.visible === undefined]);", chart)
    shown = [name for name, visible in traces if visible]
    assert "combined" in shown and "stability" in shown and "ARI" in shown
    chosen = finished_sweep["outcome"].selection.row(finished_sweep["outcome"].selection.winner)["n_clusters"]
    annotations = browser.execute_script("return (arguments[0].layout.annotations || []).map(a => a.text);", chart)
    assert annotations == [f"chosen k = {int(chosen)}"]
    chart.screenshot(str(finished_sweep["folder"] / "k-curve.png"))
    assert severe(browser) == []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_mlflow_ui_lists_the_sweep_with_its_nested_trials(browser, finished_sweep: dict) -> None:
    from mlflow.tracking import MlflowClient
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from musicvae.tune.sweep import runs_page

    outcome = finished_sweep["outcome"]
    children = MlflowClient(finished_sweep["uri"]).search_runs([outcome.experiment_id], f"tags.`mlflow.parentRunId` = '{outcome.parent_run_id}'")
    assert len(children) == 12
    port = _free_port()
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    server = subprocess.Popen(
        [str(mlflow_bin), "ui", "--backend-store-uri", finished_sweep["uri"], "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its workers too are stopped, by process group
        env={k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"},
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "mlflow ui did not start"
                time.sleep(0.5)
        browser.get(runs_page(f"http://127.0.0.1:{port}", outcome.experiment_id))
        wait = WebDriverWait(browser, 90)
        # The parent run's row has the expander of its nested runs; the trials are hidden until it is opened.
        find_expander = (
            "var a = Array.from(document.querySelectorAll('a[href*=\"/runs/\"]')).find(e => e.textContent.trim() === arguments[0]);"
            "var row = a && a.closest('[role=row]'); return row ? row.querySelector('button[data-component-id*=runnamecellrenderer]') : null;"
        )
        try:
            expand = wait.until(lambda d: d.execute_script(find_expander, "browser"))
        except Exception:
            browser.save_screenshot(str(finished_sweep["folder"] / "mlflow-ui.png"))
            raise
        assert expand is not None, "the sweep's run has no nested runs to expand"
        expand.click()
        names = [run.info.run_name for run in children]
        wait.until(lambda d: all(name in d.find_element(By.TAG_NAME, "body").text for name in names))
        # The sweep's champion in the model registry: its version's page shows the alias, the role tag and the signature.
        assert outcome.registered is not None and outcome.registered.name == "browser"
        browser.get(f"http://127.0.0.1:{port}/#/models/browser/versions/{outcome.registered.champion}")
        try:
            shown = ("champion", "musicvae.role", "Inputs (2)", "Outputs (")  # its alias, its role, the signature (track_id and path in)
            wait.until(lambda d: all(text in d.find_element(By.TAG_NAME, "body").text for text in shown))
        finally:
            browser.save_screenshot(str(finished_sweep["folder"] / "mlflow-model-version.png"))
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
