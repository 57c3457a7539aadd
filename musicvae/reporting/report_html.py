"""``report.html``: one self-contained page to explore a finished sweep, written by ``musicvae report``.

The Markdown report is for reading and citing; this page is for looking and
listening. It holds

* the method table (sortable by any column, the best mean of each clustering
  metric marked) and every selection rule's pick beside the oracle;
* the summary figures as interactive charts: the metrics heatmap, the β
  curves and the best methods;
* an embedding explorer for the selected method and for the oracle: the 2-D
  projection the trial saved, coloured by cluster or by genre (a toggle), the
  track id, artist, title, genre and cluster on hover, and, for audio
  sources, a click plays the clip (an ``<audio>`` element pointing at the
  file, by a path relative to the report where the file is local);
* per explored method, the clusters' genre composition and each cluster's
  most typical tracks (nearest its centroid in the embedding).

Everything is in the file: plotly.js is inlined once (plotly, not bokeh: its
WebGL scatter draws 100k points), so the page opens without a network.
Genres come from the labels and are shown for evaluation only, as in the tables.
"""

from __future__ import annotations

import dataclasses
import html
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.offline
from mlflow.tracking import MlflowClient

from musicvae import metric_registry as registry
from musicvae.data.locations import is_uri
from musicvae.evaluation.leaderboard import method_trial, methods_view
from musicvae.evaluation.selection import Selection, k_curve
from musicvae.reporting import figures as fig
from musicvae.reporting import projection
from musicvae.reporting.charts import (
    Explored,
    best_figure,
    beta_figure,
    composition_figure,
    explorer_figure,
    heatmap_figure,
    k_figure,
)
from musicvae.reporting.tables import REPRESENTATIONS_NOTE, data_facts, ranking, representation_rows, representation_sentence, rule_rows
from musicvae.tracking.runs import DESCRIPTION_TAG
from musicvae.tracking.sweep_runs import SweepTables

TRACKS_ARTIFACT = "tracks.parquet"  # the parent run's track metadata (id, text columns, file path, genre), written by the sweep
TAGS_ARTIFACT = "tags.parquet"  # the parent run's musicnn tag probabilities per track ('MSD: rock', ...), where musicnn was extracted
CLUSTER_TAGS = 3  # tags named per cluster and musicnn model
TYPICAL_TRACKS = 5  # per cluster, nearest its centroid


# ------------------------------------------------------------------------------------------------ data


def _download(client: MlflowClient, run_id: str, name: str, folder: str) -> Path | None:
    names = {item.path for item in client.list_artifacts(run_id)}
    return Path(client.download_artifacts(run_id, name, folder)) if name in names else None


def track_metadata(client: MlflowClient, parent_run_id: str) -> pd.DataFrame | None:
    """The sweep's ``tracks.parquet`` (sweeps before it have none: the explorer then shows ids only)."""
    with tempfile.TemporaryDirectory() as folder:
        path = _download(client, parent_run_id, TRACKS_ARTIFACT, folder)
        return pd.read_parquet(path) if path else None


def track_tags(client: MlflowClient, parent_run_id: str) -> pd.DataFrame | None:
    """The sweep's ``tags.parquet`` (musicnn's tag probabilities per track, what the tags are in ``attrs``), or None."""
    with tempfile.TemporaryDirectory() as folder:
        path = _download(client, parent_run_id, TAGS_ARTIFACT, folder)
        return pd.read_parquet(path) if path else None


def cluster_tags(tracks: pd.DataFrame, tags: pd.DataFrame, n: int = CLUSTER_TAGS) -> dict[int, str]:
    """Per cluster (noise aside), each musicnn model's ``n`` tags most above their mean over the collection: 'MSD: rock, punk, metal'.

    Above the collection's mean rather than the highest: a tag every track has
    ("rock" in a rock collection) names no cluster apart from the others.
    """
    merged = tracks[["track_id", "cluster"]].astype({"track_id": str}).merge(tags.astype({"track_id": str}), on="track_id")
    columns = [c for c in tags.columns if c != "track_id"]
    models = list(dict.fromkeys(c.split(": ", 1)[0] for c in columns))
    overall = merged[columns].mean()
    names = {}
    for cluster, group in merged.groupby("cluster"):
        if cluster < 0:
            continue
        lift = group[columns].mean() - overall
        parts = []
        for model in models:
            top = lift[[c for c in columns if c.startswith(f"{model}: ")]].nlargest(n)
            above = [c.split(": ", 1)[1] for c, value in top.items() if value > 0]
            if above:
                parts.append(f"{model}: " + ", ".join(above))
        names[int(cluster)] = "; ".join(parts)
    return names


def tag_note(tags: pd.DataFrame) -> str:
    """What the tags are, for the reader: another collection's vocabulary, never this one's labels."""
    sources = "; ".join(f"{model}, {source}" for model, source in tags.attrs.get("tag_sources", {}).items())
    return f"Clusters named by musicnn's tags ({sources}): learnt on another collection, not from this one's labels."


def audio_links(paths: pd.Series, report_folder: Path) -> list[str]:
    """What an ``<audio src>`` needs: a path relative to the report for local files, the URL for http(s), nothing for other stores."""
    links = []
    for path in paths.fillna("").astype(str):
        if path.startswith(("http://", "https://")):
            links.append(path)
        elif path and not is_uri(path):
            links.append(Path(os.path.relpath(Path(path).resolve(), report_folder.resolve())).as_posix())
        else:
            links.append("")  # s3:// and the like: a browser cannot fetch them
    return links


def explored(
    client: MlflowClient, tables: SweepTables, method: str, role: str, metadata: pd.DataFrame | None, report_folder: Path, max_points: int = 20000
) -> Explored | None:
    """The method's trial read back from MLflow: its embedding, its saved projection (else a UMAP of a sample), the tracks' metadata.

    None when the trial logged no embedding (its artifacts were not uploaded).
    """
    trial = method_trial(tables.table, method)
    with tempfile.TemporaryDirectory() as folder:
        saved = _download(client, trial["run_id"], "embedding.parquet", folder)
        if saved is None:
            return None
        embedding = pd.read_parquet(saved)
        saved = _download(client, trial["run_id"], "projection.parquet", folder)
        saved_xy = pd.read_parquet(saved) if saved else None
    tracks = embedding.copy()
    if "genre" not in tracks:
        tracks["genre"] = ""
    kind = next((m for m in projection.PROJECTIONS if saved_xy is not None and f"{m}_x" in saved_xy), None)
    if kind is not None:
        xy = saved_xy[["track_id", f"{kind}_x", f"{kind}_y"]].set_axis(["track_id", "x", "y"], axis=1)
    else:  # the trial drew no figure: project a sample here
        rows = fig.sample_rows(len(tracks), max_points, 0)
        coords = projection.project(tracks.filter(regex=r"^z\d+$").to_numpy(np.float32)[rows], "umap")
        xy = pd.DataFrame({"track_id": tracks["track_id"].to_numpy()[rows], "x": coords[:, 0], "y": coords[:, 1]})
        kind = "computed umap"
    tracks = tracks.merge(xy, on="track_id", how="left")
    meta = metadata.drop(columns=["genre"], errors="ignore") if metadata is not None else pd.DataFrame({"track_id": tracks["track_id"]})
    tracks = tracks.merge(meta, on="track_id", how="left")
    for column in ("artist", "title"):
        tracks[column] = tracks[column].fillna("").astype(str) if column in tracks else ""
    tracks["audio"] = audio_links(tracks["path"], report_folder) if "path" in tracks else ""
    return Explored(role, method, str(trial["trial"]), tracks, kind)


def typical_tracks(tracks: pd.DataFrame, n: int = TYPICAL_TRACKS) -> dict[int, pd.DataFrame]:
    """Per cluster (noise aside), the n tracks nearest its centroid in the embedding."""
    z = tracks.filter(regex=r"^z\d+$").to_numpy(np.float64)
    out = {}
    for cluster in sorted(c for c in tracks["cluster"].unique() if c >= 0):
        members = np.flatnonzero(tracks["cluster"].to_numpy() == cluster)
        distance = np.linalg.norm(z[members] - z[members].mean(axis=0), axis=1)
        out[int(cluster)] = tracks.iloc[members[np.argsort(distance, kind="stable")[:n]]]
    return out


# ----------------------------------------------------------------------------------------------- page


def _figure_html(figure: go.Figure, div_id: str) -> str:
    return figure.to_html(full_html=False, include_plotlyjs=False, div_id=div_id, config={"displaylogo": False, "responsive": True})


def methods_table_html(methods: pd.DataFrame, selected: str | None, oracle: str | None) -> str:
    """The method table; every cell carries its number (data-v) so the columns sort by value, not by text."""
    view = methods_view(methods, " ↓")
    headers = [("method", "text"), ("n", "num")] + [(h, "num") for h in view.headers]
    head = "".join(f'<th data-type="{t}">{html.escape(h)}</th>' for h, t in headers)
    rows = []
    for index, row in methods.iterrows():
        marks = (
            (" †" if index in view.degenerate else "") + (" ★ selected" if row["method"] == selected else "") + (" ◆ oracle" if row["method"] == oracle else "")
        )
        cells = [
            f'<td data-v="{html.escape(row["method"])}">{html.escape(row["method"])}<span class="mark">{marks}</span></td>',
            f'<td data-v="{int(row["n"])}">{int(row["n"])}</td>',
        ]
        for c in view.columns:
            mean = row[f"{c}_mean"]
            value = "" if pd.isna(mean) else repr(float(mean))
            css = ' class="best"' if index in view.best.get(c, ()) else ""
            cells.append(f'<td data-v="{value}"{css}>{html.escape(registry.format_value(mean, row[f"{c}_std"], c))}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table class="sortable" id="methods"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def selection_html(tables: SweepTables) -> str:
    selection = tables.sweep.selection
    if selection is None:
        return "<p>This sweep predates shared-space selection; its methods are ranked by the objective.</p>"
    lines = [f"<li>{html.escape(line.strip())}</li>" for line in selection.summary().splitlines() if "other rules' picks" not in line]
    columns, picks = rule_rows(selection)
    head = "<th>rule</th><th>pick</th>" + "".join(f"<th data-type='num'>{c}</th>" for c in columns)
    rows = []
    for rule, pick, numbers in picks:
        name = f"<b>{rule}</b> (chosen)" if rule == selection.rule else rule
        cells = f"<td>{name}</td><td>{html.escape(pick)}</td>" + "".join(f"<td data-v='{value}'>{text}</td>" for value, text in numbers)
        rows.append(f"<tr>{cells}</tr>")
    return f"<ul>{''.join(lines)}</ul><table class='sortable' id='rules'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def representations_html(selection: Selection | None) -> str:
    """The representations table (one row per input, the chosen one marked), its sentence and the columns' note; empty with one input."""
    headers, rows = representation_rows(selection) if selection is not None else ([], [])
    if not rows:
        return ""
    head = "".join(f"<th data-type='{'text' if i < 2 else 'num'}'>{html.escape(h)}</th>" for i, h in enumerate(headers))
    body = []
    for chosen, cells in rows:
        first = f"<b>{html.escape(cells[0])}</b><span class='mark'> ★ chosen</span>" if chosen else html.escape(cells[0])
        body.append("<tr>" + f"<td>{first}</td>" + "".join(f"<td data-v='{html.escape(c)}'>{html.escape(c)}</td>" for c in cells[1:]) + "</tr>")
    table = f"<table class='sortable' id='representations'><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    return f"<h3>Representations</h3><p>{html.escape(representation_sentence(selection))}</p>{table}<p class='note'>{html.escape(REPRESENTATIONS_NOTE)}</p>"


def typical_html(item: Explored) -> str:
    blocks = []
    for cluster, tracks in typical_tracks(item.tracks).items():
        entries = []
        for _, t in tracks.iterrows():
            name = " — ".join(part for part in (t["title"], t["artist"]) if part) or str(t["track_id"])
            genre = f' <span class="genre">{html.escape(str(t["genre"]))}</span>' if t["genre"] else ""
            play = f' <button class="play" data-src="{html.escape(t["audio"])}" data-name="{html.escape(name)}">▶</button>' if t["audio"] else ""
            entries.append(f"<li>{html.escape(name)}{genre}{play}</li>")
        named = f"<p class='tags'>{html.escape(item.cluster_tags[cluster])}</p>" if cluster in item.cluster_tags else ""
        size = (item.tracks["cluster"] == cluster).sum()
        blocks.append(f"<div class='cluster'><h4>cluster {cluster} ({size} tracks)</h4>{named}<ol>{''.join(entries)}</ol></div>")
    return f"<div class='typical'>{''.join(blocks)}</div>"


STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:0 auto;max-width:1280px;padding:0 24px 48px;color:#222}
h1{margin-top:24px} h2{border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:36px}
table{border-collapse:collapse;font-size:13px;margin:8px 0} th,td{padding:4px 8px;border-bottom:1px solid #eee;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left} th{cursor:pointer;background:#f6f6f6;position:sticky;top:0}
th[aria-sort=ascending]::after{content:" ▲"} th[aria-sort=descending]::after{content:" ▼"}
td.best{font-weight:700;background:#e8f4e8} .mark{color:#a05a00;font-size:12px} .note{color:#555;font-size:13px}
.typical{display:flex;flex-wrap:wrap;gap:12px} .cluster{flex:1 1 260px;border:1px solid #eee;border-radius:6px;padding:4px 12px;font-size:13px}
.genre{color:#777;font-size:11px} .tags{color:#2a5d8a;margin:0} button.play{border:none;background:#eef;border-radius:3px;cursor:pointer}
#player{position:sticky;bottom:0;background:#fff;border-top:1px solid #ddd;padding:6px 0;display:flex;gap:12px;align-items:center}
"""

SCRIPT = """
document.querySelectorAll('table.sortable th').forEach(function (th) {
  th.addEventListener('click', function () {
    var table = th.closest('table'), body = table.tBodies[0], num = th.dataset.type === 'num', col = th.cellIndex;
    var dir = th.getAttribute('aria-sort') === 'descending' ? 'ascending' : 'descending';
    table.querySelectorAll('th').forEach(function (h) { h.removeAttribute('aria-sort'); });
    th.setAttribute('aria-sort', dir);
    var rows = Array.from(body.rows), sign = dir === 'ascending' ? 1 : -1;
    rows.sort(function (a, b) {
      var x = a.cells[col].dataset.v, y = b.cells[col].dataset.v;
      if (x === undefined) { x = a.cells[col].textContent; y = b.cells[col].textContent; }
      if (num) { x = x === '' ? NaN : parseFloat(x); y = y === '' ? NaN : parseFloat(y);
        if (isNaN(x) || isNaN(y)) { return isNaN(x) - isNaN(y); } return sign * (x - y); }
      return sign * String(x).localeCompare(String(y));
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
function play(src, name) {
  if (!src) { return; }
  var audio = document.getElementById('audio');
  audio.src = src; document.getElementById('playing').textContent = name;
  audio.play().catch(function () {});
}
document.querySelectorAll('button.play').forEach(function (b) { b.addEventListener('click', function () { play(b.dataset.src, b.dataset.name); }); });
document.querySelectorAll('.explorer').forEach(function (div) {
  div.on('plotly_click', function (event) {
    var d = event.points[0].customdata;
    play(d[5], (d[2] || d[0]) + (d[1] ? ' — ' + d[1] : ''));
  });
});
"""


def methods_html(tables: SweepTables, selected: str | None, oracle: str | None) -> list[str]:
    """The methods table, the metrics heatmap, the β curves and the best methods, ranked as the selection ranks them."""
    methods, selection, sweep = tables.methods, tables.sweep.selection, tables.sweep
    if methods.empty:
        return ["<h2>Methods</h2>", "<p>No trial finished: there is nothing to compare.</p>"]
    parts = [
        "<h2>Methods</h2>",
        f"<p class='note'>Ranked by {html.escape(ranking(selection, sweep.metric))}. Mean ± std over seeds; click a column to sort. "
        "Bold: the best mean of a clustering metric. "
        "★ the selection's pick, ◆ the oracle (best mean ARI: uses labels), † degenerate. ARI, NMI and purity use the labels: evaluation only.</p>",
        methods_table_html(methods, selected, oracle),
        "<h2>Metrics per method</h2>",
        _figure_html(heatmap_figure(methods), "heatmap"),
    ]
    curves = beta_figure(tables.table)
    if curves is not None:
        parts += ["<h2>Quality against β</h2>", _figure_html(curves, "beta")]
    parts += [
        "<h2>Best methods</h2>",
        f"<p class='note'>The first methods by {html.escape(ranking(selection, sweep.metric))}, and the best raw and PCA baselines.</p>",
        _figure_html(best_figure(tables), "best"),
    ]
    return parts


def page(tables: SweepTables, items: list[Explored], notes: list[str]) -> str:
    """The whole report.html as one string."""
    sweep, methods = tables.sweep, tables.methods
    selection = sweep.selection
    selected = selection.winner if selection is not None else (methods["method"].iloc[0] if len(methods) else None)
    oracle = selection.oracle if selection is not None else None
    params = sweep.parent.data.params
    description = sweep.parent.data.tags.get(DESCRIPTION_TAG, "")
    parts = [f"<h1>{html.escape(sweep.name)}</h1>"]
    if description:
        parts.append(f"<p>{html.escape(description)}</p>")
    facts = f"MLflow parent run <code>{sweep.run_id}</code> in experiment <code>{html.escape(sweep.experiment)}</code>"
    if data := data_facts(params):
        facts += f"; {html.escape(data)}"
    if params.get("group_by", "none") != "none":
        facts += f"; metadata used: embeddings pooled by {html.escape(params['group_by'])} (not labels)"
    parts.append(f"<p class='note'>{facts}. Objective {html.escape(sweep.metric)} ({sweep.mode}); {len(tables.table)} trials.</p>")
    parts += ["<h2>Selection</h2>", selection_html(tables), representations_html(selection)]
    curve = k_curve(selection) if selection is not None else pd.DataFrame()
    if not curve.empty:
        parts += [
            "<h3>Choosing k</h3>",
            f"<p class='note'>{html.escape(selection.winner)}: every rule's score and the stability at each k the sweep tried, each scaled to "
            "[0, 1] over those k so their shapes compare (hover for the value); ARI and NMI dashed, for evaluation only.</p>",
            _figure_html(k_figure(curve), "k-curve"),
        ]
    parts += methods_html(tables, selected, oracle)
    for i, item in enumerate(items):
        shown = int(item.tracks["x"].notna().sum())
        parts += [
            f"<h2>Explorer: {html.escape(item.method)} ({item.role})</h2>",
            f"<p class='note'>Trial <code>{html.escape(item.trial)}</code>; {shown} of {len(item.tracks)} tracks, "
            f"{html.escape(item.projection)} of its embedding. "
            "Hover for a track, click to play it" + ("" if (item.tracks["audio"] != "").any() else " (no audio files: a feature-table source)") + ".</p>",
            _figure_html(explorer_figure(item), f"explorer-{i}").replace('class="plotly-graph-div"', 'class="plotly-graph-div explorer"'),
            "<h3>Cluster composition</h3>",
            _figure_html(composition_figure(item), f"composition-{i}"),
            "<h3>Most typical tracks per cluster</h3><p class='note'>Nearest the cluster's centroid in the embedding.</p>",
            typical_html(item),
        ]
    parts += [f"<p class='note'>{html.escape(note)}</p>" for note in notes]
    parts.append("<div id='player'><audio id='audio' controls preload='none'></audio><span id='playing'>click a point or ▶ to listen</span></div>")
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(sweep.name)}: musicvae report</title>"
        f"<style>{STYLE}</style><script>{plotly.offline.get_plotlyjs()}</script></head><body>{''.join(parts)}<script>{SCRIPT}</script></body></html>"
    )


def write_html(tables: SweepTables, client: MlflowClient, folder: Path, tags: pd.DataFrame | None = None) -> tuple[Path, list[Explored]]:
    """Write ``folder/report.html`` for one sweep; returns its path and the methods it explores (selected first).

    ``tags`` (:func:`track_tags`) name each explored method's clusters.
    """
    sweep = tables.sweep
    selection = sweep.selection
    roles: dict[str, list[str]] = {}
    if selection is not None and selection.winner is not None:
        roles.setdefault(selection.winner, []).append("selected")
        if selection.oracle is not None:
            roles.setdefault(selection.oracle, []).append("oracle")
    elif len(tables.methods):
        roles[tables.methods["method"].iloc[0]] = ["best by the objective"]
    metadata = track_metadata(client, sweep.run_id)
    notes = [] if metadata is not None else ["This sweep logged no tracks.parquet (it predates it): the explorer shows track ids only."]
    if tags is not None:
        notes.append(tag_note(tags))
    items = []
    for method, role in roles.items():
        item = explored(client, tables, method, " and ".join(role), metadata, folder)
        if item is None:
            notes.append(f"No explorer for {method}: its trial logged no embedding.parquet.")
        else:
            items.append(item if tags is None else dataclasses.replace(item, cluster_tags=cluster_tags(item.tracks, tags)))
    path = folder / "report.html"
    path.write_text(page(tables, items, notes), encoding="utf-8")
    return path, items
