"""The sweep's tables as text: the console's last screen, and Markdown for the report (the tables themselves:
:mod:`musicvae.evaluation.leaderboard`; a metric's value prints through the registry's ``format_value``)."""

from __future__ import annotations

import math

import pandas as pd

from musicvae import metric_registry as registry
from musicvae.evaluation.leaderboard import METRICS, degenerate_rows, method_table, methods_view
from musicvae.evaluation.metrics import DEGENERATE_SHARE
from musicvae.evaluation.selection import Selection, k_curve
from musicvae.metric_registry import LABEL_METRICS

RULE_DIGITS = {"stability": 3, "ARI": 4, "regret": 4}  # the selection table's numbers, as the report prints them


def format_methods(methods: pd.DataFrame) -> str:
    """The method table as text: 'mean ± std' per metric."""
    if methods.empty:
        return "(no finished trial)"
    shown = methods[["method", "n"]].copy()
    for m in (*METRICS, "seconds"):
        if f"{m}_mean" in methods:
            shown[m] = [registry.format_value(a, b, m) for a, b in zip(methods[f"{m}_mean"], methods[f"{m}_std"])]
    return shown.to_string(index=False)


CONSOLE_WIDTH = 120


def format_console(methods: pd.DataFrame, selection: Selection | None = None, width: int = CONSOLE_WIDTH) -> str:
    """The method table the sweep's last screen shows, at most ``width`` columns: the method (★ selected, ◆ oracle), its seeds,
    its stability, ARI and NMI where labels exist, and its seconds; the rest is in leaderboard.csv and the report."""
    if methods.empty:
        return "(no finished trial)"
    scores = selection.scores.set_index("method") if selection is not None and not selection.scores.empty else pd.DataFrame()
    shown = pd.DataFrame({"": [_marks(m, selection) for m in methods["method"]], "method": methods["method"], "n": methods["n"]})
    if "stability" in scores:
        shown["stability"] = [f"{scores['stability'].get(m, math.nan):.3f}" for m in methods["method"]]
    for m in ("ari", "nmi", "seconds"):
        if f"{m}_mean" in methods and methods[f"{m}_mean"].notna().any():
            shown[registry.label(m) if m != "seconds" else "s"] = [registry.format_value(a, b, m) for a, b in zip(methods[f"{m}_mean"], methods[f"{m}_std"])]
    room = width - len(shown.drop(columns="method").to_string(index=False).splitlines()[0]) - 2
    shown["method"] = [name if len(name) <= room else name[: max(room - 1, 10)] + "…" for name in shown["method"]]
    return shown.to_string(index=False)


def _marks(method: str, selection: Selection | None) -> str:
    if selection is None:
        return ""
    return ("★" if method == selection.winner else "") + ("◆" if method == selection.oracle else "")


def format_leaderboard(table: pd.DataFrame) -> str:
    shown = table.drop(columns=["method"] + [c for c in ("error",) if not table[c].astype(bool).any()])
    shown = shown.drop(columns=[c for c in (*LABEL_METRICS, "val_loss", "noise_fraction") if c in shown and shown[c].isna().all()])
    return shown.to_string(index=False, float_format=lambda v: f"{v:.4f}", na_rep="-")


def _ari_nmi(method: pd.Series) -> str:
    return ", ".join(f"{registry.label(m)} {registry.format_value(method[f'{m}_mean'], None, m)}" for m in ("ari", "nmi"))


def selection_summary(table: pd.DataFrame, metric: str, mode: str = "max") -> str:
    """The label-free winner (best mean objective over seeds) next to the oracle (best mean ARI).

    Methods whose clusterings are degenerate (on average DEGENERATE_SHARE of
    the tracks in one cluster) cannot win: internal metrics reward them.
    """
    methods = method_table(table, metric, mode)
    if methods.empty:
        return "No trial finished."
    degenerate = pd.Series(methods.index.isin(degenerate_rows(methods)), index=methods.index)
    candidates = methods[~degenerate & methods[f"{metric}_mean"].notna()]
    if candidates.empty:
        return f"No method has a defined, non-degenerate {metric}: nothing to select."
    winner = candidates.iloc[0]
    lines = [f"Selected by {metric} (mean over {int(winner['n'])} seed(s)): {winner['method']}"]
    if "ari_mean" in methods and methods["ari_mean"].notna().any():
        oracle = methods.loc[methods["ari_mean"].idxmax()]
        lines[0] += f": {_ari_nmi(winner)}"
        lines.append(f"Oracle (best mean ARI, uses labels): {oracle['method']}: {_ari_nmi(oracle)}")
    skipped = methods.loc[degenerate & (methods.index < winner.name), "method"].tolist()
    if skipped:
        lines.append(f"Not selectable, {DEGENERATE_SHARE:.0%}+ of the tracks in one cluster: {', '.join(skipped)}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------- Markdown


def _escape(text: str) -> str:
    return str(text).replace("|", "\\|")


def _markdown_row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def methods_markdown_table(methods: pd.DataFrame) -> str:
    """Method × metric, 'mean ± std' over seeds, the best mean of each quality metric in bold."""
    view = methods_view(methods, " (lower is better)")
    lines = [_markdown_row(["method", "n", *view.headers]), "|" + "|".join(["---", "---:"] + ["---:"] * len(view.columns)) + "|"]
    for index, row in methods.iterrows():
        cells = [_escape(row["method"]) + (" †" if index in view.degenerate else ""), str(int(row["n"]))]
        for c in view.columns:
            text = registry.format_value(row[f"{c}_mean"], row[f"{c}_std"], c)
            cells.append(f"**{text}**" if index in view.best.get(c, ()) else text)
        lines.append(_markdown_row(cells))
    return "\n".join(lines)


def rule_rows(selection: Selection) -> tuple[list[str], list[tuple[str, str, list[tuple[float, str]]]]]:
    """The selection table: its number columns (stability; ARI and regret where the sweep has labels), then per rule its pick and (value, text) per column."""
    labelled = selection.oracle is not None
    columns = ["stability"] + (["ARI", "regret"] if labelled else [])
    rows = []
    for rule, pick in selection.picks.items():
        row = selection.row(pick)
        values = [row["stability"]] + ([row["ari"], selection.regret(pick)] if labelled else [])
        rows.append((rule, pick, [(value, f"{value:.{RULE_DIGITS[c]}f}") for c, value in zip(columns, values)]))
    return columns, rows


def selection_markdown_table(selection: Selection) -> str:
    """Every rule's pick with its stability and, where the sweep has labels, its mean ARI and regret; the chosen rule in bold."""
    columns, rows = rule_rows(selection)
    lines = [_markdown_row(["rule", "pick", *columns]), "|" + "|".join(["---", "---"] + ["---:"] * len(columns)) + "|"]
    for rule, pick, cells in rows:
        lines.append(_markdown_row([f"**{rule}**" if rule == selection.rule else rule, _escape(pick), *(text for _, text in cells)]))
    return "\n".join(lines)


def k_markdown_table(selection: Selection) -> str:
    """The chosen representation at every k tried (:func:`musicvae.evaluation.selection.k_curve`): the rules' scores, the stability, ARI/NMI;
    the chosen k in bold. Empty where k was not searched."""
    curve = k_curve(selection)
    if curve.empty:
        return ""
    columns = [c for c in curve.columns if c not in ("n_clusters", "chosen")]
    lines = [_markdown_row(["k", *columns]), "|" + "|".join(["---:"] * (len(columns) + 1)) + "|"]
    for _, row in curve.iterrows():
        cells = [f"{row[c]:.3f}" if pd.notna(row[c]) else "–" for c in columns]
        k = f"**{row['n_clusters']}** ★" if row["chosen"] else str(row["n_clusters"])
        lines.append(_markdown_row([k, *cells]))
    return "\n".join(lines)


def table_legend(methods: pd.DataFrame) -> str:
    """What the marks in the table mean; a mark the table does not use is not explained."""
    notes = ["Mean ± std over seeds (n: finished seeds).", "**Bold**: the best mean of each clustering metric."]
    if degenerate_rows(methods):
        notes.append(f"†: degenerate, {DEGENERATE_SHARE:.0%}+ of the tracks in one cluster on average (never bold, never selected).")
    if methods.filter(like="_mean").isna().any().any():
        notes.append("–: undefined for at least one seed (e.g. a single cluster).")
    if "ari_mean" in methods and methods["ari_mean"].notna().any():
        notes.append("ARI, NMI and purity use the labels: evaluation only.")
    return " ".join(notes)
