"""Shared fixtures. Tests that need the project's real data skip when ../shared/data is absent."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests

from musicvae.data.dataset import FeatureSet

SHARED = Path(os.environ.get("MUSICVAE_SHARED_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data")).resolve()


def blobs(
    n_per: int = 40, k: int = 3, d: int = 12, scale: float = 3.0, spread: float = 0.5, seed: int = 0, standardise: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """k Gaussian 'genres' of n_per tracks each (in label order): centres N(0, scale^2), tracks N(centre, spread^2), in d features."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, scale, (k, d))
    labels = np.repeat(np.arange(k), n_per)
    x = (centres[labels] + rng.normal(0, spread, (len(labels), d))).astype(np.float32)
    return ((x - x.mean(0)) / x.std(0) if standardise else x), labels


def spectrograms(labels: np.ndarray, shape: tuple[int, int] = (20, 32), seed: int = 0) -> np.ndarray:
    """Each class a different sinusoid over time, plus noise: structure a CNN can find."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 2 * np.pi, shape[1])
    rows = np.arange(shape[0])[:, None]
    base = np.stack([np.sin((c + 1) * t + rows) for c in range(int(labels.max()) + 1)])
    return (base[labels] + rng.normal(0, 0.3, (len(labels), *shape))).astype(np.float32)


def feature_set(x: np.ndarray, labels: np.ndarray | None, text_missing: np.ndarray | None = None) -> FeatureSet:
    """Features and (optionally) genre labels as a FeatureSet, with a class-dependent MFCC spectrogram for the Conv-VAE and,
    where ``text_missing`` is given, a class-dependent text embedding that is missing (zero) on those tracks."""
    ids = [str(i) for i in range(len(x))]
    classes = labels if labels is not None else np.zeros(len(x), int)
    names = [chr(ord("a") + c) for c in range(int(labels.max()) + 1)] if labels is not None else []
    text = None
    if text_missing is not None:
        rng = np.random.default_rng(1)
        k = int(classes.max()) + 1
        text = (np.eye(k)[classes] @ rng.normal(0, 1, (k, 16)) + rng.normal(0, 0.2, (len(x), 16))).astype(np.float32)
        text[text_missing] = 0.0
    features = [f"f{i}" for i in range(x.shape[1])]
    return FeatureSet(ids, x, features, labels, names, pd.DataFrame({"track_id": ids}), {"mfcc_spectrogram": spectrograms(classes)}, text, text_missing)


def wait_until_healthy(url: str, server: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    """Poll the MLflow server's /health until it answers; fail with its log if it dies or never does."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(f"{url}/health", timeout=5).ok:
                return
        except requests.RequestException:  # not listening yet, or too busy starting to answer
            pass
        assert server.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.5)


def stop_server(process: subprocess.Popen) -> None:
    """Stop a server started in a session of its own (``start_new_session=True``): SIGTERM to its group, SIGKILL if it lingers."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def shared_path(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not available: {path}")
    return path


@pytest.fixture(scope="session")
def fma5_csv() -> Path:
    return shared_path("fma5_seed_mfcc40.csv")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return shared_path()


@pytest.fixture(scope="session")
def fma_clips() -> Path:
    return shared_path("fma_small_clips")


@pytest.fixture(scope="session")
def bad_audio() -> Path:
    return shared_path("bad_audio")


@pytest.fixture(scope="session")
def tiny_collection(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small demo collection (6 genres x 6 clips of 2 s), written once per test session."""
    from musicvae.data.synth import synthesize_collection

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
    from sklearn.datasets import make_blobs

    x, labels = make_blobs(400, n_features=12, centers=4, cluster_std=1.5, random_state=0)
    x = ((x - x.mean(0)) / x.std(0)).astype(np.float32)
    return FeatureSet([f"t{i}" for i in range(400)], x, [f"f{i}" for i in range(12)], labels, list("abcd"), pd.DataFrame())
