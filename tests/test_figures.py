"""Figures: each one is written as a real PNG, survives the edge cases a sweep produces, and keeps its promises
(the same genre has the same colour, noise is labelled, bright means better in the metrics table)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from conftest import blobs
from matplotlib.colors import to_rgba

from musicvae.evaluation.disentanglement import analyse_latents
from musicvae.reporting.figures import (
    Panel,
    beta_grid_figure,
    colour_table,
    disentanglement_figure,
    projection_figure,
    sample_rows,
    save_figure,
)
from musicvae.reporting.projection import PROJECTIONS, project
from musicvae.reporting.study_figures import metrics_heatmap

GENRES = ["Electronic", "Folk", "Hip-Hop", "Rock"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    return blobs(50, k=4, d=8, scale=5.0, spread=1.0, standardise=False)


@pytest.fixture(scope="module")
def coords(data) -> dict[str, np.ndarray]:
    embedding, _ = data
    return {method: project(embedding, method, seed=0) for method in PROJECTIONS}


def assert_png(path, min_kb: float = 5) -> None:
    content = path.read_bytes()
    assert content.startswith(PNG_SIGNATURE)
    assert len(content) > min_kb * 1024


def legend_colours(legend) -> dict[str, tuple]:
    return {handle.get_label(): to_rgba(handle.get_color()) for handle in legend.legend_handles}


# --- project / sample_rows -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", PROJECTIONS)
def test_project_gives_finite_float32_pairs(coords, method):
    xy = coords[method]
    assert xy.shape == (200, 2)
    assert xy.dtype == np.float32
    assert np.isfinite(xy).all()


@pytest.mark.parametrize("method", PROJECTIONS)
def test_project_is_deterministic_for_a_seed(data, coords, method):
    embedding, _ = data
    assert np.array_equal(project(embedding, method, seed=0), coords[method])


def test_umap_given_its_neighbours_draws_what_its_own_search_draws(data):
    """project() hands UMAP the nearest neighbours it found itself (a partial sort): the very coordinates of umap's own search."""
    import warnings

    from sklearn.metrics import pairwise_distances

    from musicvae.clustering.manifold import import_umap
    from musicvae.reporting.projection import nearest

    embedding, _ = data
    distances = pairwise_distances(embedding.astype(np.float32))
    index, near, _ = nearest(distances, 15)
    assert (index[:, 0] == np.arange(len(embedding))).all() and (np.diff(near, axis=1) >= 0).all()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning)
        own = import_umap().UMAP(n_neighbors=15, min_dist=0.1, random_state=0, n_jobs=1, metric="precomputed").fit_transform(distances)
    np.testing.assert_array_equal(project(embedding, "umap", seed=0), own.astype(np.float32))


def test_project_draws_low_dimensional_embeddings_as_they_are():
    column = np.arange(6, dtype=np.float64)[:, None]
    xy = project(column, "umap")
    assert xy.dtype == np.float32
    assert np.array_equal(xy, np.c_[column, np.zeros(6)])

    plane = np.random.default_rng(0).normal(size=(50, 2))
    xy = project(plane, "tsne")
    assert xy.dtype == np.float32 and np.allclose(xy, plane, atol=1e-6)
    xy[:] = 0
    assert plane.any()  # a copy, not a view of the caller's array


@pytest.mark.parametrize("method", PROJECTIONS)
def test_project_handles_tiny_and_collapsed_embeddings(method):
    three = np.random.default_rng(0).normal(size=(3, 6))
    xy = project(three, method)
    assert xy.shape == (3, 2) and xy.dtype == np.float32
    distances = lambda points: np.linalg.norm(points[:, None] - points[None], axis=-1)  # noqa: E731
    assert np.allclose(distances(xy), distances(three), atol=1e-5)  # three points span a plane: its PCA loses nothing
    assert project(np.ones((1, 6)), method).tolist() == [[0.0, 0.0]]
    assert project(np.zeros((0, 6)), method).shape == (0, 2)
    # every row identical (a fully collapsed VAE): t-SNE's PCA init would divide by zero and segfault
    assert not project(np.ones((50, 6)), method).any()


def test_project_refuses_unknown_methods_and_non_finite_values():
    with pytest.raises(ValueError, match="unknown projection"):
        project(np.zeros((10, 3)), "pca")
    with pytest.raises(ValueError, match="NaN"):
        project(np.full((10, 3), np.nan), "umap")


def test_sample_rows_is_seeded_sorted_and_capped():
    rows = sample_rows(10000, 3000, seed=1)
    assert len(rows) == 3000 and len(np.unique(rows)) == 3000
    assert np.all(np.diff(rows) > 0) and rows.max() < 10000
    assert np.array_equal(rows, sample_rows(10000, 3000, seed=1))
    assert not np.array_equal(rows, sample_rows(10000, 3000, seed=2))
    assert np.array_equal(sample_rows(50, 3000, seed=1), np.arange(50))


# --- projection_figure -----------------------------------------------------------------------------------------------------


def test_projection_figure_with_genres_and_noise(tmp_path, data, coords):
    _, labels = data
    clusters = labels.copy()
    clusters[::10] = -1
    fig = projection_figure(coords, clusters, labels, GENRES, title="vae β=1")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["UMAP — clusters (k=4, 10% noise)", "UMAP — genre", "t-SNE — clusters (k=4, 10% noise)", "t-SNE — genre"]
    cluster_legend, genre_legend = fig.axes[0].get_legend(), fig.axes[1].get_legend()
    assert [t.get_text() for t in cluster_legend.get_texts()][-1] == "noise"
    assert [t.get_text() for t in genre_legend.get_texts()] == GENRES
    assert fig.axes[2].get_legend() is None  # colours do not change between rows: one legend per column
    noise_layer = fig.axes[0].collections[0]  # drawn first, so underneath
    assert len(noise_layer.get_offsets()) == (clusters == -1).sum()
    assert_png(save_figure(fig, tmp_path / "projection.png"), min_kb=20)


def test_projection_figure_without_labels_has_one_column(tmp_path, coords):
    clusters = np.repeat(np.arange(5), 40)
    fig = projection_figure(coords, clusters, None, GENRES)
    assert len(fig.axes) == 2
    assert fig.axes[0].get_title() == "UMAP — clusters (k=5)"
    assert_png(save_figure(fig, tmp_path / "clusters.png"))


def test_projection_figure_colours_a_genre_by_its_name_not_by_order_of_appearance(coords):
    labels = np.where(np.arange(200) % 2 == 0, 3, 1)  # only Folk and Rock are present
    fig = projection_figure({"umap": coords["umap"]}, np.zeros(200, int), labels, GENRES)
    colours = legend_colours(fig.axes[1].get_legend())
    table = colour_table(len(GENRES))
    assert colours == {"Folk": tuple(table[1]), "Rock": tuple(table[3])}
    plt.close(fig)


def test_projection_figure_legend_keeps_the_twelve_largest_clusters(coords):
    clusters = np.arange(200) % 20  # 20 clusters of 10 ...
    clusters[:40] = 19  # ... except that cluster 19 is the largest
    fig = projection_figure({"umap": coords["umap"]}, clusters, None, GENRES)
    legend = fig.axes[0].get_legend()
    assert legend.get_title().get_text() == "(20 clusters; legend shows the 12 largest)"
    names = [t.get_text() for t in legend.get_texts()]
    assert len(names) == 12 and "cluster 19" in names
    plt.close(fig)


def test_projection_figure_rejects_mismatched_rows(coords):
    with pytest.raises(ValueError, match="expected"):
        projection_figure(coords, np.zeros(150, int), None, GENRES)


# --- disentanglement_figure ------------------------------------------------------------------------------------------------


def test_disentanglement_figure_for_a_deterministic_embedding(tmp_path, data):
    embedding, _ = data
    mu = embedding.copy()
    mu[:, 3] = 1.0  # a dead dimension: NaN correlations, zero variance
    fig = disentanglement_figure(analyse_latents(mu), title="pca")
    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert len(panels) == 3
    assert panels[1].get_title() == "Active units: 7/8"
    assert any(text.get_text() == "no KL: deterministic embedding" for text in panels[2].texts)
    assert_png(save_figure(fig, tmp_path / "latents.png"), min_kb=20)


def test_disentanglement_figure_for_a_vae_with_labels(tmp_path, data):
    embedding, labels = data
    logvar = np.full_like(embedding, -1.0)
    report = analyse_latents(embedding, logvar, labels)
    fig = disentanglement_figure(report, title="vae β=4")
    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert len(panels) == 4
    assert panels[2].get_title().startswith("KL per dimension (total")
    assert panels[3].get_title().startswith("Mutual information with genre")
    assert "mean |r|" in panels[0].get_title()
    assert_png(save_figure(fig, tmp_path / "latents_vae.png"), min_kb=20)


# --- beta_grid_figure ------------------------------------------------------------------------------------------------------


def test_beta_grid_figure_leaves_missing_cells_blank(tmp_path, data, coords):
    _, labels = data
    cells = [("vae", 4.0), ("vae", 0.5), ("vae", 1.0), ("conv_vae", 0.5), ("conv_vae", 1.0)]  # conv_vae at β=4 is missing
    panels = [Panel(row, beta, coords["umap"], labels, GENRES) for row, beta in cells]
    fig = beta_grid_figure(panels)
    grid = np.array(fig.axes).reshape(2, 3)
    assert [ax.get_title() for ax in grid[0]] == ["β = 0.5", "β = 1", "β = 4"]
    assert [ax.texts[0].get_text() for ax in grid[:, 0]] == ["vae", "conv_vae"]
    assert not grid[1, 2].axison and grid[1, 1].axison
    assert [t.get_text() for t in fig.legends[0].get_texts()] == GENRES
    assert_png(save_figure(fig, tmp_path / "grid.png"), min_kb=20)


def test_beta_grid_figure_refuses_two_panels_for_one_cell(coords):
    panel = Panel("vae", 1.0, coords["umap"], np.zeros(200, int), GENRES)
    with pytest.raises(ValueError, match="two panels"):
        beta_grid_figure([panel, panel])


# --- metrics_heatmap -------------------------------------------------------------------------------------------------------


def test_metrics_heatmap_colours_bright_for_better_and_greys_gaps(tmp_path):
    means = pd.DataFrame(
        {
            "silhouette": [0.2, 0.5, np.nan],
            "calinski_harabasz": [1500.0, 900.0, 1200.0],
            "davies_bouldin": [1.4, 0.6, 0.9],
            "seconds": [12.0, 340.0, 55.0],
        },
        index=["pca latent 8 kmeans", "vae β=4 latent 32 agglomerative (ward)", "vae β=1 latent 16 gmm"],
    )
    fig = metrics_heatmap(means, stds=means * 0.1)
    ax = fig.axes[0]
    scores = ax.images[0].get_array()
    assert scores[1, 2] == 1.0 and scores[0, 2] == 0.0  # lowest Davies-Bouldin is brightest
    assert scores[0, 3] == 1.0 and scores[1, 3] == 0.0  # fastest is brightest
    assert scores[1, 0] == 1.0 and scores[0, 1] == 1.0  # higher is better elsewhere
    assert np.ma.is_masked(scores[2, 0])  # NaN: no colour
    texts = [t.get_text() for t in ax.texts]
    assert "–" in texts and "1500±150" in texts and "0.600±0.060" in texts
    assert_png(save_figure(fig, tmp_path / "metrics.png"), min_kb=10)


def test_metrics_heatmap_grows_with_the_number_of_methods():
    means = pd.DataFrame(np.random.default_rng(0).random((30, 3)), columns=["ari", "nmi", "purity"])
    small, large = metrics_heatmap(means.head(3)), metrics_heatmap(means)
    assert large.get_figheight() > 2 * small.get_figheight()
    plt.close(small)
    plt.close(large)


# --- save_figure -----------------------------------------------------------------------------------------------------------


def test_save_figure_creates_folders_and_closes_the_figure(tmp_path, coords):
    before = len(plt.get_fignums())
    for i in range(3):
        path = save_figure(projection_figure(coords, np.zeros(200, int), None, GENRES), tmp_path / "a" / "b" / f"{i}.png")
        assert path.exists()
    assert len(plt.get_fignums()) == before


@pytest.mark.slow
@pytest.mark.parametrize("method", PROJECTIONS)
def test_project_3000_tracks(method):
    embedding, _ = blobs(600, k=5, d=32, scale=5.0, spread=1.0, standardise=False)
    xy = project(embedding, method)
    assert xy.shape == (3000, 2) and np.isfinite(xy).all()
