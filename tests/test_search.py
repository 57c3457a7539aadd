from __future__ import annotations

import optuna
import pytest

from musicvae.config.params import describe_space
from musicvae.config.sections import SearchConfig
from musicvae.config.sweep_file import SweepConfig, parse_sweep
from musicvae.tune.search import DefineByRun, optuna_search


def sample(space: dict | SweepConfig, n: int = 40, seed: int = 0) -> list[dict]:
    cfg = space if isinstance(space, SweepConfig) else parse_sweep({"name": "t", "space": space})
    define = DefineByRun(cfg.space)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    configs = []
    for _ in range(n):
        trial = study.ask()
        constants = define(trial)
        configs.append({**trial.params, **constants})
        study.tell(trial, 0.0)
    return configs


def test_neural_parameters_never_appear_in_pca_trials() -> None:
    configs = sample({"model": ["pca", "vae"], "beta": {"low": 0.1, "high": 10, "log": True}, "epochs": 5, "latent_dim": [8, 16]})
    pca = [c for c in configs if c["model"] == "pca"]
    vae = [c for c in configs if c["model"] == "vae"]
    assert pca and vae
    assert all("beta" not in c and "epochs" not in c for c in pca)
    assert all(0.1 <= c["beta"] <= 10 and c["epochs"] == 5 for c in vae)
    assert all(c["latent_dim"] in (8, 16) for c in configs)


def test_int_ranges_sample_ints_and_constants_pass_through() -> None:
    configs = sample(
        {"model": "vae", "latent_dim": {"low": 4, "high": 64, "step": 4}, "lr": {"low": 1e-4, "high": 1e-2, "log": True}, "n_clusters": {"low": 3, "high": 9}}
    )
    assert all(c["model"] == "vae" for c in configs)
    assert all(isinstance(c["n_clusters"], int) and 3 <= c["n_clusters"] <= 9 for c in configs)
    assert all(isinstance(c["latent_dim"], int) and c["latent_dim"] % 4 == 0 for c in configs)
    assert all(isinstance(c["lr"], float) for c in configs)


def test_searcher_pickles_for_tune_checkpoints() -> None:
    import pickle

    cfg = parse_sweep({"name": "t", "space": {"model": ["pca", "vae"]}})
    searcher = optuna_search(cfg.space, SearchConfig(metric="davies_bouldin"))
    assert searcher.mode == "min"
    pickle.dumps(searcher._space)


@pytest.mark.parametrize("sampler", ["tpe", "random", "grid", "nsga2"])
def test_every_sampler_pickles_as_tune_pickles_the_searcher(sampler) -> None:
    """Tune cloudpickles the searcher into the sweep's state; Optuna 5.1's NSGA-II holds a lock that cannot be pickled."""
    from ray import cloudpickle

    cfg = parse_sweep({"name": "t", "space": {"model": ["pca", "vae"], "latent_dim": [2, 4]}, "search": {"sampler": sampler}})
    searcher = optuna_search(cfg.space, cfg.search, cfg.fixed_points)
    searcher.set_search_properties(cfg.search.primary, cfg.search.resolved_mode, {})
    restored = cloudpickle.loads(cloudpickle.dumps(searcher))
    assert restored.suggest("t0") is not None  # it still samples (the lock is back where the sampler uses it)


def test_describe_space() -> None:
    cfg = parse_sweep({"name": "t", "space": {"beta": {"low": 0.5, "high": 8, "log": True}, "model": ["vae"]}})
    text = "\n".join(describe_space(cfg.space))
    assert "float log [0.5, 8]" in text and "only when model in [vae, conv_vae, multimodal_vae, vade]" in text


@pytest.mark.parametrize("metric, mode", [("silhouette", "max"), ("davies_bouldin", "min"), ("calinski_harabasz", "max")])
def test_metric_direction(metric: str, mode: str) -> None:
    assert SearchConfig(metric=metric).resolved_mode == mode


def test_identical_configurations_are_not_drawn_twice() -> None:
    cfg = parse_sweep({"name": "t", "space": {"model": "pca", "latent_dim": [4, 8], "clusterer": ["kmeans", "agglomerative"]}})
    searcher = optuna_search(cfg.space, SearchConfig(sampler="tpe"))
    configs = [searcher.suggest(f"t{i}") for i in range(4)]
    assert len({tuple(sorted(c.items())) for c in configs}) == 4  # all four combinations, none twice
    fifth = searcher.suggest("t4")  # the space is exhausted: a repeat is allowed rather than a hang
    assert fifth in configs
    redrawn = [t for t in searcher._ot_study.trials if t.state == optuna.trial.TrialState.FAIL]
    assert redrawn  # the duplicate asks were closed, not left RUNNING in the study


def test_no_repeats_even_after_tpe_has_started_to_exploit() -> None:
    """TPE, past its random start-up, keeps proposing what worked: redraws fall back to random."""
    cfg = parse_sweep({"name": "t", "space": {"model": ["pca", "vae"], "beta": [0.5, 1.0, 4.0], "seed": [0, 1, 2]}})
    for seed in range(3):
        searcher = optuna_search(cfg.space, SearchConfig(sampler="tpe", seed=seed))
        configs = []
        for i in range(12):  # the space holds exactly 3 PCA + 9 VAE configurations
            configs.append(tuple(sorted(searcher.suggest(f"t{i}").items())))
            searcher.on_trial_complete(f"t{i}", {"silhouette": float(i % 5)})
        assert len(set(configs)) == 12


def test_conditional_parameters_appear_only_where_their_condition_holds() -> None:
    space = {
        "model": ["pca", "vae", "conv_vae", "multimodal_vae"],
        "audio_encoder": ["mlp", "cnn"],
        "channels": [16, 32],
        "text_weight": {"low": 0.1, "high": 2.0},
        "clusterer": ["kmeans", "agglomerative", "dbscan"],
        "eps": {"low": 0.1, "high": 2.0},
        "linkage": ["ward", "average"],
    }
    cfg = parse_sweep({"name": "t", "space": space, "data": {"text": {"method": "tfidf"}, "audio": {"features": ["mfcc", "mfcc_spectrogram"]}}})
    configs = sample(cfg, n=150)
    for c in configs:
        assert ("eps" in c) == (c["clusterer"] == "dbscan")
        assert ("linkage" in c) == (c["clusterer"] == "agglomerative")
        assert ("audio_encoder" in c) == ("text_weight" in c) == (c["model"] == "multimodal_vae")
        cnn = c["model"] == "conv_vae" or c.get("audio_encoder") == "cnn"
        assert ("channels" in c) == cnn
    assert {c["clusterer"] for c in configs} == {"kmeans", "agglomerative", "dbscan"}
    assert any(c.get("audio_encoder") == "cnn" for c in configs) and any(c.get("audio_encoder") == "mlp" for c in configs)


def test_grid_sampler_runs_every_configuration_once() -> None:
    cfg = parse_sweep(
        {"name": "t", "search": {"sampler": "grid"}, "space": {"model": ["pca", "vae"], "beta": [0.5, 4.0], "clusterer": ["kmeans", "dbscan"], "seed": [0, 1]}}
    )
    searcher = optuna_search(cfg.space, cfg.search, cfg.fixed_points)
    searcher.set_search_properties(None, None, {})  # what Tune does before the first suggest
    configs = []
    for i in range(cfg.num_samples):
        configs.append(searcher.suggest(f"t{i}"))
        searcher.on_trial_complete(f"t{i}", {"silhouette": 0.1 * i})
    assert cfg.num_samples == (1 + 2) * 2 * 2 == len({tuple(sorted(c.items())) for c in configs})
    assert all("beta" not in c for c in configs if c["model"] == "pca")


def test_ray_optuna_search_still_has_the_private_attributes_sweepsearch_uses() -> None:
    """SweepSearch.suggest reaches into Ray's OptunaSearch (``_ot_study``, ``_ot_trials``).

    Pinned here, so a Ray upgrade that renames them fails this test by name."""
    cfg = parse_sweep({"name": "t", "space": {"model": "pca", "latent_dim": [4, 8]}})
    searcher = optuna_search(cfg.space, SearchConfig(sampler="tpe"))
    searcher.suggest("t0")
    assert isinstance(searcher._ot_study, optuna.Study)
    assert isinstance(searcher._ot_trials["t0"], optuna.Trial) and searcher._ot_trials["t0"].number == 0
