"""How long report.html's embedding explorer takes to draw, in headless Chromium, at 3000 and 100 000 points.

The explorer is built by ``musicvae.reporting.report_html.explorer_figure`` exactly as
the report builds it (a WebGL trace per cluster and per genre, hover data per
point), on a synthetic collection of N tracks in 10 clusters and 5 genres,
inlined into a page with plotly.js. Each page is loaded three times; printed
are the median time to the browser's load event (the page's scripts,
``Plotly.newPlot`` among them, have run) and to the explorer's first drawn
frame, and the page's size. Pass report.html files to time them as well.

    python bench/report_render.py
    python bench/report_render.py reports/quickstart/report.html reports/fma-hard/report.html

Needs chromium and chromium-driver (Debian: apt-get install chromium chromium-driver).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.offline

from musicvae.reporting.charts import Explored, explorer_figure  # noqa: E402

SIZES = (3000, 100_000)
GOAL_SECONDS = 2.0  # 3000 points (the FMA table's size) drawn in under 2 s

# Time from navigation to the explorer's first animation frame after its plot exists.
FIRST_FRAME = """
var done = arguments[arguments.length - 1];
function ready() { var gd = document.querySelector('.explorer'); return gd && gd._fullLayout && gd.calcdata; }
(function poll() { if (ready()) { requestAnimationFrame(function () { done(performance.now()); }); } else { setTimeout(poll, 5); } })();
"""


def synthetic(n: int, seed: int = 0) -> Explored:
    rng = np.random.default_rng(seed)
    clusters = rng.integers(0, 10, n)
    centres = rng.normal(scale=8, size=(10, 2))
    xy = centres[clusters] + rng.normal(size=(n, 2))
    tracks = pd.DataFrame(
        {
            "track_id": [f"t{i:06d}" for i in range(n)],
            "cluster": clusters,
            "genre": np.array(["Rock", "Pop", "Folk", "Hip-Hop", "Electronic"])[rng.integers(0, 5, n)],
            "artist": [f"Artist {i % 977}" for i in range(n)],
            "title": [f"Title {i}" for i in range(n)],
            "audio": [f"audio/{i:06d}.mp3" for i in range(n)],
            "x": xy[:, 0],
            "y": xy[:, 1],
        }
    )
    return Explored("selected", "synthetic", "t", tracks, "umap")


def page(n: int) -> str:
    figure = explorer_figure(synthetic(n)).to_html(full_html=False, include_plotlyjs=False, div_id="explorer")
    figure = figure.replace('class="plotly-graph-div"', 'class="plotly-graph-div explorer"')
    return f"<!DOCTYPE html><html><head><meta charset='utf-8'><script>{plotly.offline.get_plotlyjs()}</script></head><body>{figure}</body></html>"


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000", "--enable-unsafe-swiftshader"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.set_script_timeout(300)
    return driver


def time_page(driver, path: Path, repeats: int = 3) -> dict:
    loads, frames, errors = [], [], 0
    for _ in range(repeats):
        driver.get("about:blank")
        driver.get(path.as_uri())
        frames.append(driver.execute_async_script(FIRST_FRAME) / 1000)
        loads.append(driver.execute_script("return performance.getEntriesByType('navigation')[0].loadEventEnd") / 1000)
        errors += sum(entry["level"] == "SEVERE" for entry in driver.get_log("browser"))
    return {"load_s": statistics.median(loads), "first_frame_s": statistics.median(frames), "console_errors": errors, "MB": path.stat().st_size / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("reports", nargs="*", type=Path, help="report.html files to time as well")
    args = parser.parse_args()
    if not (shutil.which("chromium") or shutil.which("chromium-browser")) or not shutil.which("chromedriver"):
        raise SystemExit("needs chromium and chromium-driver (apt-get install chromium chromium-driver)")
    rows = []
    driver = browser()
    try:
        with tempfile.TemporaryDirectory() as folder:
            for n in SIZES:
                path = Path(folder) / f"explorer-{n}.html"
                path.write_text(page(n), encoding="utf-8")
                rows.append({"page": f"explorer, {n} points", **time_page(driver, path)})
        for report in args.reports:
            rows.append({"page": str(report), **time_page(driver, report)})
    finally:
        driver.quit()
    table = pd.DataFrame(rows)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    first = table.iloc[0]
    print(
        f"\nexplorer at {SIZES[0]} points: first frame {first['first_frame_s']:.2f} s "
        f"(goal < {GOAL_SECONDS:g} s): {'met' if first['first_frame_s'] < GOAL_SECONDS else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
