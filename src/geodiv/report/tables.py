"""Result tables in the paper's layout: one row per pretraining dataset, one column per task, mean +- std over
seeds, the best in bold, and the mean rank.

The rank convention is the paper's: for each task, a dense rank starting at 0 (best = 0, ties share a rank, the
next distinct value gets the next integer), computed on the values as displayed (rounded to ``decimals``), then
averaged over tasks. On the published table this reproduces the published rank column exactly (tested).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from functools import lru_cache
from importlib import resources

import numpy as np
import pandas as pd

from geodiv.evaluate.metrics import LOWER_IS_BETTER


def dense_rank(values: Sequence[float | None], *, higher_is_better: bool = True, decimals: int | None = 2) -> list[float]:
    """Dense rank from 0 (best); ties (after rounding to ``decimals``) share a rank; missing values get NaN."""
    vals = [None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v) for v in values]
    shown = [None if v is None else (round(v, decimals) if decimals is not None else v) for v in vals]
    distinct = sorted({v for v in shown if v is not None}, reverse=higher_is_better)
    position = {v: i for i, v in enumerate(distinct)}
    return [math.nan if v is None else float(position[v]) for v in shown]


def main_table(
    results: pd.DataFrame,
    task_metrics: Mapping[str, str],
    *,
    protocol: str,
    region: str = "global",
    decimals: int = 2,
) -> pd.DataFrame:
    """Aggregate per-seed results into the paper's table.

    ``results`` has columns dataset, seed, task, protocol, metric, value, region and optionally train_region
    (one row per seed and metric); only heads trained on the global training set enter the table.
    Returns a frame indexed by dataset with, per task, ``<task>`` (mean), ``<task>_std`` and ``<task>_n`` (seeds),
    plus ``mean_rank``; rows sorted by mean rank then name.
    """
    sel = results[(results["protocol"] == protocol) & (results["region"] == region)]
    if "train_region" in sel:  # heads trained on one continent (the region matrix) are not the main result
        sel = sel[sel["train_region"].fillna("global") == "global"]
    rows: dict[str, dict[str, float]] = {}
    for task, metric in task_metrics.items():
        part = sel[(sel["task"] == task) & (sel["metric"] == metric)]
        for dataset, grp in part.groupby("dataset", sort=False):
            vals = grp["value"].astype(float).dropna().to_numpy()
            entry = rows.setdefault(str(dataset), {})
            entry[task] = float(vals.mean()) if vals.size else math.nan
            entry[f"{task}_std"] = float(vals.std(ddof=1)) if vals.size > 1 else (0.0 if vals.size else math.nan)
            entry[f"{task}_n"] = float(vals.size)
    table = pd.DataFrame.from_dict(rows, orient="index")
    if table.empty:
        return table
    ranks = []
    for task, metric in task_metrics.items():
        if task not in table:
            continue
        ranks.append(
            dense_rank(list(table[task]), higher_is_better=metric not in LOWER_IS_BETTER, decimals=decimals)
        )
    table["mean_rank"] = np.nanmean(np.array(ranks, dtype=float), axis=0) if ranks else math.nan
    table.index.name = "dataset"
    return table.sort_values(["mean_rank"], kind="stable")


def best_rows(table: pd.DataFrame, task_metrics: Mapping[str, str], decimals: int = 2) -> dict[str, set[str]]:
    """Per task, the datasets whose displayed value is the best (ties all bold)."""
    best: dict[str, set[str]] = {}
    for task, metric in task_metrics.items():
        if task not in table:
            continue
        shown = table[task].round(decimals)
        target = shown.min() if metric in LOWER_IS_BETTER else shown.max()
        best[task] = {str(i) for i in shown.index[shown == target]}
    return best


def format_cell(mean: float, std: float, n: float, decimals: int = 2) -> str:
    if mean is None or math.isnan(mean):
        return "-"
    if n is None or math.isnan(n) or n < 2:
        return f"{mean:.{decimals}f}"
    return f"{mean:.{decimals}f} ± {std:.{decimals}f}"


def _display_rows(table: pd.DataFrame, task_metrics: Mapping[str, str], decimals: int):
    """Per dataset: its name, each task's displayed cell with whether it is the column's best, its mean rank."""
    tasks = [t for t in task_metrics if t in table]
    best = best_rows(table, task_metrics, decimals)
    for dataset, row in table.iterrows():
        cells = [(format_cell(row[t], row.get(f"{t}_std", math.nan), row.get(f"{t}_n", math.nan), decimals),
                  str(dataset) in best.get(t, set())) for t in tasks]
        yield str(dataset), cells, row["mean_rank"]


def table_markdown(table: pd.DataFrame, task_metrics: Mapping[str, str], decimals: int = 2) -> str:
    """GitHub-flavoured markdown of ``main_table``; the best value of each column in bold."""
    tasks = [t for t in task_metrics if t in table]
    header = "| Pretraining | " + " | ".join(f"{t} ({task_metrics[t]})" for t in tasks) + " | mean rank |"
    lines = [header, "|" + "---|" * (len(tasks) + 2)]
    for dataset, cells, rank in _display_rows(table, task_metrics, decimals):
        shown = [f"**{cell}**" if bold else cell for cell, bold in cells]
        lines.append(f"| {dataset} | " + " | ".join(shown) + f" | {rank:.2f} |")
    return "\n".join(lines)


def table_html(table: pd.DataFrame, task_metrics: Mapping[str, str], decimals: int = 2) -> str:
    from html import escape

    tasks = [t for t in task_metrics if t in table]
    head = "".join(f"<th>{escape(t)}<br><small>{escape(task_metrics[t])}</small></th>" for t in tasks)
    out = [f"<table class='results'><thead><tr><th>Pretraining</th>{head}<th>mean rank</th></tr></thead><tbody>"]
    for dataset, cells, rank in _display_rows(table, task_metrics, decimals):
        shown = [f"<td><b>{escape(cell)}</b></td>" if bold else f"<td>{escape(cell)}</td>" for cell, bold in cells]
        out.append(f"<tr><th>{escape(dataset)}</th>{''.join(shown)}<td>{rank:.2f}</td></tr>")
    out.append("</tbody></table>")
    return "".join(out)


@lru_cache(maxsize=1)
def paper_results() -> dict:
    """The published linear-probing results of "Pretrain Where?" (shipped with citation)."""
    text = resources.files("geodiv.report").joinpath("_data/paper_results.json").read_text(encoding="utf-8")
    return json.loads(text)


def paper_table() -> tuple[pd.DataFrame, dict[str, str]]:
    """The published table as a ``main_table``-shaped frame (means, stds) and its task -> metric mapping."""
    pub = paper_results()
    rows = {}
    for r in pub["rows"]:
        entry = {}
        for task in pub["tasks"]:
            mean, std = r[task]
            entry[task] = mean
            entry[f"{task}_std"] = math.nan if std is None else std
            entry[f"{task}_n"] = 3.0 if std is not None else 1.0
        entry["published_mean_rank"] = r["mean_rank"]
        entry["region"] = r["region"]
        rows[r["dataset"]] = entry
    return pd.DataFrame.from_dict(rows, orient="index"), dict(pub["tasks"])
