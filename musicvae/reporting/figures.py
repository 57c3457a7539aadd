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
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: Ray workers have no display, and a GUI backend is not thread-safe

import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)
import numpy as np  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from musicvae.evaluation.disentanglement import ACTIVE_THRESHOLD, DisentanglementReport  # noqa: E402
from musicvae.evaluation.metrics import sample_rows  # noqa: E402,F401  (figures draw the same seeded sample as selection scores)

DISPLAY_NAMES = {"umap": "UMAP", "tsne": "t-SNE"}

POINT_SIZE = 4  # scatter marker area (points²): 3000 points without a solid blob
POINT_ALPHA = 0.6
LEGEND_MARKER_SIZE = 7  # legend dot diameter (points), several times a data point, so its colour is readable
NOISE_COLOUR = (0.82, 0.82, 0.82, 1.0)
MAX_LEGEND = 12  # more entries than this and a legend stops being read


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


def projection_figure(coords: dict[str, np.ndarray], clusters: np.ndarray, labels: np.ndarray | None, label_names: list[str], title: str = "") -> Figure:
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

    fig, axes = plt.subplots(len(coords), len(columns), figsize=(6.4 * len(columns), 4.8 * len(coords)), layout="constrained", squeeze=False)
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


def _dimension_bars(ax: Axes, values: np.ndarray, colour: str, title: str, y_label: str) -> None:
    """A bar per latent dimension."""
    ax.bar(np.arange(len(values)), values, color=colour)
    ax.set_title(title)
    ax.set_xlabel("latent dimension")
    ax.set_ylabel(y_label)


def disentanglement_figure(report: DisentanglementReport, title: str = "") -> Figure:
    """Is the code spread over independent, used dimensions? Correlation, active units, KL and (with labels) MI with genre.

    The panels share the latent-dimension axis so a collapsed dimension can be
    followed across them: grey in the variance bars, near zero KL, no genre information.
    """
    n_panels = 3 if report.mi_with_labels is None else 4
    # Margins fixed in inches, not found by constrained layout: every panel's text is of a known size, and the
    # layout's measuring pass was half of a figure's time, and one is drawn per model and seed of a sweep.
    width, left, right, gap = 4.6 * n_panels, 0.7, 0.3, 1.0
    panel = (width - left - right - gap * (n_panels - 1)) / n_panels
    fig, axes = plt.subplots(1, n_panels, figsize=(width, 4.3))
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=0.85 / 4.3, top=1 - 0.95 / 4.3, wspace=gap / panel)
    _correlation_panel(fig, axes[0], report)
    _active_units_panel(axes[1], report)

    if report.kl_per_dim is None:
        axes[2].text(0.5, 0.5, "no KL: deterministic embedding", ha="center", va="center", color="dimgrey", transform=axes[2].transAxes)
        axes[2].set_xticks([])
        axes[2].set_yticks([])
        axes[2].set_title("KL per dimension")
    else:
        total = fmt(float(np.sum(report.kl_per_dim)))
        _dimension_bars(axes[2], report.kl_per_dim, "tab:orange", f"KL per dimension (total {total} nats)", "KL(q(z_d | x) ‖ N(0, 1)) (nats)")

    if report.mi_with_labels is not None:
        most = fmt(float(np.max(report.mi_with_labels)))
        _dimension_bars(axes[3], report.mi_with_labels, "tab:green", f"Mutual information with genre (max {most} nats)", "I(z_d; genre) (nats)")

    axes[0].yaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in axes:
        if ax.has_data():  # dimensions are whole numbers; the empty KL panel keeps no ticks
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(title)
    return fig


def _correlation_panel(fig: Figure, ax: Axes, report: DisentanglementReport) -> None:
    """The posterior means' correlation matrix, constant dimensions in grey."""
    cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad="lightgrey")  # constant dimensions have no correlation
    image = ax.imshow(np.ma.masked_invalid(report.correlation), cmap=cmap, vmin=-1, vmax=1, interpolation="nearest")
    fig.colorbar(image, ax=ax, shrink=0.8, label="Pearson r")
    ax.set_title(
        f"Correlation of posterior means\nmean |r| = {fmt(report.mean_abs_correlation, '.2f')}, total correlation = {fmt(report.total_correlation)} nats"
    )
    ax.set_xlabel("latent dimension")
    ax.set_ylabel("latent dimension")


def _active_units_panel(ax: Axes, report: DisentanglementReport) -> None:
    """Each dimension's variance of the posterior mean (log scale), active ones in blue, the threshold dashed."""
    dims = np.arange(len(report.variance))
    active = report.active
    positive = report.variance[report.variance > 0]
    floor = (min(ACTIVE_THRESHOLD, positive.min()) if positive.size else ACTIVE_THRESHOLD) / 10  # log scale: 0 needs a floor
    ax.bar(dims, np.maximum(report.variance, floor), color=np.where(active, "tab:blue", "lightgrey"))
    for dim in np.flatnonzero(report.variance <= 0):  # the stub is at the floor, not at the value: say so
        ax.text(dim, floor, "0", ha="center", va="bottom", fontsize=7, color="dimgrey")
    ax.axhline(ACTIVE_THRESHOLD, color="black", linestyle="--", linewidth=1)
    ax.set_yscale("log")
    ax.set_ylim(bottom=floor / 3)  # a zero-variance dimension shows as a grey stub, not as nothing
    ax.set_title(f"Active units: {int(active.sum())}/{len(dims)}")
    ax.set_xlabel("latent dimension")
    ax.set_ylabel("Var over tracks of E[z | x]")
    ax.legend(
        handles=[
            Patch(color="tab:blue", label="active"),
            Patch(color="lightgrey", label="inactive (collapsed)"),
            Line2D([], [], color="black", linestyle="--", linewidth=1, label=f"threshold {ACTIVE_THRESHOLD:g}"),
        ],
        fontsize=8,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.16),
        ncol=3,
        frameon=False,
    )


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


def save_figure(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Write a PNG and close the figure: pyplot keeps every open figure alive, and a sweep makes hundreds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, format="png")
    plt.close(fig)
    return path
