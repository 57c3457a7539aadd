"""load_feature_set end to end: audio through Ray Data, text embeddings, caches, label hygiene."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from musicvae.config.sections import DataConfig, ManifestSource, TextFeatureConfig
from musicvae.data.dataset import load_feature_set
from musicvae.data.features import text as text_module

TFIDF = TextFeatureConfig(method="tfidf", dim=64)


def test_text_modality_from_file_tags_with_missing_flags_and_cache(local_ray, fma_clips: Path, tmp_path: Path, monkeypatch) -> None:
    labels = pd.read_csv(fma_clips / "labels.csv")
    manifest = pd.DataFrame(
        {
            "track_id": labels["track_id"],
            "path": [str(fma_clips / "fma_small" / f"{t:06d}"[:3] / f"{t:06d}.mp3") for t in labels["track_id"]],
            "label": labels["genre"],
        }
    )
    untagged = tmp_path / "untagged.wav"  # a real clip with no tags and no metadata: no text at all
    import soundfile as sf

    sf.write(untagged, np.sin(np.arange(22050 * 2) / 10).astype(np.float32), 22050)
    manifest.loc[len(manifest)] = {"track_id": 1, "path": str(untagged), "label": "Rock"}
    manifest.to_csv(tmp_path / "m.csv", index=False)
    cfg = DataConfig(
        source=ManifestSource(kind="manifest", path=str(tmp_path / "m.csv"), text_columns=["title", "artist"]),
        text=TFIDF,
        cache_dir=str(tmp_path / "cache"),
    )
    data = load_feature_set(cfg)
    assert data.text_embeddings.shape == (11, 64) and data.text_missing.tolist() == [False] * 10 + [True]
    assert not data.text_embeddings[-1].any()  # the flag says "missing"; the row is not a silent guess
    assert "1 of 11 tracks have no text" in data.summary

    def no_embedding(*args, **kwargs):
        raise AssertionError("text was embedded again although nothing changed")

    monkeypatch.setattr(text_module, "embed_texts", no_embedding)
    again = load_feature_set(cfg)
    np.testing.assert_array_equal(again.text_embeddings, data.text_embeddings)


def test_labels_are_evaluation_only(local_ray, tiny_collection: Path, tmp_path: Path) -> None:
    cfg = DataConfig(
        source=ManifestSource(kind="manifest", path=str(tiny_collection / "metadata.csv"), text_columns=["title", "artist"]),
        text=TFIDF,
        cache_dir=str(tmp_path),
    )
    data = load_feature_set(cfg)
    assert data.features.shape == (36, 40) and data.feature_names[0] == "mfcc_mean_00"
    assert abs(float(data.features.mean())) < 1e-5  # standardised
    assert data.n_labels == 6 and len(data.labels) == 36
    assert list(data.text.columns) == ["track_id", "path", "title", "artist"]  # path: for embedded tags; no label
    # Shuffling the labels changes nothing the models see.
    shuffled = tmp_path / "shuffled.csv"
    meta = pd.read_csv(tiny_collection / "metadata.csv")
    meta["label"] = meta["label"].sample(frac=1.0, random_state=0).to_numpy()
    meta["path"] = [str(tiny_collection / p) for p in meta["path"]]
    meta.to_csv(shuffled, index=False)
    other = load_feature_set(cfg.model_copy(update={"source": ManifestSource(kind="manifest", path=str(shuffled), text_columns=["title", "artist"])}))
    np.testing.assert_array_equal(other.features, data.features)
    np.testing.assert_array_equal(other.text_embeddings, data.text_embeddings)
    assert not np.array_equal(other.labels, data.labels)
