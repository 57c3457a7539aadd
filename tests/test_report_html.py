"""report.html's parts without a browser: audio links, typical tracks, the explorer's traces (tests/test_browser.py opens the page)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from musicvae.reporting.charts import HOVER_COLUMNS, Explored, composition_figure, explorer_figure
from musicvae.reporting.report_html import audio_links, typical_tracks


def explored(genres: bool = True) -> Explored:
    tracks = pd.DataFrame(
        {
            "track_id": ["a", "b", "c", "d", "e", "f"],
            "cluster": [0, 0, 0, 1, 1, -1],
            "genre": ["rock", "rock", "folk", "folk", "folk", "rock"] if genres else [""] * 6,
            "artist": ["A"] * 6,
            "title": ["Ta", "Tb", "Tc", "Td", "Te", "Tf"],
            "audio": [""] * 6,
            "z00": [0.0, 1.0, 10.0, 5.0, 5.2, 0.0],
            "z01": [0.0, 0.0, 0.0, 5.0, 5.0, 0.0],
            "x": [0.0, 1, 2, 3, 4, np.nan],  # f was not in the projected sample
            "y": [0.0, 1, 2, 3, 4, np.nan],
        }
    )
    return Explored("selected", "m", "t", tracks, "umap")


def test_audio_links_are_relative_to_the_report_and_empty_for_object_stores(tmp_path: Path) -> None:
    clip = tmp_path / "music" / "rock" / "a.flac"
    report = tmp_path / "reports" / "sweep"
    links = audio_links(pd.Series([str(clip), "s3://bucket/a.mp3", "https://example.org/a.mp3", None]), report)
    assert links == ["../../music/rock/a.flac", "", "https://example.org/a.mp3", ""]


def test_typical_tracks_are_the_nearest_to_each_centroid_and_skip_noise() -> None:
    typical = typical_tracks(explored().tracks, n=2)
    assert sorted(typical) == [0, 1]  # no entry for noise (-1)
    # cluster 0's centroid is (11/3, 0): b (1, 0) is nearest, then a (0, 0); c (10, 0) is the farthest.
    assert typical[0]["track_id"].tolist() == ["b", "a"]
    assert set(typical[1]["track_id"]) == {"d", "e"}


def test_the_explorer_has_a_trace_per_cluster_and_per_genre_with_every_projected_track() -> None:
    figure = explorer_figure(explored())
    clusters = [t for t in figure.data if t.meta == "cluster"]
    genres = [t for t in figure.data if t.meta == "genre"]
    assert [t.name for t in clusters] == ["cluster 0", "cluster 1"] and all(t.visible is not False for t in clusters)
    assert sorted(t.name for t in genres) == ["folk", "rock"] and all(t.visible is False for t in genres)
    assert sum(len(t.x) for t in clusters) == sum(len(t.x) for t in genres) == 5  # f has no coordinates
    assert list(clusters[0].customdata[0]) == ["a", "A", "Ta", "rock", 0, ""] and len(HOVER_COLUMNS) == 6
    assert [b.label for b in figure.layout.updatemenus[0].buttons] == ["colour by cluster", "colour by genre (labels)"]


def test_without_labels_there_is_no_genre_toggle_and_composition_shows_sizes() -> None:
    item = explored(genres=False)
    figure = explorer_figure(item)
    assert {t.meta for t in figure.data} == {"cluster"} and not figure.layout.updatemenus
    bars = composition_figure(item).data
    assert len(bars) == 1 and list(bars[0].y) == [1, 3, 2]  # noise, cluster 0, cluster 1


def test_the_report_modules_import_no_ray() -> None:
    """`musicvae report` reads MLflow only: it must not pay for (or need) Ray."""
    import subprocess
    import sys

    code = "import sys, musicvae.reporting.report, musicvae.reporting.report_html, musicvae.tracking.runs; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
