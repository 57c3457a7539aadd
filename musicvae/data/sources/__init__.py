"""Where tracks come from: the first step, which imports nothing else of the pipeline.

* :mod:`musicvae.data.sources.tracks`: audio sources (a folder, a CSV manifest, the
  FMA layout, the demo) as one track table, and features-only tables;
* :mod:`musicvae.data.sources.fma_features`: FMA's precomputed ``features.csv``.
"""

from musicvae.data.sources.fma_features import read_fma_features, read_fma_features_csv
from musicvae.data.sources.tracks import (
    AUDIO_EXTENSIONS,
    FeatureTable,
    SourceError,
    fma_track_path,
    fma_tracks,
    folder_tracks,
    list_tracks,
    manifest_tracks,
    read_feature_table,
    synth_tracks,
)

__all__ = [
    "AUDIO_EXTENSIONS",
    "FeatureTable",
    "SourceError",
    "fma_track_path",
    "fma_tracks",
    "folder_tracks",
    "list_tracks",
    "manifest_tracks",
    "read_feature_table",
    "read_fma_features",
    "read_fma_features_csv",
    "synth_tracks",
]
