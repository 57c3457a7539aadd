"""Label-free selection: shared spaces, pooled ranks, stability, consensus, the configured rule (no Ray)."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from conftest import blobs, feature_set
from sklearn.metrics import calinski_harabasz_score, silhouette_score
from sklearn.preprocessing import StandardScaler

from musicvae.clustering.clusterers import NOISE, mean_pairwise_ari, resample_stability
from musicvae.config.params import TrialParams, default_k_range
from musicvae.config.sections import SelectionConfig
from musicvae.config.sweep_file import SweepFileError, parse_sweep
from musicvae.data.dataset import FeatureSet
from musicvae.evaluation.leaderboard import TrialRecord, trial_table
from musicvae.evaluation.metrics import input_metrics, sample_rows
from musicvae.evaluation.selection import k_curve, select_methods
from musicvae.evaluation.space_scores import build_spaces, neighbour_agreement, space_scores
from musicvae.trial import Embedded, evaluate


def genres(n_per: int = 100, k: int = 3, d: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """k Gaussian 'genres', separated but overlapping a little, in d dimensions."""
    return blobs(n_per, k, d, scale=2.5, spread=1.0, seed=seed, standardise=False)


def run_methods(data: FeatureSet, embeddings: dict[str, list[np.ndarray]], cfg: SelectionConfig, **params) -> tuple[pd.DataFrame, dict, dict]:
    """Each named embedding (one per seed) clustered by K-Means and scored as a trial, through trial.evaluate."""
    records, clusters, spaces = [], {}, {}
    for latent_dim, per_seed in embeddings.items():
        for seed, embedding in enumerate(per_seed):
            trial_params = TrialParams(model="vae", latent_dim=latent_dim, seed=seed, clusterer="kmeans", **params)
            result = evaluate(trial_params, data, Embedded(embedding, {"fit_seconds": 0.0}), selection=cfg)
            name = f"vae-{latent_dim}-{seed}"
            records.append(TrialRecord(name, "OK", trial_params.model_dump(include={"model", "latent_dim", "seed", "clusterer"}), result.metrics))
            clusters[name], spaces[name] = result.clusters, embedding
    return trial_table(records, "silhouette", "max"), clusters, spaces


def test_a_collapsed_embedding_with_the_higher_own_silhouette_does_not_win() -> None:
    x, labels = genres()
    rng = np.random.default_rng(5)
    faithful = {10: [x + rng.normal(0, 0.3, x.shape).astype(np.float32) for _ in range(3)]}
    # A 2-D latent that collapsed onto three tight clumps unrelated to the genres: near-perfect own silhouette.
    clumps = rng.integers(0, 3, len(x))
    collapsed = {2: [(np.eye(3)[clumps][:, :2] * 10 + rng.normal(0, 0.05, (len(x), 2))).astype(np.float32) for _ in range(3)]}
    data = feature_set(x, labels)
    cfg = SelectionConfig(sample=200)
    table, clusters, embeddings = run_methods(data, {**faithful, **collapsed}, cfg)
    assert table.loc[table["latent_dim"] == 2, "silhouette"].min() > table.loc[table["latent_dim"] == 10, "silhouette"].max()
    selection = select_methods(table, clusters, embeddings, {"mfcc": x}, cfg)
    assert selection.picks["objective"] == "vae (latent_dim=2) + kmeans"  # what the own-space silhouette chooses
    assert selection.winner == "vae (latent_dim=10) + kmeans"
    assert selection.oracle == "vae (latent_dim=10) + kmeans" and selection.regret(selection.winner) == 0.0
    for rule in ("pooled_silhouette", "pooled_calinski_harabasz", "pooled_neighbours", "input_silhouette"):
        assert selection.picks[rule] == "vae (latent_dim=10) + kmeans", rule
    assert selection.stable
    assert "regret 0.0000" in selection.summary() and "'per_input' rule" in selection.summary()


def test_stability_of_identical_and_of_independent_random_clusterings() -> None:
    rng = np.random.default_rng(0)
    same = rng.integers(0, 5, 2000)
    assert mean_pairwise_ari([same, same.copy(), same.copy()]) == pytest.approx(1.0)
    independent = [rng.integers(0, 5, 2000) for _ in range(3)]
    assert abs(mean_pairwise_ari(independent)) < 0.02
    assert np.isnan(mean_pairwise_ari([same]))


def test_resample_stability_tells_structure_from_noise() -> None:
    x, _ = genres(d=4)
    x = x * 3  # well separated
    noise = np.random.default_rng(1).standard_normal((300, 20))
    assert resample_stability(x, "kmeans", 3, seed=0) > 0.9
    assert resample_stability(noise, "kmeans", 5, seed=0) < 0.6
    # A deterministic clusterer on noise gives the same clusters for every seed; resampling still exposes it.
    assert resample_stability(noise, "agglomerative", 5, seed=0) < 0.6
    assert resample_stability(noise, "kmeans", 5, seed=0) == resample_stability(noise, "kmeans", 5, seed=0)


def test_unstructured_data_gets_a_no_stable_clustering_verdict() -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((400, 12)).astype(np.float32)
    data = feature_set(x, None)
    cfg = SelectionConfig(sample=300)
    # Structureless in 12 dimensions (like the benchmark's 40-D control). In 2-4 dimensions K-Means cuts a
    # Gaussian the same way every time: stability measures reproducibility, which needs dimensions to fail.
    embeddings = {12: [x] * 3, 8: [x[:, :8] + rng.normal(0, 0.1, (400, 8)).astype(np.float32) for _ in range(3)]}
    table, clusters, spaces = run_methods(data, embeddings, cfg, n_clusters=5)
    selection = select_methods(table, clusters, spaces, {"mfcc": x}, cfg)
    assert selection.winner is not None and not selection.stable
    assert "NO STABLE CLUSTERING" in selection.summary()
    assert selection.oracle is None and "oracle" not in selection.summary()


def test_pooled_ranks_are_deterministic_for_a_seed() -> None:
    x, labels = genres(n_per=150)
    rng = np.random.default_rng(3)
    embeddings = {10: [x + rng.normal(0, 1.0, x.shape).astype(np.float32) for _ in range(2)], 3: [x[:, :3] for _ in range(2)]}
    data = feature_set(x, labels)
    first = select_methods(*run_methods(data, embeddings, SelectionConfig(sample=200)), {"mfcc": x}, SelectionConfig(sample=200))
    again = select_methods(*run_methods(data, embeddings, SelectionConfig(sample=200)), {"mfcc": x}, SelectionConfig(sample=200))
    pd.testing.assert_frame_equal(first.scores, again.scores)
    other = select_methods(*run_methods(data, embeddings, SelectionConfig(sample=200, seed=1)), {"mfcc": x}, SelectionConfig(sample=200, seed=1))
    assert not np.array_equal(sample_rows(len(x), 200, 0), sample_rows(len(x), 200, 1))
    assert not np.allclose(first.scores.sort_values("method")["input_silhouette"], other.scores.sort_values("method")["input_silhouette"])


def test_noise_points_are_left_out_of_the_scores_and_counted() -> None:
    x, labels = genres(n_per=40)
    spaces = build_spaces({"mfcc": x}, {}, np.arange(len(x))).values
    with_noise = labels.copy()
    with_noise[:30] = NOISE
    scores = space_scores({"noisy": with_noise, "clean": labels}, spaces)
    silhouettes, harabasz = scores["silhouette"], scores["calinski_harabasz"]
    z = spaces["inputs"]
    kept = with_noise != NOISE
    # Noise is in no cluster, and counts 0: the silhouette of the rest, scaled by the share clustered.
    assert silhouettes.loc["noisy", "inputs"] == pytest.approx(silhouette_score(z[kept], with_noise[kept]) * kept.mean())
    assert harabasz.loc["noisy", "inputs"] == pytest.approx(calinski_harabasz_score(z[kept], with_noise[kept]) * kept.mean(), rel=1e-5)
    assert silhouettes.loc["clean", "inputs"] == pytest.approx(silhouette_score(z, labels))
    all_noise = np.full(len(x), NOISE)
    assert all(np.isnan(table.loc["none", "inputs"]) for table in space_scores({"none": all_noise}, spaces).values())


def test_spaces_keep_active_dimensions_and_count_a_shared_embedding_once() -> None:
    x, _ = genres(n_per=50)
    collapsed = np.hstack([x[:, :2], np.full((len(x), 6), 0.3) + np.random.default_rng(0).normal(0, 1e-3, (len(x), 6))])
    dead = np.random.default_rng(1).normal(0, 1e-3, (len(x), 4))
    spaces = build_spaces({"mfcc": x}, {"mfcc": [collapsed, collapsed.copy(), dead, x.copy()]}, np.arange(len(x))).values
    assert list(spaces)[0] == "inputs" and len(spaces) == 2  # the raw embedding is the inputs; a dead latent adds no space
    assert spaces[list(spaces)[1]].shape[1] == 2  # the six collapsed units were dropped before z-scoring


def test_input_metrics_count_noise_as_zero() -> None:
    x, labels = genres()
    rows = np.arange(len(x))
    half = labels.copy()
    half[labels == 0] = NOISE  # the hardest genre called noise: the rest looks tidier, but a third of the tracks is lost
    clean, noisy = input_metrics([x], labels, rows).values, input_metrics([x], half, rows).values
    kept = half != NOISE
    assert noisy["input_silhouette"] == pytest.approx(silhouette_score(StandardScaler().fit_transform(x)[kept], half[kept]) * kept.mean())
    assert clean["input_silhouette"] == pytest.approx(silhouette_score(StandardScaler().fit_transform(x), labels))


def test_input_metrics_are_the_same_for_the_same_clustering_whatever_the_embedding() -> None:
    x, labels = genres()
    rows = sample_rows(len(x), 200, 0)
    assert input_metrics([x], labels, rows).values == input_metrics([x], labels.copy(), rows).values
    assert (
        input_metrics([x], labels, rows).values["input_silhouette"]
        > input_metrics([x], np.random.default_rng(0).integers(0, 3, len(x)), rows).values["input_silhouette"]
    )


@pytest.mark.parametrize(
    ("selection", "message"),
    [
        ({"rul": "combined"}, "selection.rul: unknown key"),
        ({"rule": "ari"}, "selection.rule"),
        ({"sample": 10}, "selection.sample"),
        ({"min_stability": 1.5}, "selection.min_stability"),
        ({"subsample": 1.0}, "selection.subsample"),
    ],
)
def test_a_bad_selection_key_is_named(selection: dict, message: str) -> None:
    with pytest.raises(SweepFileError, match=message.replace(".", r"\.")):
        parse_sweep({"name": "x", "selection": selection})


def test_ari_matches_sklearn_with_noise_and_trivial_labelings() -> None:
    from sklearn.metrics import adjusted_rand_score

    from musicvae.clustering.clusterers import ari

    rng = np.random.default_rng(6)
    a, b = rng.integers(-1, 4, 500), rng.integers(-1, 6, 500)
    b[:300] = a[:300]
    assert ari(a, b) == pytest.approx(adjusted_rand_score(a, b), abs=1e-12)
    ones = np.zeros(50, int)
    for x, y in [(ones, ones), (np.arange(50), np.arange(50)), (ones, np.arange(50)), (ones, rng.integers(0, 3, 50))]:
        assert ari(x, y) == pytest.approx(adjusted_rand_score(x, y), abs=1e-12)


def test_space_scores_match_sklearn_in_every_space() -> None:
    x, labels = genres(n_per=60)
    rng = np.random.default_rng(7)
    other = rng.normal(0, 1, (len(x), 5)) + labels[:, None]
    noisy = labels.copy()
    noisy[::7] = NOISE
    noisy[1] = 9  # a singleton cluster scores 0, as in sklearn
    spaces = build_spaces({"mfcc": x}, {"mfcc": [other]}, np.arange(len(x))).values
    scores = space_scores({"clean": labels, "noisy": noisy}, spaces)
    silhouettes, harabasz = scores["silhouette"], scores["calinski_harabasz"]
    for name, z in spaces.items():
        for trial, c in (("clean", labels), ("noisy", noisy)):
            kept = c != NOISE
            assert silhouettes.loc[trial, name] == pytest.approx(silhouette_score(z[kept], c[kept]) * kept.mean(), abs=1e-5)
            assert harabasz.loc[trial, name] == pytest.approx(calinski_harabasz_score(z[kept], c[kept]) * kept.mean(), rel=1e-5)


def test_neighbour_agreement_is_chance_corrected() -> None:
    from sklearn.neighbors import NearestNeighbors

    x, labels = genres(n_per=100, d=4)
    x = x * 3
    nearest = NearestNeighbors(n_neighbors=11).fit(x).kneighbors(x, return_distance=False)[:, 1:]
    assert neighbour_agreement(nearest, labels) > 0.5  # the true groups: neighbours share a cluster
    random = np.random.default_rng(0).integers(0, 3, len(x))
    assert abs(neighbour_agreement(nearest, random)) < 0.05  # random groups of the same sizes: chance
    one_giant = np.where(np.arange(len(x)) < 5, 1, 0)
    assert abs(neighbour_agreement(nearest, one_giant)) < 0.05  # one cluster of nearly everything says nothing


def test_the_report_reads_the_sweeps_selection_back_from_mlflow(tmp_path) -> None:
    """musicvae report shows the selection the sweep logged (selection.csv, the rule's params), not a re-ranking by the objective."""
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

    from musicvae.reporting.report import write_report

    x, labels = genres()
    rng = np.random.default_rng(5)
    clumps = rng.integers(0, 3, len(x))
    embeddings = {10: [x + rng.normal(0, 0.3, x.shape).astype(np.float32) for _ in range(2)], 2: [np.eye(3)[clumps][:, :2] * 10 for _ in range(2)]}
    cfg = SelectionConfig(sample=200)
    table, clusters, spaces = run_methods(feature_set(x, labels), embeddings, cfg)
    selection = select_methods(table, clusters, spaces, {"mfcc": x}, cfg)

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment_id = client.create_experiment("selection", artifact_location=str(tmp_path / "artifacts"))
    parent = client.create_run(experiment_id, run_name="pick", tags={"musicvae.sweep": "pick", "musicvae.role": "sweep"}).info.run_id
    params = {"objective": "silhouette", "mode": "max", "selection_rule": "combined", "selection_sample": "200", "selection_min_stability": "0.3"}
    client.log_batch(parent, params=[Param(k, v) for k, v in params.items()], metrics=[Metric("selection_spaces", selection.n_spaces, 0, 0)])
    client.log_text(parent, selection.scores.to_csv(index=False), "selection.csv")
    for _, row in table.iterrows():
        tags = {MLFLOW_PARENT_RUN_ID: parent, "musicvae.sweep": "pick", "musicvae.role": "trial"}
        run = client.create_run(experiment_id, run_name=row["trial"], tags=tags).info.run_id
        config = {"model": "vae", "latent_dim": row["latent_dim"], "clusterer": "kmeans", "seed": row["seed"]}
        metrics = {m: row[m] for m in ("silhouette", "ari", "nmi", "largest_cluster", "seconds") if pd.notna(row[m])}
        metrics["trial_seconds"] = 1.0
        client.log_batch(run, params=[Param(k, str(v)) for k, v in config.items()], metrics=[Metric(k, float(v), 0, 0) for k, v in metrics.items()])
        client.set_terminated(run, "FINISHED")
    client.set_terminated(parent, "FINISHED")

    written = write_report(uri, "selection", ["pick"], tmp_path / "reports")
    markdown = (tmp_path / "reports" / "pick" / "methods.md").read_text()
    assert "- Selected by the 'combined' rule (label-free; " in markdown and "vae (latent_dim=10) + kmeans" in markdown
    assert "regret 0.0000" in markdown
    assert "| **combined** | vae (latent_dim=10) + kmeans |" in markdown  # every rule's pick, the chosen rule in bold
    assert "| objective | vae (latent_dim=2) + kmeans |" in markdown
    assert tmp_path / "reports" / "pick" / "selection.csv" in written


def test_a_degenerate_clustering_has_no_input_scores_for_the_searcher() -> None:
    x, _ = genres()
    outliers = np.zeros(len(x), int)
    outliers[np.argsort(x[:, 0])[-10:]] = 1  # everything in one cluster, the ten most extreme tracks apart
    scores = input_metrics([x], outliers, np.arange(len(x)))
    assert np.isnan(scores.values["input_silhouette"]) and "one cluster" in scores.notes["input_silhouette"]


def test_a_sweep_with_no_finished_trial_selects_nothing() -> None:
    from musicvae.evaluation.selection import choose

    table = pd.DataFrame({"trial": ["a"], "status": ["FAILED"], "method": ["vae + kmeans"]})
    selection = select_methods(table, {}, {}, {}, SelectionConfig())
    assert selection.winner is None and "no finished" in selection.summary()
    again = choose(pd.read_csv(io.StringIO(selection.scores.to_csv(index=False))), SelectionConfig(), 0, 0)  # as the report reads it back
    assert again.winner is None


def test_the_regret_carries_its_standard_error_from_the_seeds_spread() -> None:
    from musicvae.evaluation.selection import RULES, choose

    methods = pd.DataFrame(
        {
            "method": ["a", "b"],
            "n": [3, 4],
            "degenerate": [False, False],
            "stability": [0.9, 0.9],
            "ari": [0.5, 0.4],
            "ari_sd": [0.06, 0.02],
            "nmi": [0.5, 0.4],
            "seed_agreement": [0.9, 0.9],
            "resample_stability": [0.9, 0.9],
            **{f"score_{rule}": [0.2, 0.8] for rule in RULES},
        }
    )
    selection = choose(methods, SelectionConfig(), 2, 100)
    assert selection.winner == "b" and selection.oracle == "a"
    assert selection.regret("b") == pytest.approx(0.1)
    assert selection.regret_se("b") == pytest.approx(np.sqrt(0.06**2 / 3 + 0.02**2 / 4))
    assert selection.regret_se("a") == pytest.approx(np.sqrt(0.06**2 / 3 * 2))
    assert "standard error 0.036" in selection.summary()
    older = choose(methods.drop(columns="ari_sd"), SelectionConfig(), 2, 100)  # a selection.csv written before the seeds' spread was kept
    assert np.isnan(older.regret_se("b")) and "regret 0.1000 (standard error -)" in older.summary()


def k_trials(x: np.ndarray, labels: np.ndarray | None, ks: list[int], cfg: SelectionConfig, seeds: int = 2) -> tuple[pd.DataFrame, dict, dict]:
    """K-Means of the raw features at each k over ``seeds`` seeds, each a trial scored through trial.evaluate (k searched, as a sweep does)."""
    data = feature_set(x, labels)
    records, clusters, spaces = [], {}, {}
    for k in ks:
        for seed in range(seeds):
            params = TrialParams(model="raw", clusterer="kmeans", n_clusters=k, seed=seed)
            result = evaluate(params, data, Embedded(x, {"fit_seconds": 0.0}), selection=cfg)
            name = f"raw-{k}-{seed}"
            records.append(TrialRecord(name, "OK", params.model_dump(include={"model", "clusterer", "n_clusters", "seed"}), result.metrics))
            clusters[name], spaces[name] = result.clusters, x
    return trial_table(records, "silhouette", "max"), clusters, spaces


@pytest.mark.parametrize("k", [3, 7, 12])
def test_k_is_chosen_right_on_well_separated_blobs(k: int) -> None:
    x, labels = blobs(n_per=30, k=k, d=8, scale=8.0, spread=0.5, seed=k, standardise=False)
    cfg = SelectionConfig(sample=400)
    ks = default_k_range(len(x))
    assert k in ks
    selection = select_methods(*k_trials(x, labels, ks, cfg), {"mfcc": x}, cfg, n_labels=k)
    assert int(selection.row(selection.winner)["n_clusters"]) == k, selection.scores[["method", f"score_{cfg.rule}", "ari"]]
    assert selection.regret(selection.winner) == 0.0 and selection.stable
    assert f"k = {k} chosen (label count {k}, evaluation only)" in selection.summary()
    curve = k_curve(selection)  # what the report draws: each k once, every rule's score once, the pick marked
    assert curve["n_clusters"].tolist() == ks and curve.columns.is_unique and {"combined", "stability", "ari"} <= set(curve.columns)
    assert curve.loc[curve["chosen"], "n_clusters"].tolist() == [k]


def test_on_random_labellings_the_rule_does_not_favour_two_clusters() -> None:
    """Clusterings that are random labellings of structureless data, at every k: no k may win by construction, k = 2 least of all."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((600, 10)).astype(np.float32)
    cfg = SelectionConfig(sample=600)
    picks = []
    for draw in range(6):
        records, clusters = [], {}
        for k in default_k_range(len(x)):
            for seed in range(2):
                name = f"random-{k}-{seed}"
                clusters[name] = rng.integers(0, k, len(x))
                metrics = {"largest_cluster": float(np.bincount(clusters[name]).max() / len(x)), "resample_stability": 0.0, "input_silhouette": 0.0}
                records.append(TrialRecord(name, "OK", {"model": "raw", "clusterer": "kmeans", "n_clusters": k, "seed": seed}, metrics))
        selection = select_methods(trial_table(records, "silhouette", "max"), clusters, {n: x for n in clusters}, {"mfcc": x}, cfg)
        picks.append(int(selection.row(selection.winner)["n_clusters"]))
        assert not selection.stable  # random labels reproduce nothing
    assert picks.count(2) <= 1 and len(set(picks)) >= 3, picks
