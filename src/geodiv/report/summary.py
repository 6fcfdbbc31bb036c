"""A short generated summary of what a study's numbers say, with their uncertainty.

The text states only what the tables support: the ordering with its seed spread, whether the leader's margin
exceeds that spread, and the strongest diversity correlation with its interval. It never claims more than
the number of datasets allows (a rank correlation over 7 points is weak evidence, and it says so).
"""

from __future__ import annotations

import math

import pandas as pd

from geodiv.machine import machine_sentence


def summarise(facts: dict, meta: dict) -> str:
    paras: list[str] = []
    data_note = meta.get("data_note") or (
        "Data: SimEarth, geodiv's simulated Sentinel-2 world built from real maps and spectra. "
        "Findings are about SimEarth unless real data were configured."
    )
    table: pd.DataFrame | None = facts.get("main_table")
    protocol = facts.get("main_protocol", "linear")
    task_metrics: dict[str, str] = facts.get("task_metrics", {})
    if table is not None and not table.empty:
        order = list(table.index)
        best, worst = order[0], order[-1]
        n_tasks = sum(t in table for t in task_metrics)
        paras.append(
            f"Under {protocol} evaluation over {n_tasks} task(s), '{best}' has the best mean rank "
            f"({table.loc[best, 'mean_rank']:.2f}) and '{worst}' the worst ({table.loc[worst, 'mean_rank']:.2f}). "
            f"Full order: {', '.join(order)}."
        )
        margins = []
        for task in task_metrics:
            if task not in table or len(table) < 2:
                continue
            col = table[task].dropna().sort_values(ascending=False)
            if len(col) < 2:
                continue
            first, second = col.index[0], col.index[1]
            gap = col.iloc[0] - col.iloc[1]
            spread = max(table.loc[first].get(f"{task}_std", math.nan), table.loc[second].get(f"{task}_std", math.nan))
            if round(gap, 3) == 0:
                margins.append(f"{task}: '{first}' and '{second}' tie at {col.iloc[0]:.3f} {task_metrics[task]}")
                continue
            if math.isnan(spread) or table.loc[first].get(f"{task}_n", 1) < 2:
                verdict = "with a single seed, so no seed spread is available"
            elif gap > 2 * spread:
                verdict = f"more than twice the seed std ({spread:.3f})"
            else:
                verdict = f"within twice the seed std ({spread:.3f}): not a reliable difference"
            margins.append(f"{task}: '{first}' leads '{second}' by {gap:.3f} {task_metrics[task]}, {verdict}")
        if margins:
            paras.append("Margins. " + "; ".join(margins) + ".")
    for key in ("band_statistics", "sensitivity", "groups", "collapse", "reconstruction"):  # geodiv.report.checks
        if facts.get(key):
            paras.append(facts[key])
    corr: dict = facts.get("correlations") or {}
    defined = {m: st for m, st in corr.items() if not math.isnan(st.get("spearman_rho", math.nan))}
    undefined = sorted(set(corr) - set(defined))
    if defined:
        ranked = sorted(defined.items(), key=lambda kv: -abs(kv[1]["spearman_rho"]))
        parts = []
        for measure, st in ranked:
            ci = ""
            if not math.isnan(st.get("spearman_ci_low", math.nan)):
                ci = f", 95% bootstrap CI [{st['spearman_ci_low']:.2f}, {st['spearman_ci_high']:.2f}]"
            elif "spearman_boot_defined" in st:  # geodiv.diversity.correlate withholds a conditional interval
                ci = (f", no bootstrap CI: ρ is defined in only {st['spearman_boot_defined']:.0%} of the resamples "
                      "(most datasets share one value)")
            parts.append(f"{measure} ρ = {st['spearman_rho']:.2f} (p = {st['spearman_p']:.2g}{ci})")
        n = next(iter(defined.values())).get("n", 0)
        paras.append(
            f"Diversity vs. mean performance across {n} pretraining datasets (Spearman): " + "; ".join(parts)
            + f". With n = {n}, only |ρ| near 1 is distinguishable from chance; intervals are wide."
        )
    if undefined:
        paras.append("No rank correlation is defined for " + ", ".join(undefined)
                     + " (the measure or the performance is constant across datasets).")
    if facts.get("paper_comparison"):
        paras.append("The per-dataset ordering is compared with the published one in the last section.")
    paras.append(data_note)
    if meta.get("machine"):  # studies since 2026-11-29 record it (geodiv.machine)
        paras.append(machine_sentence(meta["machine"]))
    return "\n\n".join(paras)
