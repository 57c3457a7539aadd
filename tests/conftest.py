"""Shared fixtures. Tests that need the project's real data skip when ../shared/data is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED = Path(os.environ.get("MUSICVAE_SHARED_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data")).resolve()


def shared_path(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not available: {path}")
    return path


@pytest.fixture(scope="session")
def fma5_csv() -> Path:
    return shared_path("fma5_seed_mfcc40.csv")


@pytest.fixture(scope="session")
def fma_clips() -> Path:
    return shared_path("fma_small_clips")


@pytest.fixture(scope="session")
def bad_audio() -> Path:
    return shared_path("bad_audio")


@pytest.fixture(scope="session")
def tiny_collection(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small demo collection (6 genres x 6 clips of 2 s), written once per test session."""
    from musicvae.synth import synthesize_collection

    out = tmp_path_factory.mktemp("synth")
    synthesize_collection(out, per_genre=6, seed=1, clip_seconds=2.0)
    return out


@pytest.fixture(scope="module")
def local_ray():
    """A real local Ray instance for tests that run Ray Data directly."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True)
    yield ray
    ray.shutdown()


@pytest.fixture
def known_mixture():
    """400 tracks from four well separated Gaussian blobs in 12 standardised features, labelled by blob."""
    import numpy as np
    import pandas as pd
    from sklearn.datasets import make_blobs

    from musicvae.dataset import FeatureSet

    x, labels = make_blobs(400, n_features=12, centers=4, cluster_std=1.5, random_state=0)
    x = ((x - x.mean(0)) / x.std(0)).astype(np.float32)
    return FeatureSet([f"t{i}" for i in range(400)], x, [f"f{i}" for i in range(12)], labels, list("abcd"), pd.DataFrame())
