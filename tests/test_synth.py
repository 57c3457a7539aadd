from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from musicvae.data.synth import GENRES, SAMPLE_RATE, synthesize_collection


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*.flac")):
        h.update(path.name.encode())
        h.update(sf.read(path, dtype="int16")[0].tobytes())
    h.update((folder / "metadata.csv").read_bytes())
    return h.hexdigest()


def test_collection_layout_and_metadata(tiny_collection: Path) -> None:
    meta = pd.read_csv(tiny_collection / "metadata.csv")
    assert list(meta.columns) == ["track_id", "path", "label", "title", "artist"]
    assert len(meta) == 6 * len(GENRES) and len(GENRES) >= 5
    assert meta["label"].value_counts().eq(6).all()
    for row in meta.itertuples():
        assert Path(row.path).parts[0] == row.label  # <root>/<label>/<id>.flac
        audio, rate = sf.read(tiny_collection / row.path)
        assert rate == SAMPLE_RATE and audio.ndim == 1 and len(audio) == 2 * SAMPLE_RATE
        assert 0.5 < np.abs(audio).max() <= 1.0


def test_text_never_names_the_genre(tiny_collection: Path) -> None:
    meta = pd.read_csv(tiny_collection / "metadata.csv")
    text = " ".join(meta["title"].str.lower()) + " " + " ".join(meta["artist"].str.lower()) + " ".join(meta["track_id"])
    for genre in GENRES:
        assert genre.name not in text


def test_deterministic_for_a_seed(tmp_path: Path) -> None:
    a, b, c = (synthesize_collection(tmp_path / name, per_genre=2, seed=seed, clip_seconds=1.0) for name, seed in (("a", 3), ("b", 3), ("c", 4)))
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")
    pd.testing.assert_frame_equal(a, b)


def test_genres_differ_in_tempo_timbre_and_pitch() -> None:
    tempos = {g.tempo for g in GENRES}
    pitches = {g.pitch for g in GENRES}
    timbres = {g.harmonics for g in GENRES}
    rhythms = {g.drums for g in GENRES}
    assert min(len(tempos), len(pitches), len(timbres), len(rhythms)) >= 5


def test_cli_writes_a_collection(tmp_path: Path) -> None:
    from musicvae.cli import main

    assert main(["data", "synth", "--out", str(tmp_path / "demo"), "--per-genre", "2", "--seconds", "1"]) == 0
    assert len(pd.read_csv(tmp_path / "demo" / "metadata.csv")) == 2 * len(GENRES)
