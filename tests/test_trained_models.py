"""A model trained once for every trial that clusters it differently (musicvae.training.trained_models)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from musicvae.config.params import TrialParams
from musicvae.training import trained_models
from musicvae.training.loop import NonFiniteLossError
from musicvae.training.trained_models import TrainingHooks
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
    first = run_trial(TrialParams(**base, clusterer="kmeans"), data, hooks=TrainingHooks(models_dir=tmp_path))
    assert len(list(tmp_path.glob("*.pt"))) == 1 and "fit_seconds" not in first.notes
    for clusterer in clusterers:
        params = TrialParams(**base, clusterer=clusterer)
        epochs = []
        shared = run_trial(params, data, hooks=TrainingHooks(models_dir=tmp_path, on_epoch=lambda stats, state: epochs.append((stats, state))))
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
    embed(params, data, hooks=TrainingHooks(models_dir=tmp_path))
    (entry,) = tmp_path.glob("*.pt")
    entry.write_bytes(entry.read_bytes()[:100])  # a torn file (the writer renames a complete one into place, so only a disk fault gives this)
    again = embed(params, data, hooks=TrainingHooks(models_dir=tmp_path))
    assert not again.shared and trained_models.load(tmp_path, entry.stem) is not None  # rewritten whole
    assert embed(params, data, hooks=TrainingHooks(models_dir=tmp_path)).shared


# ------------------------------------------------------------- seeds trained together

PLAN = [{"clusterer": clusterer, "seed": seed} for seed in (0, 1, 2) for clusterer in ("kmeans", "agglomerative")]


def _replica_params(**changes) -> TrialParams:
    # No layer 8 wide: MKL on an AVX2 CPU rounds such a layer's vmapped weight gradient apart (see tests/test_replicas.py).
    return TrialParams(**{"model": "vae", "epochs": 4, "latent_dim": 16, "hidden_dim": 32, "batch_size": 32, "seed": 0, **changes})


@pytest.fixture(scope="module")
def replica_data():
    x, labels = blobs(n_per=40, k=3, d=12)  # sizes at which the MLP VAE vectorises exactly (musicvae.training.replicas.vectorises)
    return feature_set(x, labels)


def test_the_first_trial_trains_every_planned_seed_and_each_seeds_trial_gets_its_lone_result(replica_data, tmp_path) -> None:
    assert trained_models.planned_seeds(_replica_params(seed=1), PLAN) == [1, 0, 2]
    first = run_trial(_replica_params(), replica_data, hooks=TrainingHooks(models_dir=tmp_path, plan=PLAN))
    assert len(list(tmp_path.glob("*.pt"))) == 3 and not list(tmp_path.glob("*.claim"))  # three seeds stored, no claim left behind
    assert "seeds 0, 1, 2" in first.notes["fit_seconds"] and "another trial" not in first.notes["fit_seconds"]
    for seed, clusterer in [(0, "kmeans"), (1, "kmeans"), (2, "agglomerative")]:
        params = _replica_params(seed=seed, clusterer=clusterer)
        epochs = []
        shared = run_trial(params, replica_data, hooks=TrainingHooks(models_dir=tmp_path, plan=PLAN, on_epoch=lambda stats, state: epochs.append(stats)))
        alone = run_trial(params, replica_data)
        assert _scores(shared) == _scores(alone)
        np.testing.assert_array_equal(shared.embedding, alone.embedding)
        np.testing.assert_array_equal(shared.clusters, alone.clusters)
        assert epochs == alone.history  # its own curve, replayed to Tune
        assert shared.notes.pop("fit_seconds").startswith("trained by another trial as one vectorised model with seeds 0, 1, 2")
        assert shared.notes == alone.notes
    assert len(list(tmp_path.glob("*.pt"))) == 3


def test_a_seed_whose_training_fails_fails_its_own_trial_with_the_lone_runs_error(replica_data, tmp_path, monkeypatch) -> None:
    real = trained_models.build_model

    def seed_1_diverges(params, inputs, n_components=None):
        model = real(params, inputs, n_components)
        if params.seed == 1:
            with torch.no_grad():
                next(model.parameters())[0, 0] = float("nan")
        return model

    monkeypatch.setattr(trained_models, "build_model", seed_1_diverges)
    run_trial(_replica_params(), replica_data, hooks=TrainingHooks(models_dir=tmp_path, plan=PLAN))  # trains 0, 1 and 2; seed 1 fails alone
    with pytest.raises(NonFiniteLossError) as stored:
        run_trial(_replica_params(seed=1), replica_data, hooks=TrainingHooks(models_dir=tmp_path, plan=PLAN))
    with pytest.raises(NonFiniteLossError) as alone:
        run_trial(_replica_params(seed=1), replica_data)
    assert str(stored.value) == str(alone.value) == "loss became nan at epoch 1 (lr=0.001, beta=1.0)"
    third = run_trial(_replica_params(seed=2), replica_data, hooks=TrainingHooks(models_dir=tmp_path, plan=PLAN))
    assert _scores(third) == _scores(run_trial(_replica_params(seed=2), replica_data))


def test_a_seed_another_trial_is_training_is_trained_alone_rather_than_waited_for(replica_data, tmp_path) -> None:
    def key(seed: int) -> str:
        params = _replica_params(seed=seed)
        return trained_models.model_key(params, model_inputs(params, replica_data), 3, torch.device("cpu"))

    assert trained_models.claim(tmp_path, key(1))  # another trial's group is training seed 1
    first = run_trial(_replica_params(), replica_data, hooks=TrainingHooks(models_dir=tmp_path, plan=PLAN))
    assert "seeds 0, 2;" in first.notes["fit_seconds"] and trained_models.load(tmp_path, key(1)) is None
    second = run_trial(_replica_params(seed=1), replica_data, hooks=TrainingHooks(models_dir=tmp_path, plan=PLAN))  # its own seed alone
    assert "fit_seconds" not in second.notes and _scores(second) == _scores(run_trial(_replica_params(seed=1), replica_data))


def test_models_that_do_not_vectorise_are_trained_by_each_seeds_trial(data, tmp_path) -> None:
    params = _replica_params(model="conv_vae", channels=4, epochs=2)
    run_trial(params, data, hooks=TrainingHooks(models_dir=tmp_path, plan=PLAN))
    assert len(list(tmp_path.glob("*.pt"))) == 1 and not list(tmp_path.glob("*.claim"))


def test_where_the_probe_finds_replicas_inexact_each_seed_trains_alone_with_its_own_noise(replica_data, tmp_path) -> None:
    """A last batch of one track (107 of 108 training tracks a batch) is not exact vectorised: the trial trains its seed alone,
    from the generator state its own model's build left (its siblings were built since), and leaves the siblings to their trials."""
    params = _replica_params(batch_size=107)
    first = run_trial(params, replica_data, hooks=TrainingHooks(models_dir=tmp_path, plan=PLAN))
    assert "fit_seconds" not in first.notes and len(list(tmp_path.glob("*.pt"))) == 1 and not list(tmp_path.glob("*.claim"))
    assert _scores(first) == _scores(run_trial(params, replica_data))
    second = run_trial(params.model_copy(update={"seed": 1}), replica_data, hooks=TrainingHooks(models_dir=tmp_path, plan=PLAN))
    assert _scores(second) == _scores(run_trial(params.model_copy(update={"seed": 1}), replica_data))
