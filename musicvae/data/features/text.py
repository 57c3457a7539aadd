"""The text modality: each track's metadata (and lyrics) as one vector.

A track's text is its title, artist and album (plus lyrics when given),
joined as ``"title. artist. album. lyrics"``, and embedded by
:func:`embed_texts` with one of :mod:`musicvae.data.features.text_embedders`.

The text must never tell the model the answer. Three guards:

* genre-like columns (``label``, ``genre``, ``genre_top``, ... see
  :data:`musicvae.config.sections.GENRE_LIKE_COLUMNS`), ``track_id`` and ``path``
  (a folder source's track id and path are ``<label>/<file>``) are never read
  as text, even when asked for;
* tags read from the audio files are limited to title, artist and album: FMA's
  MP3s carry the genre in ID3 ``TCON`` and often a comment naming it too;
* every label name is removed from every text
  (:func:`~musicvae.data.features.label_scrub.scrub_labels`), so a
  title like "Rock the Boat" does not hand the clusterer the genre "Rock".

A track with no text at all is flagged in ``missing`` and gets a zero row;
downstream code uses the flag, not the zeros.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from musicvae.config.sections import GENRE_LIKE_COLUMNS, TextFeatureConfig, expand_path
from musicvae.data.features.label_scrub import scrub_labels
from musicvae.data.features.text_embedders import sentence_embeddings, tfidf_embeddings

# The only fields taken from a file's own tags. Never "genre" (ID3 TCON is the
# label on FMA) and never "comment" (free text that often names the genre).
EMBEDDED_TAG_FIELDS = ("title", "artist", "album")

# Columns that identify the file rather than describe the music; a folder
# source's track_id and path both start with the label folder.
_NEVER_TEXT = frozenset({"track_id", "path"}) | GENRE_LIKE_COLUMNS

_SEPARATOR = ". "


@dataclass(frozen=True)
class TrackTexts:
    """One text per track, in the order of the track table."""

    texts: list[str]
    missing: np.ndarray  # (n_tracks,) bool: True where the track has no text at all


# ------------------------------------------------------------------ reading


def embedded_tags(path: str) -> dict[str, str]:
    """Title, artist and album from the audio file's own tags; {} when unreadable.

    libsndfile (through soundfile) reads the ID3 tags of MP3s as well as
    WAV/FLAC/OGG metadata, so no extra tag library is needed. Only the fields
    in :data:`EMBEDDED_TAG_FIELDS` are returned, whatever else the file has.
    """
    import soundfile as sf

    try:
        with sf.SoundFile(path) as audio:
            metadata = audio.copy_metadata()
    except Exception:  # LibsndfileError, RuntimeError, OSError, TypeError: all mean "no tags"
        return {}
    tags = {}
    for field in EMBEDDED_TAG_FIELDS:
        value = metadata.get(field)
        if isinstance(value, str) and value.strip():
            tags[field] = value.strip()
    return tags


def read_lyrics(path: str) -> dict[str, str]:
    """Lyrics by track id (str) from a CSV (``track_id``, ``lyrics``) or a JSON object.

    The format follows the extension (``.json``; anything else is read as
    CSV unless it starts with ``{``). Empty lyrics are dropped. A missing file
    is a FileNotFoundError; a file of the wrong shape a ValueError saying what
    is wrong, so a bad path in a sweep file fails before any embedding starts.
    """
    file = expand_path(path)
    if not file.is_file():
        raise FileNotFoundError(f"lyrics file {file} does not exist")
    is_json = file.suffix.lower() == ".json"
    if not is_json and file.suffix.lower() not in (".csv", ".tsv"):
        with open(file, encoding="utf-8-sig") as handle:
            is_json = handle.read(256).lstrip().startswith("{")
    return _read_lyrics_json(file) if is_json else _read_lyrics_csv(file)


def _read_lyrics_json(file: Path) -> dict[str, str]:
    try:
        data = json.loads(file.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"lyrics file {file}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"lyrics file {file}: expected a JSON object {{track_id: lyrics}}, got a {type(data).__name__}")
    lyrics = {}
    for key, value in data.items():
        if value is None:
            continue
        if not isinstance(value, str):
            raise ValueError(f"lyrics file {file}: the lyrics of track {key!r} are a {type(value).__name__}, not a string")
        if value.strip():
            lyrics[str(key)] = value.strip()
    return lyrics


def _read_lyrics_csv(file: Path) -> dict[str, str]:
    try:
        table = pd.read_csv(file, dtype=str, keep_default_na=False, sep="\t" if file.suffix.lower() == ".tsv" else ",", encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ValueError(f"lyrics file {file}: not a readable CSV ({type(exc).__name__}: {str(exc).strip()[:200]})") from None
    missing = [c for c in ("track_id", "lyrics") if c not in table.columns]
    if missing:
        raise ValueError(f"lyrics file {file}: needs columns track_id and lyrics; missing {missing} (columns: {list(table.columns)[:8]})")
    ids = table["track_id"].str.strip()
    if (ids == "").any():
        raise ValueError(f"lyrics file {file}: {int((ids == '').sum())} rows have no track_id")
    if ids.duplicated().any():
        raise ValueError(f"lyrics file {file}: duplicate track ids, e.g. {ids[ids.duplicated()].head(5).tolist()}")
    return {tid: text.strip() for tid, text in zip(ids, table["lyrics"]) if text.strip()}


# --------------------------------------------------------------- track texts


def _value(value: Any) -> str:
    """A cell as text: "" for None/NaN/blank."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return ""
    return " ".join(str(value).split())


def _lookup(lyrics: Mapping[str, str], track_id: str) -> str:
    """Exact id first; numeric ids also match without leading zeros ("000002" = "2")."""
    if track_id in lyrics:
        return lyrics[track_id]
    if track_id.isdigit():
        return lyrics.get(str(int(track_id)), "") or lyrics.get(f"{int(track_id):06d}", "")
    return ""


def track_texts(
    tracks: pd.DataFrame,
    columns: Sequence[str],
    label_names: Sequence[str],
    lyrics: Mapping[str, str] | None = None,
    use_embedded_tags: bool = False,
) -> TrackTexts:
    """One scrubbed text per track: ``"title. artist. album. lyrics"`` from what is there.

    ``columns`` are read in the given order; those not in the table are
    skipped, and genre-like columns, ``track_id`` and ``path`` are never read
    (see the module docstring). With ``use_embedded_tags``, a title, artist or
    album that is missing or empty in the table comes from the file's own
    tags. Lyrics are looked up by track id (a numeric id also matches with or
    without leading zeros: FMA's "2" is "000002"). Every part is passed
    through :func:`scrub_labels` with the given
    label names plus the table's own labels: every label name is removed from
    every text, not only the track's own, so whether something was removed
    says nothing about the track's label.
    """
    names = {str(n) for n in label_names if n is not None}
    if "label" in tracks.columns:
        names |= {str(v) for v in tracks["label"].dropna().unique()}
    label_set = sorted(names)
    wanted = [c for c in dict.fromkeys(columns) if c not in _NEVER_TEXT]
    present = [c for c in wanted if c in tracks.columns]
    fallback = [c for c in wanted if c in EMBEDDED_TAG_FIELDS] if use_embedded_tags else []
    lyrics = {str(k): v for k, v in lyrics.items()} if lyrics else None

    ids = tracks["track_id"].astype(str).tolist() if "track_id" in tracks.columns else [""] * len(tracks)
    paths = tracks["path"].tolist() if "path" in tracks.columns else [None] * len(tracks)
    values = {c: tracks[c].tolist() for c in present}
    texts = []
    for i in range(len(tracks)):
        tags: dict[str, str] | None = None
        parts = []
        for column in wanted:
            value = _value(values[column][i]) if column in values else ""
            if not value and column in fallback and paths[i]:
                if tags is None:
                    tags = embedded_tags(str(paths[i]))
                value = tags.get(column, "")
            parts.append(value)
        if lyrics is not None:
            parts.append(_value(_lookup(lyrics, ids[i])))
        parts = [scrub_labels(p, label_set) for p in parts if p]
        # A second pass over the joined text catches a name split across fields.
        texts.append(scrub_labels(_SEPARATOR.join(p for p in parts if p), label_set))
    missing = np.array([not t for t in texts], dtype=bool)
    return TrackTexts(texts, missing)


# ---------------------------------------------------------------- dispatch


def embed_texts(texts: TrackTexts, cfg: TextFeatureConfig, seed: int = 0) -> np.ndarray:
    """The text matrix for ``cfg.method``; rows follow ``texts``, missing rows are zeros."""
    if cfg.method in ("tfidf", "char_tfidf"):
        return tfidf_embeddings(texts.texts, texts.missing, dim=cfg.dim, seed=seed, words=cfg.method == "tfidf")
    if cfg.method == "sentence_transformer":
        return sentence_embeddings(texts.texts, texts.missing, model_path=cfg.model_path, batch_size=cfg.batch_size)
    raise ValueError(f"data.text.method: unknown method {cfg.method!r}")
