"""Validity checks of a study's results: representation sensitivity of each task, collapsed heads, and the
held-out reconstruction check of pretraining.

*Representation-sensitive* (per task and protocol): the best pretrained encoder (highest mean over seeds of the
task's main metric, global head on the global test set) beats both the spectral-statistics baseline and zero
pretraining with non-overlapping 95% bootstrap intervals. With several seeds a row's interval is the union of its
seeds' intervals (lowest lower bound to highest upper bound), so the test only gets stricter with more seeds.
A task that is not representation-sensitive is solved as well by band statistics or a random encoder: its
ranking of pretraining sets says little about what pretraining taught.

*Collapsed head*: a classification (or segmentation) head whose most frequent predicted class covers more than
``COLLAPSE_SHARE`` of the global test set (``max_class_share`` in results.csv). Per-continent test subsets are not
flagged: one class may legitimately dominate a continent's subset.

*Class groups*: for a task whose classes come in groups of look-alikes (``Task.class_groups``, e.g. SimEarth's
``scene``), the same comparison on ``group_accuracy`` (telling the groups apart) and ``within_group_accuracy``
(telling a group's members apart, where the group is right): it shows which of the two a pretrained encoder gains
on, and where the baselines keep up.

*Band statistics appended*: a study evaluated with ``features.band_statistics`` gives each encoder's frozen
features the spectral baseline's statistics too (results.csv marks those rows' ``checkpoint_id``); the summary says
so, since the two comparisons above then ask whether an encoder adds to the statistics.

*Reconstruction check*: each pretraining run's masked-patch loss on held-out samples divided by the loss of
predicting every masked patch as the mean of the sample's visible patches (``geodiv.train.heldout``, mean over
seeds). Below 1 the reconstructions follow the input beyond its mean colour.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pandas as pd

from geodiv.evaluate.metrics import GROUP_METRICS, LOWER_IS_BETTER
from geodiv.evaluate.runner import BAND_STATISTICS_SUFFIX, COLLAPSE_SHARE
from geodiv.study.plan import BASELINES, SPECTRAL_BASELINE, ZERO

_LABELS = {SPECTRAL_BASELINE: "spectral baseline", ZERO: "zero pretraining"}
#: A sensitivity table's verdict columns (True / False / None where undecided).
_VERDICTS = ("beats_spectral", "beats_zero", "sensitive")


def _global_rows(results: pd.DataFrame) -> pd.DataFrame:
    sel = results[results["region"] == "global"]
    if "train_region" in sel:
        sel = sel[sel["train_region"].fillna("global") == "global"]
    return sel


def _interval(rows: pd.DataFrame) -> tuple[float, float, float]:
    """(mean value over seeds, union of the seeds' intervals); NaN bounds where no interval was computed."""
    value = float(rows["value"].astype(float).mean())
    low = rows["ci_low"].astype(float) if "ci_low" in rows else pd.Series(dtype=float)
    high = rows["ci_high"].astype(float) if "ci_high" in rows else pd.Series(dtype=float)
    if low.isna().any() or high.isna().any() or low.empty:
        return value, math.nan, math.nan
    return value, float(low.min()), float(high.max())


def representation_sensitivity(
    results: pd.DataFrame, task_metrics: Mapping[str, str], protocol: str
) -> pd.DataFrame:
    """One row per task: the best pretrained encoder, both baselines (value and interval) and the verdict.

    Columns: task, metric, best, best_value, best_low, best_high, then ``spectral_*`` and ``zero_*`` the same,
    ``beats_spectral`` and ``beats_zero`` (the best pretrained encoder's interval clear of that baseline's alone),
    ``sensitive`` (both; True / False / None when it cannot be decided) and ``reason`` (why None).
    """
    sel = _global_rows(results[results["protocol"] == protocol])
    out = []
    for task, metric in task_metrics.items():
        part = sel[(sel["task"] == task) & (sel["metric"] == metric)]
        if part.empty:
            continue
        lower = metric in LOWER_IS_BETTER
        stats = {str(d): _interval(g) for d, g in part.groupby("dataset", sort=False)}
        row: dict = {"task": task, "metric": metric, "beats_spectral": None, "beats_zero": None, "sensitive": None,
                     "reason": ""}
        pretrained = {d: s for d, s in stats.items() if d not in BASELINES and not math.isnan(s[0])}
        if not pretrained:
            row["reason"] = "no pretrained encoder was evaluated"
            out.append(row)
            continue
        best = (min if lower else max)(pretrained, key=lambda d: pretrained[d][0])
        row.update(best=best, best_value=pretrained[best][0], best_low=pretrained[best][1],
                   best_high=pretrained[best][2],
                   n_seeds=int(part[part["dataset"] == best]["seed"].nunique()) if "seed" in part else 1)
        for prefix, name in (("spectral", SPECTRAL_BASELINE), ("zero", ZERO)):
            v = stats.get(name, (math.nan, math.nan, math.nan))
            row.update({f"{prefix}_value": v[0], f"{prefix}_low": v[1], f"{prefix}_high": v[2]})
        missing = [_LABELS[n] for n in (SPECTRAL_BASELINE, ZERO) if n not in stats]
        bounds = [row[k] for k in ("best_low", "best_high", "spectral_low", "spectral_high", "zero_low", "zero_high")]
        if missing:
            row["reason"] = f"no {' or '.join(missing)} rows"
        elif any(math.isnan(b) for b in bounds):
            row["reason"] = "no bootstrap intervals (metrics.n_boot: 0)"
        else:
            for prefix in ("spectral", "zero"):
                row[f"beats_{prefix}"] = bool(row["best_high"] < row[f"{prefix}_low"] if lower
                                              else row["best_low"] > row[f"{prefix}_high"])
            row["sensitive"] = row["beats_spectral"] and row["beats_zero"]
        out.append(row)
    table = pd.DataFrame(out)
    for col in _VERDICTS if not table.empty else ():
        table[col] = pd.Series([r[col] for r in out], dtype=object)  # True / False / None as such
    return table


def _fmt(value: float, low: float, high: float) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:.3f}" if math.isnan(low) else f"{value:.3f} [{low:.3f}, {high:.3f}]"


def verdict(row: Mapping) -> str:
    if row["sensitive"] is None:
        return f"undetermined ({row['reason']})"
    return "yes" if row["sensitive"] else "no"


def _yes_no(value: object) -> str:
    return "-" if value is None or pd.isna(value) else ("yes" if value else "no")


def sensitivity_markdown(table: pd.DataFrame) -> list[str]:
    """Markdown lines: task, best pretrained encoder, both baselines (value [95% interval]), whether it beats each
    baseline alone and the verdict."""
    lines = ["| task | best pretrained | spectral baseline | zero pretraining | beats spectral | beats zero "
             "| representation-sensitive |", "|---|---|---|---|---|---|---|"]
    for _, r in table.iterrows():
        best = "-" if pd.isna(r.get("best")) else f"{r['best']}: {_fmt(r['best_value'], r['best_low'], r['best_high'])}"
        lines.append(f"| {r['task']} ({r['metric']}) | {best} | "
                     f"{_fmt(r.get('spectral_value', math.nan), r.get('spectral_low', math.nan), r.get('spectral_high', math.nan))} | "
                     f"{_fmt(r.get('zero_value', math.nan), r.get('zero_low', math.nan), r.get('zero_high', math.nan))} | "
                     f"{_yes_no(r.get('beats_spectral'))} | {_yes_no(r.get('beats_zero'))} | {verdict(r)} |")
    return lines


def _comparison(r: Mapping) -> str:
    """One row of a sensitivity table in words: the best pretrained encoder and both baselines, with intervals."""
    return (f"best pretrained '{r['best']}' {_fmt(r['best_value'], r['best_low'], r['best_high'])}, spectral baseline "
            f"{_fmt(r['spectral_value'], r['spectral_low'], r['spectral_high'])}, zero pretraining "
            f"{_fmt(r['zero_value'], r['zero_low'], r['zero_high'])}")


def sensitivity_sentence(table: pd.DataFrame, protocol: str) -> str:
    """The summary's statement, per task, of whether it is representation-sensitive, then against each baseline
    alone: beating zero pretraining says pretraining taught the encoder something the task reads, beating the
    spectral baseline says it reads more than band statistics."""
    parts = []
    for _, r in table.iterrows():
        if r["sensitive"] is None:
            parts.append(f"{r['task']}: {verdict(r)}")
            continue
        parts.append(f"{r['task']}: {'yes' if r['sensitive'] else 'no'} ({_comparison(r)})")
    alone = ""
    if table["sensitive"].notna().any():
        alone = (f" Against each baseline alone, the best pretrained encoder's interval lies clear of zero "
                 f"pretraining's on {_tasks_where(table, 'beats_zero')}, and of the spectral baseline's on "
                 f"{_tasks_where(table, 'beats_spectral')}.")
    return (f"Representation-sensitive tasks ({protocol}: the best pretrained encoder beats both the spectral "
            "baseline and zero pretraining with non-overlapping 95% intervals). " + "; ".join(parts) + "." + alone
            + _one_seed_caveat(table))


def _tasks_where(table: pd.DataFrame, column: str) -> str:
    """The tasks whose verdict ``column`` is True, in words ("a, b and c"; "no task")."""
    names = table.loc[table[column] == True, "task"].tolist()  # noqa: E712 (None: undecided)
    return " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names) or "no task"


def _one_seed_caveat(table: pd.DataFrame) -> str:
    """The best of several encoders, picked on the test set of one seed, favours a "yes": say so."""
    won = table.reindex(columns=list(_VERDICTS)).eq(True).any(axis=1)
    if "n_seeds" in table and (won & (table["n_seeds"] == 1)).any():
        return (" One seed: the best pretrained encoder is picked among several on one seed's test set, which "
                "favours a 'yes'; more seeds can overturn it.")
    return ""


def group_decomposition(results: pd.DataFrame, protocol: str) -> pd.DataFrame:
    """:func:`representation_sensitivity` on each group metric of every task that has them (one row per task and
    metric: ``group_accuracy``, then ``within_group_accuracy``)."""
    tasks = [str(t) for t in results.loc[results["metric"].isin(GROUP_METRICS), "task"].drop_duplicates()]
    parts = [representation_sensitivity(results, {task: metric}, protocol) for task in tasks for metric in GROUP_METRICS]
    parts = [p for p in parts if not p.empty]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def group_sentence(table: pd.DataFrame, protocol: str) -> str:
    """The summary's statement of the class-group split: per task, each part's best pretrained encoder and the
    baselines."""
    if table.empty:
        return ""
    parts = []
    for task, rows in table.groupby("task", sort=False):
        said = []
        for _, r in rows.iterrows():
            what = "telling the groups apart" if r["metric"] == "group_accuracy" else "inside the groups"
            if pd.isna(r.get("best")):
                said.append(f"{what}: {verdict(r)}")
                continue
            said.append(f"{what}, best pretrained '{r['best']}' {_fmt(r['best_value'], r['best_low'], r['best_high'])}"
                        f" against {_fmt(r['spectral_value'], r['spectral_low'], r['spectral_high'])} (spectral "
                        f"baseline) and {_fmt(r['zero_value'], r['zero_low'], r['zero_high'])} (zero pretraining)")
        parts.append(f"{task}: " + "; ".join(said))
    return (f"Class groups ({protocol}; accuracy split into telling the groups of look-alike classes apart and "
            "telling a group's members apart). " + ". ".join(parts) + ".")


def collapsed_heads(results: pd.DataFrame, threshold: float = COLLAPSE_SHARE) -> pd.DataFrame:
    """Rows of results (global test set, one per head and seed) whose most frequent predicted class exceeds
    ``threshold`` of the predictions; empty when results.csv has no ``max_class_share`` column."""
    if "max_class_share" not in results:
        return results.iloc[0:0]
    sel = results[(results["region"] == "global") & (results["max_class_share"].astype(float) > threshold)]
    keys = [c for c in ("dataset", "seed", "task", "protocol", "train_region") if c in sel]
    return sel.drop_duplicates(keys)[keys + ["max_class_share"]].reset_index(drop=True)


def collapse_sentence(results: pd.DataFrame, threshold: float = COLLAPSE_SHARE) -> str:
    """The summary's collapse statement: globally trained heads by name, heads trained on one continent (the
    region matrix, often on few samples) counted."""
    if "max_class_share" not in results or results["max_class_share"].isna().all():
        return ""
    flagged = collapsed_heads(results, threshold)
    if flagged.empty:
        return (f"Collapse check: no classification head predicts one class for more than {threshold:.0%} of a "
                "global test set.")
    is_global = flagged["train_region"].fillna("global") == "global" if "train_region" in flagged else True
    glob, regional = flagged[is_global], flagged[~is_global]
    parts = []
    if not glob.empty:
        items = [f"{r['dataset']} / {r['task']} / {r['protocol']} (seed {r['seed']}, {r['max_class_share']:.0%})"
                 for _, r in glob.iterrows()]
        parts.append(f"{len(glob)} globally trained head(s): " + "; ".join(items))
    if not regional.empty:
        parts.append(f"{len(regional)} head(s) trained on a single continent's samples")
    return (f"Collapse check: predicting one class for more than {threshold:.0%} of a global test set, so that their "
            "scores measure the class balance, not the representation: " + "; and ".join(parts)
            + " (listed in the report).")


def collapse_markdown(results: pd.DataFrame, threshold: float = COLLAPSE_SHARE) -> list[str]:
    """Markdown lines listing every flagged head (empty when none is)."""
    flagged = collapsed_heads(results, threshold)
    if flagged.empty:
        return []
    lines = ["| dataset | seed | task | protocol | trained on | largest predicted-class share |", "|---|---|---|---|---|---|"]
    for _, r in flagged.iterrows():
        lines.append(f"| {r['dataset']} | {r['seed']} | {r['task']} | {r['protocol']} | "
                     f"{r.get('train_region', 'global')} | {r['max_class_share']:.0%} |")
    return lines


def sensitivity_tables(results: pd.DataFrame, task_metrics: Mapping[str, str],
                       protocols: Sequence[str]) -> dict[str, pd.DataFrame]:
    """:func:`representation_sensitivity` under each of ``protocols`` that has results, in that order (computed
    once per report: its tables and its summary sentences both read them)."""
    tables = {}
    for protocol in dict.fromkeys(protocols):
        table = representation_sensitivity(results, task_metrics, protocol)
        if not table.empty:
            tables[protocol] = table
    return tables


def other_protocols_sentence(tables: Mapping[str, pd.DataFrame]) -> str:
    """Where the other protocols' sensitivity ``tables`` (from :func:`sensitivity_tables`) find a task
    representation-sensitive (the summary states the main protocol task by task; a "yes" under another protocol
    would otherwise be seen only in the report's tables)."""
    found, caveat = [], ""
    for protocol, table in tables.items():
        for _, r in table[table["sensitive"] == True].iterrows():  # noqa: E712 (None: undetermined)
            found.append(f"{r['task']} under {protocol} ({_comparison(r)})")
        caveat = caveat or _one_seed_caveat(table[table["sensitive"] == True])  # noqa: E712 (what it names)
    if not tables:
        return ""
    if not found:
        return f"Under {' and '.join(tables)} no task is representation-sensitive either."
    return "Representation-sensitive under another protocol: " + "; ".join(found) + "." + caveat


def check_facts(results: pd.DataFrame, task_metrics: Mapping[str, str], protocol: str,
                reconstruction_losses: Mapping[str, list[dict]] | None = None,
                other_protocols: Sequence[str] = (), *, tables: Mapping[str, pd.DataFrame] | None = None,
                groups: pd.DataFrame | None = None) -> dict[str, str]:
    """The summary's sentences: ``sensitivity`` (under ``protocol``, then where ``other_protocols`` find a task
    representation-sensitive) and ``groups`` (under ``protocol``), ``collapse`` and ``reconstruction`` (from
    study.json's ``reconstruction_losses``), where there is something to say. ``tables`` (from
    :func:`sensitivity_tables`) and ``groups`` (from :func:`group_decomposition`), when the caller has them, are
    used instead of computing them again."""
    facts = {}
    recon = reconstruction_sentence(reconstruction_losses or {})
    if recon:
        facts["reconstruction"] = recon
    if tables is None:
        tables = sensitivity_tables(results, task_metrics, [protocol, *other_protocols])
    sens = tables.get(protocol)
    if sens is not None:
        others = other_protocols_sentence({p: t for p, t in tables.items()
                                           if p != protocol and p in other_protocols})
        facts["sensitivity"] = sensitivity_sentence(sens, protocol) + (f" {others}" if others else "")
    if groups is None:
        groups = group_decomposition(results, protocol)
    group_text = group_sentence(groups, protocol)
    if group_text:
        facts["groups"] = group_text
    appended = band_statistics_sentence(results)
    if appended:
        facts["band_statistics"] = appended
    collapse = collapse_sentence(results)
    if collapse:
        facts["collapse"] = collapse
    return facts


def band_statistics_sentence(results: pd.DataFrame) -> str:
    """The summary's statement that encoders were read with the band statistics appended (``features.band_statistics``),
    which changes what beating each baseline means; empty where no row was."""
    if "checkpoint_id" not in results:
        return ""
    marked = results["checkpoint_id"].astype(str).str.endswith(BAND_STATISTICS_SUFFIX)
    if not marked.any():
        return ""
    protocols = sorted(results.loc[marked, "protocol"].unique())
    return (f"Band statistics appended ({' and '.join(protocols)}): every encoder's frozen features, zero pretraining's "
            "included, carry the spectral baseline's per-band statistics (evaluation option "
            "features.band_statistics). Beating the spectral baseline then says an encoder adds to the statistics, "
            "and beating zero pretraining says pretraining adds more than a random encoder's extra features.")


def reconstruction_means(losses: Mapping[str, list[dict]]) -> dict[str, tuple[float, float, float]]:
    """Per pretraining dataset, means over seeds: (held-out MAE loss, mean-of-visible-patches loss, their ratio;
    NaN where the reference loss is 0)."""
    out = {}
    for dataset, runs in losses.items():
        mae = sum(r["mae_loss"] for r in runs) / len(runs)
        ref = sum(r["mean_visible_loss"] for r in runs) / len(runs)
        out[dataset] = (mae, ref, mae / ref if ref > 0 else math.nan)
    return out


def reconstruction_sentence(losses: Mapping[str, list[dict]]) -> str:
    """The summary's statement of the held-out reconstruction check: how many pretraining datasets reconstruct
    masked patches better than predicting each as the mean of the visible patches (ratio < 1)."""
    ratios = {d: m[2] for d, m in reconstruction_means(losses).items() if not math.isnan(m[2])}
    if not ratios:
        return ""
    below = sorted(d for d, r in ratios.items() if r < 1.0)
    span = f"MAE loss / mean-of-visible loss {min(ratios.values()):.2f} to {max(ratios.values()):.2f}"
    head = "Reconstruction check (held-out patches, end of pretraining): "
    if len(below) == len(ratios):
        return (head + f"every pretraining dataset's MAE reconstructs masked patches better than the mean of the "
                f"visible patches ({span}): the reconstructions follow the input.")
    if not below:
        return (head + f"no pretraining dataset's MAE beats predicting each masked patch as the mean of the visible "
                f"patches ({span}): at this budget the reconstructions do not follow the input beyond its mean "
                "colour (docs/study.md, 'Quick pretraining recipe'), so the task verdicts above test encoders that "
                "learned little; the standard-cpu profile is the CPU budget where they learn (docs/study.md, "
                "'Profiles').")
    return (head + f"{len(below)} of {len(ratios)} pretraining datasets beat the mean of the visible patches "
            f"({span}; below 1: {', '.join(below)}).")


def reconstruction_markdown(losses: Mapping[str, list[dict]]) -> list[str]:
    """Markdown lines of the held-out reconstruction check per pretraining dataset (mean over seeds): the MAE's
    masked-patch loss, the mean-of-visible-patches loss and their ratio (study.json ``reconstruction_losses``)."""
    lines = ["| pretraining | held-out MAE loss | mean-of-visible-patches loss | ratio | samples | seeds |",
             "|---|---|---|---|---|---|"]
    for dataset, (mae, ref, ratio) in reconstruction_means(losses).items():
        runs = losses[dataset]
        shown = "-" if math.isnan(ratio) else f"{ratio:.2f}"
        lines.append(f"| {dataset} | {mae:.4f} | {ref:.4f} | {shown} | {runs[0]['n']} | {len(runs)} |")
    return lines
