"""The sweep's interactive charts (plotly), for report.html: the embedding explorer, cluster composition, heatmap, β curves, best methods."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from musicvae import metric_registry as registry
from musicvae.reporting.study_figures import column_scores
from musicvae.reporting.summary import BAR_METRICS, CURVE_METRICS, HEATMAP_COLUMNS, best_methods, beta_points
from musicvae.tracking.sweep_runs import SweepTables

PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
    "#393b79",
    "#e7ba52",
    "#637939",
    "#ad494a",
    "#7b4173",
    "#3182bd",
    "#31a354",
    "#756bb1",
    "#636363",
    "#e6550d",
)
HOVER_COLUMNS = ("track_id", "artist", "title", "genre", "cluster", "audio")


@dataclass(frozen=True)
class Explored:
    """One method's trial, as the explorer shows it: every track's cluster and, for the sampled ones, 2-D coordinates."""

    role: str  # "selected", "oracle", or both
    method: str
    trial: str
    tracks: pd.DataFrame  # track_id, cluster, genre, artist, title, audio, z.. ; x and y where projected
    projection: str  # "umap", "tsne" or "computed umap"
    cluster_tags: dict[int, str] = field(default_factory=dict)  # cluster -> musicnn's most distinctive tags ("MSD: rock, punk, metal")


def _colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


HOVER = "<b>%{customdata[2]}</b><br>%{customdata[1]}<br>track %{customdata[0]}<br>genre %{customdata[3]}<br>cluster %{customdata[4]}<extra></extra>"


def _points(part: pd.DataFrame, name: str, colour: str, by: str, visible: bool = True, symbol: str = "circle") -> go.Scattergl:
    """One WebGL trace of the explorer; ``meta`` says which colouring ("cluster" or "genre") it belongs to."""
    return go.Scattergl(
        x=part["x"],
        y=part["y"],
        mode="markers",
        name=name,
        visible=visible,
        marker=dict(size=6, color=colour, symbol=symbol),
        customdata=part[list(HOVER_COLUMNS)].to_numpy(object),
        hovertemplate=HOVER,
        meta=by,
    )


def explorer_figure(item: Explored) -> go.Figure:
    """Scatter of the projected tracks: one trace per cluster and one per genre, a button switching which set is shown."""
    points = item.tracks.dropna(subset=["x", "y"])
    labelled = (points["genre"] != "").any()
    traces = [
        _points(points[points["cluster"] == c], "noise" if c < 0 else f"cluster {c}", "#bbbbbb" if c < 0 else _colour(i), "cluster")
        for i, c in enumerate(sorted(points["cluster"].unique()))
    ]
    by_cluster = [True] * len(traces)
    if labelled:
        genres = sorted(points["genre"].unique())
        traces += [_points(points[points["genre"] == g], g, _colour(i), "genre", visible=False, symbol="diamond") for i, g in enumerate(genres)]
    figure = go.Figure(traces)
    n_cluster, n_total = len(by_cluster), len(traces)
    if labelled:
        figure.update_layout(
            updatemenus=[
                dict(
                    type="buttons",
                    direction="right",
                    x=0,
                    y=1.12,
                    xanchor="left",
                    showactive=True,
                    buttons=[
                        dict(label="colour by cluster", method="restyle", args=[{"visible": [True] * n_cluster + [False] * (n_total - n_cluster)}]),
                        dict(label="colour by genre (labels)", method="restyle", args=[{"visible": [False] * n_cluster + [True] * (n_total - n_cluster)}]),
                    ],
                )
            ]
        )
    figure.update_layout(
        height=560,
        margin=dict(l=40, r=20, t=60, b=40),
        legend=dict(itemsizing="constant"),
        xaxis=dict(title=f"{item.projection} 1"),
        yaxis=dict(title=f"{item.projection} 2"),
    )
    return figure


def composition_figure(item: Explored) -> go.Figure:
    """Tracks per genre in each cluster (stacked), or the clusters' sizes without labels."""
    tracks = item.tracks
    clusters = sorted(tracks["cluster"].unique())
    names = ["noise" if c < 0 else f"cluster {c}" for c in clusters]
    if (tracks["genre"] != "").any():
        counts = pd.crosstab(tracks["cluster"], tracks["genre"]).reindex(clusters)
        traces = [go.Bar(x=names, y=counts[g], name=g, marker_color=_colour(i)) for i, g in enumerate(counts.columns)]
    else:
        sizes = tracks["cluster"].value_counts().reindex(clusters)
        traces = [go.Bar(x=names, y=sizes, name="tracks")]
    figure = go.Figure(traces)
    figure.update_layout(barmode="stack", height=360, margin=dict(l=40, r=20, t=30, b=40), yaxis_title="tracks", legend_title="genre")
    return figure


def heatmap_figure(methods: pd.DataFrame) -> go.Figure:
    """Methods x metrics; each column coloured on its own scale, bright is better, the real mean ± std as text."""
    columns = [m for m in HEATMAP_COLUMNS if f"{m}_mean" in methods and m != "val_loss" and methods[f"{m}_mean"].notna().any()]
    means = methods[[f"{m}_mean" for m in columns]].to_numpy(float)
    stds = methods[[f"{m}_std" for m in columns]].to_numpy(float)
    lower = [registry.lower_is_better(m) for m in columns]
    text = [[registry.format_value(means[i, j], stds[i, j], m, compact=True) for j, m in enumerate(columns)] for i in range(len(methods))]
    figure = go.Figure(
        go.Heatmap(
            z=column_scores(means, lower),
            x=[f"{m} ↓" if low else m for m, low in zip(columns, lower)],
            y=methods["method"],
            text=text,
            texttemplate="%{text}",
            colorscale="Viridis",
            zmin=0,
            zmax=1,
            colorbar=dict(title="within column", tickvals=[0, 1], ticktext=["worst", "best"]),
            hovertemplate="%{y}<br>%{x}: %{text}<extra></extra>",
        )
    )
    figure.update_layout(height=max(300, 60 + 28 * len(methods)), margin=dict(l=20, r=20, t=30, b=40), yaxis=dict(autorange="reversed"))
    return figure


def beta_figure(table: pd.DataFrame) -> go.Figure | None:
    """Silhouette, ARI and NMI against β, a line per series, error bars the std over seeds; None with fewer than two β values."""
    points = beta_points(table)
    if points.empty or points["beta"].nunique() < 2:
        return None
    metrics = [m for m in CURVE_METRICS if f"{m}_mean" in points]
    figure = make_subplots(rows=1, cols=len(metrics), subplot_titles=metrics, horizontal_spacing=0.06)
    for i, (series, part) in enumerate(points.groupby("series", sort=False)):
        for j, m in enumerate(metrics):
            figure.add_trace(
                go.Scatter(
                    x=part["beta"],
                    y=part[f"{m}_mean"],
                    error_y=dict(array=part[f"{m}_std"].fillna(0)),
                    name=series,
                    legendgroup=series,
                    showlegend=j == 0,
                    mode="lines+markers",
                    line=dict(color=_colour(i)),
                ),
                row=1,
                col=j + 1,
            )
    figure.update_xaxes(type="log", title_text="β")
    figure.update_layout(height=380, margin=dict(l=40, r=20, t=40, b=40))
    return figure


def best_figure(tables: SweepTables) -> go.Figure:
    """The first methods of the table (the selection's order, else the objective's) and the best baselines, a group of bars
    per metric (mean ± std over seeds)."""
    chosen = best_methods(tables.table, tables.methods)
    metrics = [m for m in BAR_METRICS if f"{m}_mean" in chosen and chosen[f"{m}_mean"].notna().any()]
    traces = [
        go.Bar(
            x=metrics,
            y=[row[f"{m}_mean"] for m in metrics],
            error_y=dict(array=[row[f"{m}_std"] if pd.notna(row[f"{m}_std"]) else 0 for m in metrics]),
            name=row["label"],
            marker_color=_colour(i),
        )
        for i, row in chosen.iterrows()
    ]
    figure = go.Figure(traces)
    figure.update_layout(
        barmode="group", height=400, margin=dict(l=40, r=20, t=30, b=40), yaxis_title="score (higher is better)", legend=dict(orientation="h", y=-0.15)
    )
    return figure


K_SHOWN = ("combined", "ch_neighbours", "pooled_calinski_harabasz", "stability", "ari", "nmi")  # the k curve's series drawn at first


def k_figure(curve: pd.DataFrame) -> go.Figure:
    """Each rule's score and the stability against k for the chosen representation (each series scaled to [0, 1] over the k tried,
    so their shapes compare), ARI and NMI dashed (labels: evaluation only), the chosen k marked."""
    figure = go.Figure()
    for i, column in enumerate(c for c in curve.columns if c not in ("n_clusters", "chosen")):
        values = curve[column].astype(float)
        span = values.max() - values.min()
        scaled = (values - values.min()) / span if span > 0 else values * 0 + 0.5
        label = "ARI" if column == "ari" else "NMI" if column == "nmi" else column
        dash = "dash" if column in ("ari", "nmi") else "solid"
        width = 3 if column in ("combined", "stability") else 1.5
        shown = True if column in K_SHOWN else "legendonly"  # the rest a click on the legend away
        figure.add_trace(go.Scatter(x=curve["n_clusters"], y=scaled, name=label, mode="lines+markers", line={"color": _colour(i), "dash": dash, "width": width},
                                    customdata=values, hovertemplate=f"{label}: %{{customdata:.3f}} at k = %{{x}}<extra></extra>", visible=shown))  # fmt: skip
    chosen = int(curve.loc[curve["chosen"], "n_clusters"].iloc[0]) if curve["chosen"].any() else None
    if chosen is not None:
        figure.add_vline(x=chosen, line_dash="dot", annotation_text=f"chosen k = {chosen}")
    ticks = {"tickmode": "array", "tickvals": curve["n_clusters"].tolist()}  # the k tried, not 2.5
    figure.update_layout(xaxis={"title": "k", **ticks}, yaxis_title="score, scaled over the k tried", height=420, margin={"t": 30})
    return figure
