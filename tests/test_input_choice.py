"""Choosing between inputs without labels (the per_input rule): a copy, a noise input or another order of the inputs changes nothing.

Each trial here is an input's own values clustered (K-Means or Ward), scored
as a sweep's trial is, so the selection sees what a sweep of raw models on
several inputs gives it. No Ray, no training.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from musicvae.clustering.clusterers import cluster, resample_stability
from musicvae.config.sections import SelectionConfig
from musicvae.evaluation.leaderboard import TrialRecord, trial_table
from musicvae.evaluation.metrics import external_metrics, input_metrics, sample_rows
from musicvae.evaluation.selection import Selection, select_methods

CFG = SelectionConfig(sample=300)


def grouped(groups: np.ndarray, d: int, separation: float, seed: int) -> np.ndarray:
    """Tracks around one centre per group (N(0, separation^2) centres, unit spread) in d dimensions."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, separation, (groups.max() + 1, d))
    return (centres[groups] + rng.standard_normal((len(groups), d))).astype(np.float32)


def collection(seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Three inputs of 300 tracks: one holds the 4 genres clearly; one a weaker grouping of its own (timbre, say); the third mixes
    both, as musicnn's MTT features lie between the MFCCs' timbre and MSD's genre tags."""
    rng = np.random.default_rng(seed)
    genre = np.repeat(np.arange(4), 75)
    timbre = rng.permutation(genre)
    tags = grouped(genre, 16, 2.0, seed + 1)
    timbral = grouped(timbre, 16, 0.6, seed + 2)
    between = np.hstack([grouped(genre, 8, 0.9, seed + 3), grouped(timbre, 8, 0.9, seed + 4)])
    return {"mfcc": timbral, "musicnn_mtt": between, "musicnn_msd": tags}, genre


def trials(inputs: dict[str, np.ndarray], labels: np.ndarray | None, ks: tuple[int, ...] = (4,), seeds: int = 2) -> tuple[pd.DataFrame, dict, dict]:
    """K-Means and Ward of each input's standardised values at each k, ``seeds`` seeds each, scored as trial.evaluate scores them."""
    records, clusters, embeddings = [], {}, {}
    rows = sample_rows(len(labels if labels is not None else next(iter(inputs.values()))), CFG.sample, CFG.seed)
    for name, x in inputs.items():
        z = (x - x.mean(0)) / x.std(0)
        for method in ("kmeans", "agglomerative"):
            for k in ks:
                for seed in range(seeds):
                    found = cluster(z, method, k, seed=seed).labels
                    metrics = {
                        "largest_cluster": float(np.bincount(found).max() / len(found)),
                        "resample_stability": resample_stability(z, method, k, seed, CFG.subsample),
                        **input_metrics(list(inputs.values()), found, rows).values,
                        **(external_metrics(labels, found) if labels is not None else {}),
                    }
                    trial = f"{name}-{method}-{k}-{seed}"
                    records.append(TrialRecord(trial, "OK", {"input": name, "model": "raw", "clusterer": method, "n_clusters": k, "seed": seed}, metrics))
                    clusters[trial], embeddings[trial] = found, z
    return trial_table(records, "silhouette", "max"), clusters, embeddings


def choose_between(inputs: dict[str, np.ndarray], labels: np.ndarray | None, rule: str = "per_input", **options) -> Selection:
    cfg = CFG.model_copy(update={"rule": rule})
    return select_methods(*trials(inputs, labels, **options), inputs, cfg)


def picked_clusters(selection: Selection, inputs: dict[str, np.ndarray], labels: np.ndarray | None) -> np.ndarray:
    """The chosen method's first seed's clusters, recomputed: what the pick groups, whatever its input is called."""
    row = selection.row(selection.winner)
    x = inputs[row["input"]] if row["input"] in inputs else next(v for v in inputs.values())
    method = "kmeans" if selection.winner.endswith("kmeans") else "agglomerative"
    return cluster((x - x.mean(0)) / x.std(0), method, int(row["n_clusters"]), seed=0).labels


def test_the_input_that_holds_the_grouping_most_clearly_is_chosen_not_the_one_between() -> None:
    inputs, genre = collection()
    per_input = choose_between(inputs, genre)
    assert per_input.row(per_input.winner)["input"] == "musicnn_msd" and per_input.regret(per_input.winner) < 0.02
    # Pooled over every input's spaces, a grouping scores best in its own input's: the mixed input, near both, wins there.
    pooled = choose_between(inputs, genre, rule="combined")
    assert pooled.row(pooled.winner)["input"] == "musicnn_mtt" and pooled.regret(pooled.winner) > 0.2
    table = per_input.representations()
    assert table["input"].tolist()[0] == "musicnn_msd" and table["chosen"].tolist() == [True, False, False]
    assert table["shared_structure"].is_monotonic_decreasing  # the inputs in the order of their winners' shared structure


def test_a_copy_of_an_input_under_another_name_changes_nothing() -> None:
    inputs, genre = collection()
    alone = choose_between(inputs, genre)
    copied = {**inputs, "tags_again": inputs["musicnn_msd"].copy()}
    again = choose_between(copied, genre)
    assert again.row(again.winner)["input"] == "musicnn_msd"  # the copy is the same input: its methods rank with the original's
    assert again.winner == alone.winner and again.n_spaces == alone.n_spaces
    assert len(again.representations()) == 3  # the copy is one input, not a fourth row


def test_an_input_of_noise_is_never_chosen_and_changes_nothing() -> None:
    inputs, genre = collection()
    alone = choose_between(inputs, genre)
    for seed in range(3):
        noise = np.random.default_rng(seed).standard_normal((len(genre), 40)).astype(np.float32)
        with_noise = choose_between({**inputs, "noise": noise}, genre)
        assert with_noise.winner == alone.winner, seed
        representations = with_noise.representations().set_index("input")
        assert abs(representations.loc["noise", "beyond_null"]) < 0.05  # noise is its own structureless twin
        # ... so its space is not admissible: the other inputs' shared structure is what it was without it, to the bit.
        before = alone.representations().set_index("input")["shared_structure"]
        pd.testing.assert_series_equal(representations["shared_structure"].drop("noise").loc[before.index], before)
        assert with_noise.row(with_noise.winner)["input"] != "noise"


@pytest.mark.parametrize("order", [("musicnn_msd", "musicnn_mtt", "mfcc"), ("musicnn_mtt", "mfcc", "musicnn_msd")])
def test_the_order_of_the_inputs_changes_nothing(order: tuple[str, ...]) -> None:
    inputs, genre = collection()
    listed = choose_between(inputs, genre)
    reordered = choose_between({name: inputs[name] for name in order}, genre)
    assert reordered.winner == listed.winner
    pd.testing.assert_series_equal(
        reordered.scores.set_index("method")["score_per_input"].sort_index(), listed.scores.set_index("method")["score_per_input"].sort_index()
    )


def test_with_k_searched_the_clearest_input_and_its_k_are_chosen() -> None:
    inputs, genre = collection(seed=1)
    selection = choose_between(inputs, genre, ks=(2, 3, 4, 5, 6, 8))
    assert selection.row(selection.winner)["input"] == "musicnn_msd" and int(selection.row(selection.winner)["n_clusters"]) == 4


def test_a_collection_of_noise_in_every_input_has_no_stable_clustering() -> None:
    rng = np.random.default_rng(4)
    inputs = {name: rng.standard_normal((300, 24)).astype(np.float32) for name in ("mfcc", "musicnn_msd", "musicnn_mtt")}
    selection = choose_between(inputs, None, ks=(3, 5))
    assert selection.winner is not None and not selection.stable
    assert "NO STABLE CLUSTERING" in selection.summary()


def test_with_one_input_per_input_ranks_as_combined() -> None:
    inputs, genre = collection()
    one = {"mfcc": inputs["musicnn_msd"]}
    per_input, combined = choose_between(one, genre, ks=(3, 4, 5)), choose_between(one, genre, rule="combined", ks=(3, 4, 5))
    assert per_input.winner == combined.winner
    scores = per_input.scores.set_index("method")
    assert scores["score_per_input"].rank().equals(scores["score_combined"].rank())
