"""Figures a music researcher reads in the MLflow UI: projections, latent diagnostics, β grids, metric tables.

Every figure follows the same rules so panels and runs can be compared at a glance:

* a class keeps its colour everywhere: the colour comes from the index of its
  name in ``label_names`` (tab10 up to 10 classes, tab20 up to 20, a
  continuous map beyond), never from the order classes happen to appear in;
* noise (cluster -1 from DBSCAN/HDBSCAN) is light grey, drawn first, underneath;
* thousands of points stay legible: small, translucent, rasterised markers
  (a PNG of 3000 points stays small) and legend dots drawn larger than the data;
* more than ``MAX_LEGEND`` classes: the legend lists the largest and says so.

Figures are made with pyplot and closed by :func:`save_figure`, so a process
that logs figures for hundreds of trials does not accumulate them.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: Ray workers have no display, and a GUI backend is not thread-safe

import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from musicvae.disentanglement import ACTIVE_THRESHOLD, DisentanglementReport  # noqa: E402
from musicvae.metrics import sample_rows  # noqa: E402,F401  (figures draw the same seeded sample as selection scores)

PROJECTIONS = ("umap", "tsne")
DISPLAY_NAMES = {"umap": "UMAP", "tsne": "t-SNE"}
UMAP_EXACT_BELOW = 4096  # umap-learn's own cut-off between exact neighbours and NN-descent

POINT_SIZE = 4  # scatter marker area (points²): 3000 points without a solid blob
POINT_ALPHA = 0.6
LEGEND_MARKER_SIZE = 7  # legend dot diameter (points), several times a data point, so its colour is readable
NOISE_COLOUR = (0.82, 0.82, 0.82, 1.0)
MAX_LEGEND = 12  # more entries than this and a legend stops being read


def project(embedding: np.ndarray, method: str, seed: int = 0) -> np.ndarray:
    """2-D coordinates of an embedding, (n, 2) float32, by UMAP or t-SNE.

    Embeddings that are already at most 2-D are drawn as they are: a
    neighbour-graph layout of a line or a plane only distorts it. Fewer than
    5 points cannot support a neighbourhood graph, so they get their first two
    principal components. Identical rows (a VAE whose posterior collapsed
    entirely) take the same path, to a single point: t-SNE's PCA initialisation
    divides by their zero spread and crashes the process (scikit-learn #28368).
    """
    if method not in PROJECTIONS:
        raise ValueError(f"unknown projection {method!r}; choose one of {PROJECTIONS}")
    x = np.asarray(embedding, dtype=np.float32)
    if x.ndim == 1:  # one value per track: a single column
        x = x[:, None]
    if not np.isfinite(x).all():
        raise ValueError("the embedding has NaN or infinite values (a diverged model?); there is nothing to project")
    n, d = x.shape
    if d <= 2:
        return np.hstack([x, np.zeros((n, 2 - d), dtype=np.float32)])
    if n < 5 or not np.ptp(x, axis=0).any():
        return principal_components(x)
    if method == "umap":
        import umap  # slow to import (numba): only when a UMAP is asked for
        from sklearn.metrics import pairwise_distances

        # Below UMAP_EXACT_BELOW rows umap-learn finds exact neighbours from all pairwise distances, but computes them
        # through sklearn with a Python-level callable, one call per pair (~20 s at 3000 rows). sklearn's vectorised
        # distances give the same neighbours in a fraction of a second; above the cut-off umap uses NN-descent anyway.
        exact = n < UMAP_EXACT_BELOW
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning, message=".*(n_jobs|random_state|precomputed).*")
            reducer = umap.UMAP(
                n_neighbors=min(15, n - 1), min_dist=0.1, random_state=seed, n_jobs=1, metric="precomputed" if exact else "euclidean"
            )
            coords = reducer.fit_transform(pairwise_distances(x) if exact else x)
    else:
        from sklearn.manifold import TSNE

        coords = TSNE(n_components=2, perplexity=min(30.0, (n - 1) / 3), init="pca", random_state=seed).fit_transform(x)
    return np.asarray(coords, dtype=np.float32)


def principal_components(x: np.ndarray) -> np.ndarray:
    """First two principal components, zero-padded when the data span fewer than two directions."""
    if len(x) == 0:
        return np.zeros((0, 2), dtype=np.float32)
    centred = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    coords = centred @ vt[:2].T
    return np.hstack([coords, np.zeros((len(x), 2 - coords.shape[1]))]).astype(np.float32)


# --- colours, scatter and legends shared by the figures ------------------------------------------------------------------


def colour_table(n: int) -> np.ndarray:
    """RGBA for codes 0..n-1.

    tab20 is reordered so its ten strong hues (tab10's) come first and its ten
    pale twins after: with 11-20 classes, the first ten look as they do with tab10.
    """
    if n <= 10:
        return matplotlib.colormaps["tab10"](np.arange(n))
    if n <= 20:
        return matplotlib.colormaps["tab20"](np.r_[0:20:2, 1:20:2][:n])
    return matplotlib.colormaps["turbo"](np.linspace(0.0, 1.0, n))


def scatter_codes(ax: Axes, coords: np.ndarray, codes: np.ndarray, colours: np.ndarray) -> None:
    """Noise first, underneath; the rest in one shuffled (seeded) draw so no class always sits on top of the others."""
    noise = codes < 0
    style = dict(s=POINT_SIZE, alpha=POINT_ALPHA, linewidths=0, rasterized=True)
    ax.scatter(coords[noise, 0], coords[noise, 1], color=NOISE_COLOUR, **style)
    order = np.random.default_rng(0).permutation(np.flatnonzero(~noise))
    ax.scatter(coords[order, 0], coords[order, 1], c=colours[codes[order]].reshape(-1, 4), **style)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_aspect("equal", adjustable="datalim")  # UMAP/t-SNE distances mean the same along both axes


def legend_entries(codes: np.ndarray, names: list[str], colours: np.ndarray, noun: str) -> tuple[list[Line2D], str | None]:
    """Handles for the classes present (at most MAX_LEGEND, the largest) plus noise, and a title saying what was left out."""
    present, counts = np.unique(codes[codes >= 0], return_counts=True)
    title = None
    if len(present) > MAX_LEGEND:
        title = f"({len(present)} {noun}; legend shows the {MAX_LEGEND} largest)"
        present = np.sort(present[np.argsort(-counts, kind="stable")[:MAX_LEGEND]])

    def dot(colour: np.ndarray | tuple, label: str) -> Line2D:
        return Line2D([], [], linestyle="", marker="o", markersize=LEGEND_MARKER_SIZE, color=colour, label=label)

    handles = [dot(colours[code], names[code] if code < len(names) else str(code)) for code in present]
    if (codes < 0).any():
        handles.append(dot(NOISE_COLOUR, "noise"))
    return handles, title


def legend_style(title: str | None) -> dict:
    return dict(frameon=False, fontsize=8, title=title, title_fontsize=8, handletextpad=0.3, borderaxespad=0.0)


def colours_for(codes: np.ndarray, names: list[str]) -> np.ndarray:
    """A colour per name, extended when codes go beyond the names (so a stray code never raises)."""
    return colour_table(max(len(names), int(np.max(codes, initial=-1)) + 1))


def fmt(value: float, spec: str = ".3g") -> str:
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    return format(value, spec)


def text_figure(message: str, title: str = "") -> Figure:
    """A figure that says why there is nothing to draw, rather than a crash in the middle of a trial."""
    fig, ax = plt.subplots(figsize=(6, 3), layout="constrained")
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=11, color="dimgrey", transform=ax.transAxes)
    ax.set_axis_off()
    fig.suptitle(title)
    return fig


# --- projections -----------------------------------------------------------------------------------------------------------


def projection_figure(
    coords: dict[str, np.ndarray], clusters: np.ndarray, labels: np.ndarray | None, label_names: list[str], title: str = ""
) -> Figure:
    """A row per projection; clusters on the left, genres on the right, so the clustering reads against the genres.

    The legend of each column is drawn once, on the top row: colours do not change between rows.
    """
    if not coords:
        raise ValueError("no projections to draw")
    clusters = np.asarray(clusters)
    n = len(clusters)
    for method, xy in coords.items():
        if np.shape(xy) != (n, 2):
            raise ValueError(f"{method} coordinates have shape {np.shape(xy)}; expected ({n}, 2) like the clusters")
    if labels is not None and len(labels) != n:
        raise ValueError(f"{len(labels)} labels for {n} cluster assignments")

    k = len(np.unique(clusters[clusters >= 0]))
    noise_share = float(np.mean(clusters < 0)) if n else 0.0
    cluster_note = f"k={k}, {noise_share:.0%} noise" if noise_share > 0 else f"k={k}"
    cluster_names = [f"cluster {c}" for c in range(int(np.max(clusters, initial=-1)) + 1)]
    columns = [(clusters, cluster_names, "clusters", f"clusters ({cluster_note})")]
    if labels is not None:
        columns.append((np.asarray(labels), list(label_names), "genres", "genre"))

    fig, axes = plt.subplots(
        len(coords), len(columns), figsize=(6.4 * len(columns), 4.8 * len(coords)), layout="constrained", squeeze=False
    )
    for row, (method, xy) in enumerate(coords.items()):
        xy = np.asarray(xy, dtype=np.float32)
        for col, (codes, names, noun, caption) in enumerate(columns):
            colours = colours_for(codes, names)
            ax = axes[row, col]
            scatter_codes(ax, xy, codes, colours)
            ax.set_title(f"{DISPLAY_NAMES.get(method, method.upper())} — {caption}")
            if row == 0:
                handles, legend_title = legend_entries(codes, names, colours, noun)
                ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), **legend_style(legend_title))
    fig.suptitle(title)
    return fig


# --- latent diagnostics ----------------------------------------------------------------------------------------------------


def disentanglement_figure(report: DisentanglementReport, title: str = "") -> Figure:
    """Is the code spread over independent, used dimensions? Correlation, active units, KL and (with labels) MI with genre.

    The panels share the latent-dimension axis so a collapsed dimension can be
    followed across them: grey in the variance bars, near zero KL, no genre information.
    """
    d = len(report.variance)
    n_panels = 3 if report.mi_with_labels is None else 4
    fig, axes = plt.subplots(1, n_panels, figsize=(4.6 * n_panels, 4.3), layout="constrained")
    dims = np.arange(d)

    cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad="lightgrey")  # constant dimensions have no correlation
    image = axes[0].imshow(np.ma.masked_invalid(report.correlation), cmap=cmap, vmin=-1, vmax=1, interpolation="nearest")
    fig.colorbar(image, ax=axes[0], shrink=0.8, label="Pearson r")
    axes[0].set_title(
        f"Correlation of posterior means\nmean |r| = {fmt(report.mean_abs_correlation, '.2f')}, "
        f"total correlation = {fmt(report.total_correlation)} nats"
    )
    axes[0].set_xlabel("latent dimension")
    axes[0].set_ylabel("latent dimension")

    active = report.active
    positive = report.variance[report.variance > 0]
    floor = (min(ACTIVE_THRESHOLD, positive.min()) if positive.size else ACTIVE_THRESHOLD) / 10  # log scale: 0 needs a floor
    axes[1].bar(dims, np.maximum(report.variance, floor), color=np.where(active, "tab:blue", "lightgrey"))
    for dim in np.flatnonzero(report.variance <= 0):  # the stub is at the floor, not at the value: say so
        axes[1].text(dim, floor, "0", ha="center", va="bottom", fontsize=7, color="dimgrey")
    axes[1].axhline(ACTIVE_THRESHOLD, color="black", linestyle="--", linewidth=1)
    axes[1].set_yscale("log")
    axes[1].set_ylim(bottom=floor / 3)  # a zero-variance dimension shows as a grey stub, not as nothing
    axes[1].set_title(f"Active units: {int(active.sum())}/{d}")
    axes[1].set_xlabel("latent dimension")
    axes[1].set_ylabel("Var over tracks of E[z | x]")
    axes[1].legend(
        handles=[
            Patch(color="tab:blue", label="active"),
            Patch(color="lightgrey", label="inactive (collapsed)"),
            Line2D([], [], color="black", linestyle="--", linewidth=1, label=f"threshold {ACTIVE_THRESHOLD:g}"),
        ],
        fontsize=8,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.14),
        ncol=3,
        frameon=False,
    )

    if report.kl_per_dim is None:
        axes[2].text(0.5, 0.5, "no KL: deterministic embedding", ha="center", va="center", color="dimgrey", transform=axes[2].transAxes)
        axes[2].set_xticks([])
        axes[2].set_yticks([])
        axes[2].set_title("KL per dimension")
    else:
        axes[2].bar(dims, report.kl_per_dim, color="tab:orange")
        axes[2].set_title(f"KL per dimension (total {fmt(float(np.sum(report.kl_per_dim)))} nats)")
        axes[2].set_xlabel("latent dimension")
        axes[2].set_ylabel("KL(q(z_d | x) ‖ N(0, 1)) (nats)")

    if report.mi_with_labels is not None:
        axes[3].bar(dims, report.mi_with_labels, color="tab:green")
        axes[3].set_title(f"Mutual information with genre (max {fmt(float(np.max(report.mi_with_labels)))} nats)")
        axes[3].set_xlabel("latent dimension")
        axes[3].set_ylabel("I(z_d; genre) (nats)")

    axes[0].yaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in axes:
        if ax.has_data():  # dimensions are whole numbers; the empty KL panel keeps no ticks
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(title)
    return fig


# --- β grid ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Panel:
    row: str  # e.g. the model name, "vae"
    beta: float
    coords: np.ndarray  # (n, 2)
    colours: np.ndarray  # (n,) int codes; -1 = noise
    names: list[str]  # names for the codes (genre names, or "cluster 0"...)


def beta_grid_figure(panels: list[Panel], title: str = "β grid") -> Figure:
    """How the latent space changes with β: a column per β (ascending), a row per model, one shared legend.

    Colours come from the first panel's names for every panel, so a genre is
    the same colour across the whole grid.
    """
    if not panels:
        return text_figure("no panels to draw", title)
    betas = sorted({p.beta for p in panels})
    rows = list(dict.fromkeys(p.row for p in panels))
    cells: dict[tuple[str, float], Panel] = {}
    for p in panels:
        if (p.row, p.beta) in cells:
            raise ValueError(f"two panels for {p.row!r} at β = {p.beta:g}")
        cells[p.row, p.beta] = p

    names = panels[0].names
    colours = colours_for(np.concatenate([np.asarray(p.colours) for p in panels]), names)
    fig, axes = plt.subplots(len(rows), len(betas), figsize=(3.3 * len(betas) + 2.2, 3.3 * len(rows)), layout="constrained", squeeze=False)
    for i, row in enumerate(rows):
        for j, beta in enumerate(betas):
            ax = axes[i, j]
            if i == 0:
                ax.set_title(f"β = {beta:.3g}")
            if j == 0:  # annotate rather than ylabel: a label vanishes with the axis of an empty cell
                ax.annotate(row, xy=(-0.06, 0.5), xycoords="axes fraction", rotation=90, ha="right", va="center", fontsize=12)
            panel = cells.get((row, beta))
            if panel is None:
                ax.set_axis_off()
                continue
            scatter_codes(ax, np.asarray(panel.coords, dtype=np.float32), np.asarray(panel.colours), colours)

    handles, legend_title = legend_entries(np.asarray(panels[0].colours), names, colours, "classes")
    fig.legend(handles=handles, loc="outside right upper", **legend_style(legend_title))
    fig.suptitle(title)
    return fig


# --- metrics table -----------------------------------------------------------------------------------------------------------


def lower_is_better_column(name: str, lower_is_better: tuple[str, ...]) -> bool:
    return name in lower_is_better or name == "seconds" or name.endswith("_seconds")


def column_scores(values: np.ndarray, lower: list[bool]) -> np.ndarray:
    """Min-max within each column, flipped where lower is better: 1 is the best method on that metric, 0 the worst.

    A column where every method scores the same gets 0.5 (no one is better);
    NaN and infinite values get no colour.
    """
    scores = np.full(values.shape, np.nan)
    for j in range(values.shape[1]):
        column = values[:, j]
        ok = np.isfinite(column)
        if not ok.any():
            continue
        low, high = column[ok].min(), column[ok].max()
        scaled = (column[ok] - low) / (high - low) if high > low else np.full(ok.sum(), 0.5)
        scores[ok, j] = 1.0 - scaled if lower[j] else scaled
    return scores


def format_value(value: float, std: float | None = None) -> str:
    if not math.isfinite(value):
        return "–" if math.isnan(value) else fmt(value)
    spec = ".0f" if abs(value) >= 100 else ".3f"
    text = format(value, spec)
    if std is not None and math.isfinite(std):
        text += f"±{format(std, spec)}"
    return text


def metrics_heatmap(
    means: pd.DataFrame,
    stds: pd.DataFrame | None = None,
    title: str = "Metrics across methods",
    lower_is_better: tuple[str, ...] = ("davies_bouldin",),
) -> Figure:
    """Methods against metrics, each column coloured on its own scale so that bright always means better.

    Metrics live on different scales (silhouette in [-1, 1], Calinski-Harabasz
    in the thousands, seconds), so one colour scale for the table would show
    only the largest; the printed numbers keep the real values.
    """
    if means.empty:
        return text_figure("no metrics to show", title)
    values = means.to_numpy(dtype=float)
    spread = None if stds is None else stds.reindex(index=means.index, columns=means.columns).to_numpy(dtype=float)
    lower = [lower_is_better_column(str(c), lower_is_better) for c in means.columns]
    scores = column_scores(values, lower)

    n_rows, n_cols = values.shape
    name_width = 0.075 * max(len(str(name)) for name in means.index)
    cell_width = 1.25 if stds is not None else 0.85
    fig, ax = plt.subplots(figsize=(2.4 + name_width + cell_width * n_cols, 1.9 + 0.32 * n_rows), layout="constrained")
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="lightgrey")
    image = ax.imshow(np.ma.masked_invalid(scores), cmap=cmap, vmin=0, vmax=1, aspect="auto", interpolation="nearest")

    for i in range(n_rows):
        for j in range(n_cols):
            score = scores[i, j]
            if math.isnan(score):
                colour = "black"
            else:
                r, g, b, _ = cmap(score)
                colour = "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"
            text = format_value(values[i, j], None if spread is None else spread[i, j])
            ax.text(j, i, text, ha="center", va="center", fontsize=8, color=colour)

    headers = [f"{c}\n(lower is better)" if low else str(c) for c, low in zip(means.columns, lower)]
    ax.set_xticks(range(n_cols), headers, rotation=30, ha="right")
    ax.set_yticks(range(n_rows), [str(name) for name in means.index])
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    bar = fig.colorbar(image, ax=ax, shrink=0.8, ticks=[0, 1])
    bar.ax.set_yticklabels(["worst", "best"])
    bar.set_label("within each column (min–max)")
    ax.set_title(title)
    return fig


def save_figure(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Write a PNG and close the figure: pyplot keeps every open figure alive, and a sweep makes hundreds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, format="png")
    plt.close(fig)
    return path


# --- study summaries: metric curves and grouped bars ----------------------------------------------------------------------

METRIC_LABELS = {
    "silhouette": "silhouette",
    "calinski_harabasz": "Calinski-Harabasz",
    "davies_bouldin": "Davies-Bouldin",
    "ari": "ARI",
    "nmi": "NMI",
    "purity": "purity",
    "val_loss": "validation loss",
    "noise_fraction": "noise fraction",
    "largest_cluster": "largest cluster",
    "seconds": "trial seconds",
}
DODGE = 0.025  # horizontal shift between series at one x (decades on a log axis, share of the range otherwise)


def metric_label(name: str) -> str:
    return METRIC_LABELS.get(name, name)


def _dodged(xs: np.ndarray, index: int, count: int, log: bool, span: float) -> np.ndarray:
    """x shifted a little per series, so error bars of series at the same x do not hide each other."""
    shift = (index - (count - 1) / 2) * DODGE
    if log:
        return xs * 10.0**shift
    return xs + shift * span


def _x_axis(ax: Axes, xs: list[float], log: bool) -> None:
    """Ticks at the values that were run, on a log axis when asked (symlog when 0 is among them: log(0) is undefined)."""
    if log:
        positive = [x for x in xs if x > 0]
        if len(positive) < len(xs):
            ax.set_xscale("symlog", linthresh=min(positive, default=1.0))
        else:
            ax.set_xscale("log")
    ax.set_xticks(xs, [format(x, ".3g") for x in xs])
    ax.minorticks_off()


def metric_curves_figure(
    points: pd.DataFrame,
    x: str,
    series: str,
    metrics: list[str],
    title: str = "",
    x_label: str | None = None,
    log_x: bool = False,
) -> Figure:
    """One panel per metric: a line per series over ``x``, with mean ± std error bars.

    ``points`` has a row per (series, x) and the columns ``<metric>_mean`` and
    ``<metric>_std`` (NaN std: one run, no bar). A series keeps its colour in
    every panel and one legend serves them all; series sharing an x are
    shifted slightly apart so their error bars stay readable.
    """
    if points.empty or not metrics:
        return text_figure("no points to draw", title)
    names = list(dict.fromkeys(points[series]))
    colours = colour_table(len(names))
    xs = sorted(float(v) for v in points[x].unique())
    span = (max(xs) - min(xs)) or 1.0
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.3 * len(metrics) + 2.6, 3.9), layout="constrained", squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for i, name in enumerate(names):
            line = points[points[series] == name].sort_values(x)
            positions = _dodged(line[x].to_numpy(float), i, len(names), log_x, span)
            mean, std = line[f"{metric}_mean"].to_numpy(float), line[f"{metric}_std"].to_numpy(float)
            ax.errorbar(positions, mean, yerr=std, color=colours[i], marker="o", markersize=4, linewidth=1.5, capsize=3, elinewidth=1)
        _x_axis(ax, xs, log_x)
        ax.set_title(metric_label(metric))
        ax.set_xlabel(x_label or x)
        ax.grid(alpha=0.3)
    handles = [Line2D([], [], color=colours[i], marker="o", markersize=4, linewidth=1.5, label=name) for i, name in enumerate(names)]
    fig.legend(handles=handles, loc="outside right upper", **legend_style(None))
    fig.suptitle(title)
    return fig


def grouped_bars_figure(
    means: pd.DataFrame,
    stds: pd.DataFrame | None = None,
    title: str = "",
    y_label: str = "",
    hatched: tuple[str, ...] = (),
) -> Figure:
    """A group of bars per column (a metric), a bar per row (a method) in each group, std as error bars.

    Rows in ``hatched`` (e.g. the baselines) are hatched so they stand apart
    from the methods they are compared with. A missing value is written as
    "n/a" where its bar would be, so an absent bar is never read as zero.
    """
    if means.empty:
        return text_figure("no methods to compare", title)
    n_rows, n_cols = means.shape
    width = 0.8 / n_rows
    colours = colour_table(n_rows)
    spread = None if stds is None else stds.reindex(index=means.index, columns=means.columns).to_numpy(dtype=float)
    fig, ax = plt.subplots(figsize=(2.0 + n_cols * (0.3 * n_rows + 0.5) + 3.5, 4.4), layout="constrained")
    for i, name in enumerate(means.index):
        values = means.loc[name].to_numpy(dtype=float)
        positions = np.arange(n_cols) - 0.4 + width * (i + 0.5)
        ax.bar(
            positions,
            np.nan_to_num(values),
            width,
            yerr=None if spread is None else spread[i],
            color=colours[i],
            label=str(name),
            hatch="///" if name in hatched else None,
            edgecolor="white",
            linewidth=0.5,
            capsize=2,
            error_kw=dict(elinewidth=1),
        )
        for position in positions[np.isnan(values)]:
            ax.annotate("n/a", (position, 0), xytext=(0, 3), textcoords="offset points", ha="center", va="bottom", rotation=90, fontsize=8)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(range(n_cols), [metric_label(str(c)) for c in means.columns])
    ax.set_ylabel(y_label)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    fig.legend(loc="outside right upper", **legend_style(None))
    ax.set_title(title)  # over the axes, not the figure: a figure title would run into the legend beside them
    return fig
