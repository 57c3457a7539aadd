"""``musicvae assign``: label a whole collection with a fitted pipeline, streaming on Ray Data.

A sweep is run on a sample; the chosen pipeline (``models:/<sweep>@champion``)
then labels every song. The collection is read like a sweep's source (a
folder of audio, a CSV manifest, a feature table, or a sweep file's
``data.source``), its tracks stream through Ray Data in blocks (decoding and
features as in extraction, then the pipeline's model, on a GPU actor where the
cluster has GPUs), and each finished block is written to ``<out>/.parts`` at
once, so an interrupted run continues where it stopped. The clusters are then
assigned over the whole collection in the driver (metadata pooling needs every
track of a group), and ``<out>`` gets

* ``assignments.parquet`` and ``assignments.csv``: track_id, path, cluster
  (-1: noise), distance, confidence and the metadata columns the source has;
* ``playlists/cluster_<k>.m3u``: one playlist per cluster (audio sources);
* ``summary.md``: each cluster's size and its most typical tracks;
* ``skipped.csv``: the files that could not be used, with the reason.

Every check that can fail (the model, the source, the match between them)
runs before anything is written; the files appear whole or not at all.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from musicvae import console
from musicvae.serving.pipeline import NOISE, Pipeline, PipelineError, clustering_space, embed, features, load_pipeline, network
from musicvae.serving.pipeline import assign as assign_clusters

PARTS = ".parts"
TYPICAL = 5  # tracks per cluster in the summary


@dataclass(frozen=True)
class AssignReport:
    out: Path
    n_tracks: int
    n_assigned: int
    skipped: pd.DataFrame  # track_id, path, reason
    sizes: pd.Series  # cluster -> tracks
    seconds: float
    resumed: int  # tracks whose block an earlier run had finished

    def summary(self) -> str:
        sizes = ", ".join(f"{cluster}: {size}" for cluster, size in self.sizes.items())
        lines = [f"Assigned {self.n_assigned} of {self.n_tracks} tracks in {self.seconds:.1f} s ({self.resumed} from an earlier run); clusters {sizes}"]
        lines += [f"  skipped {row.path}: {row.reason}" for row in self.skipped.head(20).itertuples()]
        lines.append(f"Wrote {self.out / 'assignments.csv'}, assignments.parquet, summary.md and playlists/ in {self.out}")
        return "\n".join(lines)


# ---------------------------------------------------------------------- the collection


def read_collection(source: str | Path, pipeline: Pipeline, cache_dir: str = ".musicvae") -> pd.DataFrame:
    """The tracks to assign, as the pipeline reads them: ``track_id`` and ``path`` (audio) or the feature columns, plus metadata.

    ``source`` is a folder of audio, a CSV manifest (a ``path`` column), a
    feature table (CSV or Parquet without one), or a sweep file whose
    ``data.source`` says where the tracks are.
    """
    from musicvae.config.sections import FolderSource, ManifestSource, TableSource
    from musicvae.data.sources import SourceError, list_tracks

    path = Path(source).expanduser()
    if not path.exists():
        raise PipelineError(f"{source}: no such file or folder")
    if path.suffix.lower() in (".yaml", ".yml"):
        from musicvae.config.sweep_file import load_sweep

        config = load_sweep(path).data.source
    elif path.is_dir():
        config = FolderSource(kind="folder", root=str(path))
    elif path.suffix.lower() in (".csv", ".tsv") and "path" in pd.read_csv(path, nrows=0).columns:
        config = ManifestSource(kind="manifest", path=str(path), label_column=None)
    else:
        config = TableSource(kind="table", path=str(path), label_column=None)
    audio = config.kind not in ("table", "fma_features")
    if audio != pipeline.takes_audio:
        fitted = "audio files" if pipeline.takes_audio else "a feature table"
        raise PipelineError(f"{source} is {'audio' if audio else 'a feature table'}, but the pipeline was fitted on {fitted}")
    try:
        tracks = list_tracks(config, cache_dir) if audio else _feature_frame(config)
    except SourceError as exc:  # its message names a sweep file's key; here the source is the command's
        raise PipelineError(re.sub(r"^data\.source\.\w+: ", "", str(exc))) from None
    if tracks.empty:
        raise PipelineError(f"{source}: no tracks found")
    pipeline.check(tracks)
    tracks["track_id"] = tracks["track_id"].astype(str)
    return tracks.drop(columns=["label"], errors="ignore")  # labels, where a source has them, are not the pipeline's business


def _feature_frame(config: Any) -> pd.DataFrame:
    from musicvae.data.sources import read_feature_table, read_fma_features

    table = read_feature_table(config) if config.kind == "table" else read_fma_features(config)[0]
    frame = pd.DataFrame(table.features, columns=table.feature_names)
    frame.insert(0, "track_id", table.track_ids)
    return pd.concat([frame, table.text.reset_index(drop=True)], axis=1)


# ---------------------------------------------------------------------- Ray Data: features and embeddings, block by block


def features_block(block: pd.DataFrame, pipeline: Pipeline) -> dict[str, np.ndarray]:
    """Decode, extract and standardise one block (what the pipeline's model reads), an error per failed row."""
    inputs, errors = features(pipeline, block)
    return {"track_id": block["track_id"].to_numpy(), "error": np.array(errors, dtype=object), **{f"{INPUT}{k}": v for k, v in inputs.items()}}


INPUT = "input:"  # the prefix of a features block's arrays


class EmbedStage:
    """The pipeline's model over blocks, built once per actor; with ``decode``, the block's features first.

    On a cluster with GPUs each actor has one and the blocks come decoded by
    CPU tasks (:func:`features_block`); on CPUs alone each task decodes and
    embeds its own block (:func:`embed_block`), so no arrays cross the object store.
    """

    def __init__(self, pipeline: Pipeline, decode: bool):
        self.pipeline, self.decode, self.model = pipeline, decode, None

    def __call__(self, block: Any) -> pd.DataFrame:
        arrays = features_block(block, self.pipeline) if self.decode else block
        errors = list(arrays["error"])
        ok = np.flatnonzero(np.array(errors) == "")
        z = np.full((len(errors), int(self.pipeline.spec["embedding_dim"])), np.nan, np.float32)
        if len(ok):
            inputs = {k.removeprefix(INPUT): np.asarray(list(v) if v.dtype == object else v)[ok] for k, v in arrays.items() if k.startswith(INPUT)}
            z[ok], self.model = embed(self.pipeline, inputs, self.model)
        out = pd.DataFrame(z, columns=[f"z{i:02d}" for i in range(z.shape[1])])
        out.insert(0, "error", errors)
        out.insert(0, "track_id", np.asarray(arrays["track_id"]))
        return out


def embed_block(block: pd.DataFrame, pipeline: Pipeline) -> pd.DataFrame:
    """One block decoded and embedded in one task: the arrangement on CPUs alone."""
    return EmbedStage(pipeline, decode=True)(block)


def rows_per_block(pipeline: Pipeline) -> int:
    """Blocks of a few seconds' work: about 2000 s of audio to decode (as extraction), or 20,000 rows of a table."""
    if not pipeline.takes_audio:
        return 20000
    return int(np.clip(2000 / (pipeline.data.audio.duration or 30.0), 8, 512))


def _finished(parts: Path) -> pd.DataFrame:
    """What earlier runs finished: every block written to ``parts`` (a block is written whole, then renamed)."""
    files = sorted(parts.glob("*.parquet")) if parts.exists() else []
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True) if files else pd.DataFrame(columns=["track_id", "error"])


def embed_collection(tracks: pd.DataFrame, pipeline: Pipeline, parts: Path, gpus: int | None = None, split: bool | None = None) -> tuple[pd.DataFrame, int]:
    """Every track's embedding (or error), the blocks an earlier run finished read back; returns them and how many were.

    ``gpus`` (default: the cluster's) actors of one GPU each run the model on
    blocks decoded by CPU tasks; without GPUs, one actor per CPU decodes and
    embeds (``split`` forces the first arrangement: tests run it on CPUs).
    """
    import ray

    split = bool(gpus or int(ray.cluster_resources().get("GPU", 0))) if split is None else split

    done = _finished(parts)
    todo = tracks[~tracks["track_id"].isin(set(done["track_id"]))]
    if len(todo):
        parts.mkdir(parents=True, exist_ok=True)
        n_cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        gpus = int(ray.cluster_resources().get("GPU", 0)) if gpus is None else gpus
        size = max(1, min(rows_per_block(pipeline), -(-len(todo) // (2 * n_cpus))))  # at least two blocks per CPU
        ds = ray.data.from_pandas([todo.iloc[i : i + size] for i in range(0, len(todo), size)])
        if split:
            ds = ds.map_batches(features_block, fn_kwargs={"pipeline": pipeline}, batch_size=None, batch_format="pandas", num_cpus=1)
            # Half a CPU each, beside its GPU: the decoding tasks keep the rest (a whole one each, with the tasks, starved Ray Data here).
            actors = {"compute": ray.data.ActorPoolStrategy(size=max(gpus, 1)), "num_gpus": 1 if gpus else 0, "num_cpus": 0.5}
            stage = {"fn_constructor_kwargs": {"pipeline": pipeline, "decode": False}, **actors}
            ds = ds.map_batches(EmbedStage, batch_size=None, batch_format="numpy", **stage)
        else:
            ds = ds.map_batches(embed_block, fn_kwargs={"pipeline": pipeline}, batch_size=None, batch_format="pandas", num_cpus=1)
        ray.data.DataContext.get_current().enable_progress_bars = console.verbose()
        with console.extraction_progress(len(todo)) as advance:
            for block in ds.iter_batches(batch_size=None, batch_format="pandas"):
                _write_part(parts, block)
                advance(len(block), int((block["error"] != "").sum()))
    return _finished(parts), len(done)


def _write_part(parts: Path, block: pd.DataFrame) -> None:
    key = hashlib.sha256("\x1f".join(block["track_id"].astype(str)).encode()).hexdigest()[:20]
    partial = parts / f"{key}.{os.getpid()}.tmp"
    block.to_parquet(partial, index=False)
    os.replace(partial, parts / f"{key}.parquet")


# ---------------------------------------------------------------------- the whole collection's clusters, and the files


def cluster_collection(tracks: pd.DataFrame, embedded: pd.DataFrame, pipeline: Pipeline) -> pd.DataFrame:
    """Cluster, distance and confidence of every track that embedded, over the whole collection (groups need it whole)."""
    table = tracks.merge(embedded, on="track_id", how="left")
    ok = table["error"].fillna("not processed").eq("")
    z = table.loc[ok].filter(regex=r"^z\d+$").to_numpy(np.float32)
    clusters = pd.array([pd.NA] * len(table), dtype="Int64")
    distance, confidence = np.full(len(table), np.nan), np.full(len(table), np.nan)
    if ok.any():
        space = clustering_space(pipeline, z, table.loc[ok].reset_index(drop=True))
        model = network(pipeline) if pipeline.params.clusterer == "vade" else None
        labels, distance[ok.to_numpy()], confidence[ok.to_numpy()] = assign_clusters(pipeline, space, z, model)
        clusters[np.flatnonzero(ok)] = labels
    table["cluster"], table["distance"], table["confidence"] = clusters, distance, confidence
    return table


def assign(model_uri: str, source: str | Path, out: str | Path, *, address: str | None = None, embedding: bool = False) -> AssignReport:
    """Label every track of ``source`` with the pipeline at ``model_uri``; write the files of the module docstring into ``out``."""
    from musicvae.ray_session import init_ray

    start = time.perf_counter()
    out = Path(out).expanduser()
    pipeline = load_pipeline(model_uri)
    tracks = read_collection(source, pipeline)
    started = init_ray(address)
    try:
        embedded, resumed = embed_collection(tracks, pipeline, out / PARTS)
    finally:
        if started:
            import ray

            ray.shutdown()
    table = cluster_collection(tracks, embedded, pipeline)
    write_outputs(table, out, embedding)
    shutil.rmtree(out / PARTS, ignore_errors=True)  # finished: the journal is no longer needed
    skipped = (
        table.loc[table["cluster"].isna(), ["track_id", "path", "error"]] if "path" in table else table.loc[table["cluster"].isna(), ["track_id", "error"]]
    )
    skipped = skipped.rename(columns={"error": "reason"}).assign(path=lambda s: s.get("path", s["track_id"]))
    sizes = table["cluster"].dropna().astype(int).value_counts().sort_index()
    return AssignReport(out, len(table), int(table["cluster"].notna().sum()), skipped, sizes, time.perf_counter() - start, resumed)


def write_outputs(table: pd.DataFrame, out: Path, embedding: bool) -> None:
    """The output files, each written in a temporary folder inside ``out`` and moved into place whole."""
    columns = [c for c in table.columns if not c.startswith("z") and c != "error"]
    columns = ["track_id", *(["path"] if "path" in columns else []), "cluster", "distance", "confidence"] + [
        c for c in columns if c not in ("track_id", "path", "cluster", "distance", "confidence") and not _is_feature(table, c)
    ]
    assigned = table[table["cluster"].notna()]
    result = assigned[columns + ([c for c in table.columns if c.startswith("z")] if embedding else [])]
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=".writing-") as folder:
        staging = Path(folder)
        result.to_parquet(staging / "assignments.parquet", index=False)
        result.to_csv(staging / "assignments.csv", index=False)
        skipped = table[table["cluster"].isna()]
        skipped.reindex(columns=["track_id", "path", "error"]).rename(columns={"error": "reason"}).to_csv(staging / "skipped.csv", index=False)
        (staging / "summary.md").write_text(summary_markdown(result))
        if "path" in result:
            (staging / "playlists").mkdir()
            for cluster, group in result.groupby("cluster"):
                name = "noise" if cluster == NOISE else f"cluster_{cluster}"
                (staging / "playlists" / f"{name}.m3u").write_text("#EXTM3U\n" + "".join(f"{p}\n" for p in group["path"]))
        for item in staging.iterdir():
            target = out / item.name
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(item, target)


def _is_feature(table: pd.DataFrame, column: str) -> bool:
    """A table source's numeric feature column (left out of the assignments: they are the input, not metadata)."""
    return column not in ("track_id",) and pd.api.types.is_float_dtype(table[column]) and column not in ("distance", "confidence")


def summary_markdown(result: pd.DataFrame) -> str:
    """Each cluster's size and its most typical tracks: nearest its centre, or most confidently assigned."""
    lines = ["# Assignments", "", f"{len(result)} tracks in {result['cluster'].nunique()} clusters.", ""]
    by_confidence = result["confidence"].notna().any()
    for cluster, group in result.groupby("cluster"):
        typical = group.nlargest(TYPICAL, "confidence") if by_confidence else group.nsmallest(TYPICAL, "distance")
        name = "noise" if cluster == NOISE else f"cluster {cluster}"
        lines += [f"## {name}: {len(group)} tracks", ""]
        for row in typical.itertuples():
            label = " — ".join(str(getattr(row, c)) for c in ("title", "artist") if hasattr(row, c) and pd.notna(getattr(row, c))) or row.track_id
            where = f" ({row.path})" if hasattr(row, "path") else ""
            lines.append(f"- {label}{where}")
        lines.append("")
    return "\n".join(lines)
