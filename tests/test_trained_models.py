"""A model trained once for every trial that clusters it differently (musicvae.trained_models)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from musicvae import trained_models
from musicvae.params import TrialParams
from musicvae.trial import embed, model_inputs, run_trial
from tests.conftest import blobs, feature_set

TIMES = ("fit_seconds", "space_seconds", "cluster_seconds", "selection_seconds", "trial_seconds")


def _scores(result) -> dict[str, float]:
    return {k: v for k, v in result.metrics.items() if k not in TIMES}


@pytest.fixture(scope="module")
def data():
    x, labels = blobs(n_per=30, k=3, d=10)
    return feature_set(x, labels, text_missing=np.zeros(len(x), bool))


@pytest.mark.parametrize(
    ("model", "clusterers"),
    [("vae", ["agglomerative", "dbscan", "idec"]), ("multimodal_vae", ["agglomerative"]), ("vade", ["vade", "kmeans"]), ("conv_vae", ["gmm"])],
)
def test_a_shared_model_gives_each_clusterer_the_result_it_would_get_from_training_its_own(data, tmp_path, model, clusterers) -> None:
    base = {"model": model, "epochs": 4 if model != "vade" else 6, "latent_dim": 4, "hidden_dim": 16, "channels": 4, "seed": 3}
    if model == "vade":
        base["vade_pretrain_epochs"] = 2
    first = run_trial(TrialParams(**base, clusterer="kmeans"), data, models_dir=tmp_path)
    assert len(list(tmp_path.glob("*.pt"))) == 1 and "fit_seconds" not in first.notes
    for clusterer in clusterers:
        params = TrialParams(**base, clusterer=clusterer)
        epochs = []
        shared = run_trial(params, data, models_dir=tmp_path, on_epoch=lambda stats, state: epochs.append((stats, state)))
        alone = run_trial(params, data)
        assert shared.notes.pop("fit_seconds") == trained_models.SHARED_NOTE
        assert _scores(shared) == _scores(alone) and shared.notes == alone.notes
        np.testing.assert_array_equal(shared.embedding, alone.embedding)
        np.testing.assert_array_equal(shared.clusters, alone.clusters)
        assert [s for s, _ in epochs] == alone.history and all(state is None for _, state in epochs)  # the curve replayed, no checkpoints
    assert len(list(tmp_path.glob("*.pt"))) == 1  # never trained again


def test_the_key_is_the_training_not_the_clustering(data) -> None:
    def key(**changes):
        params = TrialParams(model="vae", **changes)
        return trained_models.model_key(params, model_inputs(params, data), 3, torch.device("cpu"))

    same = {key(), key(clusterer="dbscan", eps=0.5), key(clusterer="agglomerative", linkage="average"), key(manifold="umap"), key(idec_gamma=5.0)}
    assert len(same) == 1
    assert len({key(), key(seed=1), key(beta=4.0), key(lr=1e-2), key(epochs=7)}) == 5
    other = feature_set(data.features + 1e-3, data.labels)
    params = TrialParams(model="vae")
    assert trained_models.model_key(params, model_inputs(params, other), 3, torch.device("cpu")) != key()  # other data, other model


def test_a_damaged_entry_is_trained_again(data, tmp_path) -> None:
    params = TrialParams(model="vae", epochs=2, latent_dim=4, hidden_dim=16)
    embed(params, data, models_dir=tmp_path)
    (entry,) = tmp_path.glob("*.pt")
    entry.write_bytes(entry.read_bytes()[:100])  # a torn file (the writer renames a complete one into place, so only a disk fault gives this)
    again = embed(params, data, models_dir=tmp_path)
    assert not again.shared and trained_models.load(tmp_path, entry.stem) is not None  # rewritten whole
    assert embed(params, data, models_dir=tmp_path).shared
