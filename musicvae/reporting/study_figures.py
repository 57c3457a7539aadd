"""The study's summary figures (PNG, for methods.md and the parent run): the metrics heatmap, metric curves against β, grouped bars.

Same conventions as :mod:`musicvae.reporting.figures`, whose helpers they use; which way
each metric is better comes from :mod:`musicvae.metric_registry`.
"""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")  # headless, as in musicvae.reporting.figures

import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from musicvae import metric_registry as registry  # noqa: E402
from musicvae.reporting.figures import colour_table, legend_style, text_figure  # noqa: E402

# --- metrics table -----------------------------------------------------------------------------------------------------------


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


def metrics_heatmap(
    means: pd.DataFrame,
    stds: pd.DataFrame | None = None,
    title: str = "Metrics across methods",
) -> Figure:
    """Methods against metrics, each column coloured on its own scale so that bright always means better (directions: musicvae.metric_registry).

    Metrics live on different scales (silhouette in [-1, 1], Calinski-Harabasz
    in the thousands, seconds), so one colour scale for the table would show
    only the largest; the printed numbers keep the real values.
    """
    if means.empty:
        return text_figure("no metrics to show", title)
    values = means.to_numpy(dtype=float)
    spread = None if stds is None else stds.reindex(index=means.index, columns=means.columns).to_numpy(dtype=float)
    lower = [registry.lower_is_better(str(c)) for c in means.columns]
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
            text = registry.format_value(values[i, j], None if spread is None else spread[i, j], str(means.columns[j]), compact=True)
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


# --- study summaries: metric curves and grouped bars ----------------------------------------------------------------------

DODGE = 0.025  # horizontal shift between series at one x (decades on a log axis, share of the range otherwise)


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
        ax.set_title(registry.label(metric))
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
    ax.set_xticks(range(n_cols), [registry.label(str(c)) for c in means.columns])
    ax.set_ylabel(y_label)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    fig.legend(loc="outside right upper", **legend_style(None))
    ax.set_title(title)  # over the axes, not the figure: a figure title would run into the legend beside them
    return fig
