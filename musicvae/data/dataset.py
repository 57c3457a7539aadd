"""The data every trial of a sweep shares: a matrix of features plus evaluation labels.

:func:`load_feature_set` is the data side of the flow in one call:
source -> (Ray Data extraction into the feature store) -> standardised matrix.
The labels ride along for evaluation only; they never enter ``features``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.preprocessing import StandardScaler

from musicvae.config.sections import DataConfig, FMAFeaturesSource, TableSource, TextFeatureConfig, expand_path
from musicvae.data.features.audio import TAGS_SUFFIX, feature_names, mfcc_feature_names
from musicvae.data.features.extract import extract_features
from musicvae.data.features.store import ExtractedFeatures, SkippedFile, content_hash, read_store, write_store
from musicvae.data.locations import absolute, join
from musicvae.data.sources import list_tracks, read_feature_table, read_fma_features


@dataclass(frozen=True)
class Scaling:
    """How one input became its matrix: the columns kept (in order) and the standardisation fitted on them (None: not standardised)."""

    columns: list[str]
    mean: np.ndarray | None = field(default=None, repr=False)
    scale: np.ndarray | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Preprocessing:
    """What was fitted between the source and the matrices: what a trial's pipeline repeats on new tracks (:mod:`musicvae.serving.pipeline`)."""

    data: DataConfig  # the sweep's data section: the source's kind, the audio and text settings, the metadata groups
    inputs: dict[str, Scaling]  # by input name (space.input)
    spectrograms: dict[str, tuple[np.ndarray | None, np.ndarray | None]] = field(default_factory=dict, repr=False)  # kind -> row mean, std
    text_mean: np.ndarray | None = field(default=None, repr=False)
    text_scale: np.ndarray | None = field(default=None, repr=False)
    checkpoints: dict[str, str] = field(default_factory=dict)  # musicnn model -> its checkpoint's sha256


@dataclass(frozen=True)
class FeatureSet:
    track_ids: list[str]
    features: np.ndarray  # (n_tracks, n_features) float32, standardised if configured
    feature_names: list[str]
    labels: np.ndarray | None  # int codes into label_names; evaluation only
    label_names: list[str]
    text: pd.DataFrame = field(repr=False)  # metadata text per track (no labels)
    spectrograms: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # kind -> (n, rows, frames), rows standardised if configured
    text_embeddings: np.ndarray | None = field(default=None, repr=False)  # (n, dim), standardised if configured; zeros where text_missing
    text_missing: np.ndarray | None = field(default=None, repr=False)  # (n,) bool: the track has no text at all
    skipped: list[SkippedFile] = field(default_factory=list, repr=False)
    summary: str = ""
    groups: np.ndarray | None = field(default=None, repr=False)  # (n,) int codes of data.group_by's metadata groups; metadata, not labels
    # The other vectors a model can take (space.input), by name: each musicnn model's features, standardised, near-constant columns dropped.
    vectors: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    tags: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # musicnn model -> (n, 50) mean tag probabilities: to name clusters
    preprocessing: Preprocessing | None = field(default=None, repr=False)  # None: built by hand (tests), not from a source

    @property
    def n_labels(self) -> int | None:
        return len(self.label_names) if self.labels is not None else None

    @property
    def inputs(self) -> dict[str, np.ndarray]:
        """Every vector a model can take, by the name ``space.input`` gives it: 'mfcc' (the summary vector, or a table's
        feature columns) first."""
        return {"mfcc": self.features, **self.vectors}

    def input(self, name: str) -> np.ndarray:
        if name not in self.inputs:
            raise ValueError(f"input '{name}' was not extracted (this data has: {', '.join(self.inputs)}); add it to data.audio.features")
        return self.inputs[name]

    def track_table(self) -> pd.DataFrame:
        """What a reader of the results needs per track: id, metadata text (title, artist, ...), file path, genre (labels: evaluation only)."""
        table = self.text.copy()
        table["track_id"] = self.track_ids
        if self.labels is not None:
            table["genre"] = np.asarray(self.label_names)[self.labels]
        return table.astype({c: "string" for c in table.columns})

    def tag_table(self) -> pd.DataFrame | None:
        """musicnn's mean tag probabilities per track ('MSD: rock', ...), what the tags are in ``attrs``; None without musicnn.

        For naming clusters in the report: the tags come from a model trained on another collection, never from this one's labels.
        """
        if not self.tags:
            return None
        from musicvae.data.features.musicnn import TAG_SOURCES, TAGS  # torch: only where musicnn was extracted

        columns = {f"{model}: {tag}": values[:, i] for model, values in self.tags.items() for i, tag in enumerate(TAGS[model])}
        table = pd.DataFrame({"track_id": self.track_ids, **columns})
        table.attrs["tag_sources"] = {model: TAG_SOURCES[model] for model in self.tags}
        return table


def _encode_labels(labels: list | None) -> tuple[np.ndarray | None, list[str]]:
    if labels is None or all(label is None for label in labels):
        return None, []
    if any(label is None for label in labels):
        # Partial labels would make ARI/NMI silently refer to a subset: refuse clearly.
        missing = sum(label is None for label in labels)
        raise ValueError(f"{missing} of {len(labels)} tracks have no label; label all tracks or none")
    names = sorted(set(map(str, labels)))
    index = {name: i for i, name in enumerate(names)}
    return np.array([index[str(label)] for label in labels], dtype=np.int64), names


def load_feature_set(cfg: DataConfig) -> FeatureSet:
    """Everything a sweep needs from the data, ready for trials."""
    if isinstance(cfg.source, (TableSource, FMAFeaturesSource)):
        if isinstance(cfg.source, TableSource):
            table, dropped, origin = read_feature_table(cfg.source), [], cfg.source.path
        else:
            (table, dropped), origin = read_fma_features(cfg.source), cfg.source.features_csv
        track_ids, raw, names, labels = table.track_ids, table.features, table.feature_names, table.labels
        text = table.text.assign(track_id=track_ids)[["track_id", *table.text.columns]]
        skipped = [SkippedFile(tid, origin, reason) for tid, reason in dropped]
        spectrograms: dict[str, np.ndarray] = {}
        vectors, tags, checkpoints = {}, {}, {}
        summary = f"Features: {len(track_ids)} tracks x {len(names)} features from {origin}; {len(skipped)} rows skipped"
        summary += "".join(f"\n  skipped track {s.track_id}: {s.reason}" for s in skipped[:20])
    else:
        tracks = list_tracks(cfg.source, cfg.cache_dir)
        extracted, report = extract_features(tracks, cfg.audio, absolute(cfg.cache_dir))
        kept = tracks.set_index("track_id").loc[extracted.track_ids].reset_index()
        track_ids = extracted.track_ids
        names = mfcc_feature_names(cfg.audio)
        raw = extracted.arrays["mfcc"]
        spectrograms = {kind: extracted.arrays[kind] for kind in ("mfcc_spectrogram", "logmel") if kind in extracted.arrays}
        vectors = {name: extracted.arrays[name] for name in cfg.audio.inputs[1:]}
        tags = {model: extracted.arrays[name + TAGS_SUFFIX] for model, name in zip(cfg.audio.musicnn.models, cfg.audio.inputs[1:])}
        labels = kept["label"].tolist()
        text = kept.drop(columns=["label"])
        skipped, summary, checkpoints = report.skipped, report.summary(), report.checkpoints

    codes, label_names = _encode_labels(labels)
    inputs: dict[str, Scaling] = {}
    column_names = feature_names(cfg.audio) if not isinstance(cfg.source, (TableSource, FMAFeaturesSource)) else {}
    for name, values, columns in [("mfcc", raw, names), *((n, v, column_names[n]) for n, v in vectors.items())]:
        values, columns, note = keep_varying(name, values, columns)
        summary += note
        matrix, inputs[name] = standardise(values, columns) if cfg.standardize else (values, Scaling(columns))
        if name == "mfcc":
            features, names = matrix, columns
        else:
            vectors[name] = matrix
    row_stats = {kind: row_statistics(values) if cfg.standardize else (None, None) for kind, values in spectrograms.items()}
    spectrograms = {kind: standardize_rows(values, *row_stats[kind]) for kind, values in spectrograms.items()} if cfg.standardize else spectrograms
    embeddings = missing = text_scaling = None
    if cfg.text is not None:
        embeddings, missing = text_modality(text, cfg.text, label_names, absolute(cfg.cache_dir))
        summary += f"\nText: {cfg.text.method} embeddings {embeddings.shape[1]}-D; {int(missing.sum())} of {len(missing)} tracks have no text"
        if cfg.standardize and (~missing).sum() > 1:
            present = ~missing
            embeddings = embeddings.copy()
            embeddings[present], text_scaling = standardise(embeddings[present], [])
    groups = None
    if cfg.group_by:
        groups, note = metadata_groups(text, cfg.group_by)
        summary += "\n" + note
    text_mean, text_scale = (text_scaling.mean, text_scaling.scale) if text_scaling else (None, None)
    preprocessing = Preprocessing(cfg, inputs, row_stats, text_mean, text_scale, checkpoints)
    fields = (track_ids, features, names, codes, label_names, text, spectrograms, embeddings, missing, skipped, summary, groups, vectors, tags)
    return FeatureSet(*fields, preprocessing)


def standardise(values: np.ndarray, columns: list[str]) -> tuple[np.ndarray, Scaling]:
    """z-scores per column (scikit-learn's StandardScaler, float32) and the scaling fitted, to apply to new tracks the same way."""
    scaler = StandardScaler().fit(values)
    return scaler.transform(values).astype(np.float32), Scaling(columns, scaler.mean_, scaler.scale_)


NEAR_CONSTANT = 1e-3  # a column whose spread is below this share of a typical column's is dropped before standardising


def informative_columns(values: np.ndarray) -> np.ndarray:
    """Which columns vary: a standard deviation above ``NEAR_CONSTANT`` times the median of the columns that vary at all.

    Standardising scales every column to unit variance, so a column that is
    constant but for float rounding (a unit of musicnn that never fires: its
    mean over a clip's patches differs between tracks by 1e-8) would count as
    much as a real feature, its rounding noise as signal. Pretrained networks
    have hundreds of such units; MFCC statistics have none.
    """
    spread = values.astype(np.float64).std(axis=0)
    varying = spread[spread > 0]
    if varying.size == 0:
        return np.zeros(values.shape[1], bool)
    return spread > NEAR_CONSTANT * np.median(varying)


def keep_varying(name: str, values: np.ndarray, columns: list[str] | None = None) -> tuple[np.ndarray, list[str] | None, str]:
    """``values`` (and their column names) without the columns :func:`informative_columns` drops, and a summary line when any is
    dropped; an input with no varying column is an error that names it."""
    kept = informative_columns(values)
    if not kept.any():
        raise ValueError(f"input '{name}': every one of its {len(kept)} columns is constant across the {len(values)} tracks")
    if kept.all():
        return values, columns, ""
    columns = [c for c, keep in zip(columns, kept) if keep] if columns is not None else None
    return values[:, kept], columns, f"\n{name}: {int(kept.sum())} of {len(kept)} columns kept (the rest constant or nearly)"


def metadata_groups(text: pd.DataFrame, columns: list[str]) -> tuple[np.ndarray, str]:
    """Group codes per track from metadata columns (``[artist]``: one group per artist), and a line that says so.

    A track whose value is missing or empty is a group of its own: "unknown
    artist" must not pool hundreds of unrelated tracks into one.
    """
    absent = [c for c in columns if c not in text.columns]
    if absent:
        raise ValueError(f"data.group_by: {absent} not in the data's metadata (it has: {', '.join(c for c in text.columns if c != 'track_id') or 'none'})")
    values = text[columns].astype("string").fillna("").apply(lambda column: column.str.strip().str.casefold())
    blank = (values == "").any(axis=1).to_numpy()
    keys = values.agg("\x1f".join, axis=1).to_numpy(dtype=object)
    keys[blank] = [f"\x00{i}" for i in np.flatnonzero(blank)]  # a group of one each
    groups = pd.factorize(keys)[0].astype(np.int64)
    sizes = np.bincount(groups)
    shared = float((sizes[groups] > 1).mean())
    note = (
        f"Groups (metadata, not labels): {len(sizes)} groups by {' + '.join(columns)}; {shared:.0%} of the tracks share theirs with another; "
        f"each track's embedding is pooled with its group's before clustering (space.group_weight)"
    )
    return groups, note


def row_statistics(spectrograms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each spectrogram row's mean and std over all tracks and frames, shaped (1, rows, 1) to broadcast."""
    return spectrograms.mean(axis=(0, 2), keepdims=True), spectrograms.std(axis=(0, 2), keepdims=True)


def standardize_rows(spectrograms: np.ndarray, mean: np.ndarray | None = None, std: np.ndarray | None = None) -> np.ndarray:
    """z-score each spectrogram row (an MFCC coefficient or a mel band) over all tracks and frames (given, or of these).

    Per row, not per value: the frames of a row share one scale (MFCC 0 is
    loudness, in the hundreds; higher coefficients are small), and a per-frame
    scale would erase how a track changes over time.
    """
    if mean is None or std is None:
        mean, std = row_statistics(spectrograms)
    return ((spectrograms - mean) / np.where(std > 0, std, 1.0)).astype(np.float32)


def text_modality(text: pd.DataFrame, cfg: TextFeatureConfig, label_names: list[str], cache_dir: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Text embeddings per track (cached by content) and the missing-text flags.

    ``text`` holds track_id, text columns and, for audio sources, ``path``:
    a track with no metadata falls back to its file's own title/artist/album
    tags. Label names are scrubbed from the text before embedding.
    """
    from musicvae.data.features.text import embed_texts, read_lyrics, track_texts

    lyrics = read_lyrics(str(expand_path(cfg.lyrics))) if cfg.lyrics else None
    texts = track_texts(text, cfg.columns, label_names, lyrics=lyrics, use_embedded_tags="path" in text.columns)
    directory = join(cache_dir, "text", content_hash({"config": cfg.model_dump(), "texts": texts.texts}))
    cached = read_store(directory)
    if cached is not None:
        return cached[0].arrays["text"], texts.missing
    embeddings = embed_texts(texts, cfg)
    stored = ExtractedFeatures(text["track_id"].astype(str).tolist(), {"text": embeddings})
    write_store(directory, stored, {}, {"config": cfg.model_dump(), "n_missing": int(texts.missing.sum())})
    return embeddings, texts.missing
