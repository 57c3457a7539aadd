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


def data_facts(params: dict[str, str]) -> str:
    """'100 tracks; inputs mfcc (40 columns), musicnn_msd (212); 10 labels' from the parent run's params (older runs: the MFCCs' columns alone)."""
    if "n_tracks" not in params:
        return ""
    inputs = [item.split(":") for item in params.get("input_columns", "").split(",") if ":" in item]
    if len(inputs) > 1:
        columns = "inputs " + ", ".join(f"{name} ({n}{' columns' if i == 0 else ''})" for i, (name, n) in enumerate(inputs))
    else:
        columns = f"{inputs[0][1] if inputs else params.get('n_features', '?')} features"
    return f"{params['n_tracks']} tracks; {columns}; {params.get('n_labels', '?')} labels"


def ranking(selection: Selection | None, metric: str) -> str:
    """What orders the method tables and the best-methods chart: the selection rule where the sweep has one, else the objective."""
    return f"the '{selection.rule}' selection rule (label-free)" if selection is not None and selection.winner else metric


REPRESENTATION_COLUMNS = {  # Selection.representations()'s columns as the tables head them
    "n_clusters": "k",
    "shared_structure": "shared structure",
    "beyond_null": "own structure",
    "score": "rule score",
    "stability": "stability",
    "ari": "ARI",
    "nmi": "NMI",
}
REPRESENTATIONS_NOTE = (
    "Each input's best method under the rule. Shared structure: how far the method's clusters follow the tracks' nearest "
    "neighbours beyond what K-Means finds in structureless data, averaged over the inputs' spaces (each input once); own "
    "structure: the same in its own input's space. ARI and NMI use the labels: evaluation only."
)


def representation_rows(selection: Selection) -> tuple[list[str], list[tuple[bool, list[str]]]]:
    """The representations table (:meth:`Selection.representations`): its headers, then per input (chosen?, its cells as text)."""
    table = selection.representations()
    if len(table) < 2:  # one input: nothing to choose between
        return [], []
    columns = [c for c in REPRESENTATION_COLUMNS if c in table]
    rows = []
    for _, row in table.iterrows():
        cells = [str(row["input"]), str(row["method"])]
        cells += ["–" if pd.isna(row[c]) else str(int(row[c])) if c == "n_clusters" else f"{row[c]:.{4 if c in ('ari', 'nmi') else 3}f}" for c in columns]
        rows.append((bool(row["chosen"]), cells))
    return ["input", "method", *(REPRESENTATION_COLUMNS[c] for c in columns)], rows


def representation_sentence(selection: Selection) -> str:
    """One sentence: which input was chosen, and by how much its best method led the next input's."""
    table = selection.representations()
    if len(table) < 2 or not table["chosen"].any():
        return ""
    win, runner = table[table["chosen"]].iloc[0], table[~table["chosen"]].iloc[0]
    if selection.rule != "per_input" or "shared_structure" not in table:
        lead = win["score"] - runner["score"]
        return f"{win['input']} chosen: its best method leads {runner['input']}'s by {lead:.3f} in the '{selection.rule}' score."
    a, b = win["shared_structure"], runner["shared_structure"]
    if pd.isna(b) or a >= b:
        return f"{win['input']} chosen: its best method leads {runner['input']}'s by {a - b:.3f} in structure the inputs share ({a:.3f} against {b:.3f})."
    return (
        f"{win['input']} chosen: {runner['input']}'s best method holds more structure the inputs share ({b:.3f} against {a:.3f}) "
        f"but is less stable ({runner['stability']:.3f} against {win['stability']:.3f})."
    )


def format_representations(selection: Selection | None) -> str:
    """The console's representations table and its sentence; empty with one input."""
    headers, rows = representation_rows(selection) if selection is not None else ([], [])
    if not rows:
        return ""
    shown = pd.DataFrame([cells for _, cells in rows], columns=headers)
    shown.insert(0, "", ["★" if chosen else "" for chosen, _ in rows])
    return "Representations (each input's best method under the rule):\n" + shown.to_string(index=False) + "\n" + representation_sentence(selection)


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


def representations_markdown(selection: Selection) -> str:
    """The representations table in Markdown, the chosen input in bold and starred, then its sentence and the columns' note."""
    headers, rows = representation_rows(selection)
    if not rows:
        return ""
    lines = [_markdown_row(headers), "|" + "|".join(["---", "---"] + ["---:"] * (len(headers) - 2)) + "|"]
    for chosen, cells in rows:
        first = f"**{cells[0]}** ★" if chosen else cells[0]
        lines.append(_markdown_row([first, *(_escape(c) for c in cells[1:])]))
    return "\n".join([*lines, "", representation_sentence(selection), REPRESENTATIONS_NOTE])


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
