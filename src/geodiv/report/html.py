"""Assemble a study folder's results into ``report/index.html`` (self-contained) and ``report/report.md``.

Inputs, all written by ``geodiv.study`` (the layout is documented in docs/study.md):
``study.json`` (tasks and their main metric, protocols, datasets, seeds, artefact paths, timings),
``results.csv`` (one row per dataset x seed x task x protocol x region x metric) and ``diversity.csv``.
The report can be regenerated at any time with ``geodiv report DIR``.
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from geodiv.atomic import folder_lock, write_bytes, write_text
from geodiv.diversity import HEADLINE_MEASURES
from geodiv.diversity.correlate import correlate_measures
from geodiv.errors import InputError
from geodiv.report import checks, figures, tables
from geodiv.report.summary import summarise
from geodiv.study.plan import BASELINES, ZERO


@dataclass
class Section:
    title: str
    html: str = ""
    markdown: str = ""
    images: list[tuple[str, bytes, str]] = field(default_factory=list)  # (file name, png, caption)


def load_study(study_dir: Path) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    study_dir = Path(study_dir)
    missing = [n for n in ("study.json", "results.csv") if not (study_dir / n).is_file()]
    if missing:
        raise InputError(
            f"{study_dir} is not a finished study folder: missing {', '.join(missing)}. "
            "Run `geodiv study ... --out DIR` first (a rerun resumes an interrupted study)."
        )
    meta = json.loads((study_dir / "study.json").read_text(encoding="utf-8"))
    results = pd.read_csv(study_dir / "results.csv", keep_default_na=True)
    for col in ("region", "train_region"):
        if col in results:
            results[col] = results[col].fillna("global")
    div_path = study_dir / "diversity.csv"
    diversity = pd.read_csv(div_path).set_index("dataset") if div_path.is_file() else pd.DataFrame()
    return meta, results, diversity


def performance_by_dataset(results: pd.DataFrame, task_metrics: dict[str, str], protocol: str) -> pd.DataFrame:
    """Per dataset: each task's main metric (mean over seeds, global test set) and their mean over tasks.

    The mean over tasks is the study's single performance number (as in the paper's correlation analysis):
    metrics are on comparable 0..1-ish scales (accuracy, F1, R^2); RMSE-like metrics are never main metrics.
    """
    return _task_means(tables.main_table(results, task_metrics, protocol=protocol), task_metrics)


def _task_means(table: pd.DataFrame, task_metrics: dict[str, str]) -> pd.DataFrame:
    """``performance_by_dataset`` from an already computed ``main_table``."""
    if table.empty:
        return table
    cols = [t for t in task_metrics if t in table]
    out = table[cols].copy()
    out["mean_over_tasks"] = out.mean(axis=1, skipna=False)
    return out


def correlation_stats(diversity: pd.DataFrame, perf: pd.Series, measures, seed: int = 0) -> dict[str, dict]:
    """``geodiv.diversity.correlate_measures`` of each measure with ``perf`` (datasets in its order), one flat row
    of statistics per measure for the report's tables."""
    rows = {d: diversity.loc[d].to_dict() for d in diversity.index}
    stats = {}
    for m, res in correlate_measures(rows, perf.to_dict(), measures, seed=seed).items():
        flat: dict[str, float] = {"n": int(res["n"])}
        for method, short in (("spearman", "rho"), ("pearson", "r"), ("kendall", "tau")):
            # Undefined statistics (a constant measure, say) come back as None: shown as NaN, never as 0.
            for key, name in (("r", f"{method}_{short}"), ("p", f"{method}_p"), ("ci_low", f"{method}_ci_low"),
                              ("ci_high", f"{method}_ci_high")):
                value = res[method].get(key)
                flat[name] = float("nan") if value is None else float(value)
        # the share of bootstrap resamples in which rho is defined (below the confidence, no interval is given)
        flat["spearman_boot_defined"] = res["spearman"]["n_boot_valid"] / res["n_boot"]
        stats[m] = flat
    return stats


def _per_task_correlations(diversity: pd.DataFrame, perf: pd.DataFrame, tasks: list[str],
                           measures: list[str]) -> pd.DataFrame:
    """Measure x task table of Spearman rho (p) between diversity and each task's main metric."""
    cells: dict[str, dict[str, str]] = {}
    for task in tasks:
        stats = correlation_stats(diversity, perf[task], measures)
        for m, st in stats.items():
            rho, p = st["spearman_rho"], st["spearman_p"]
            cells.setdefault(m, {})[task] = "-" if rho != rho else f"{rho:.2f} ({p:.2g})"
    return pd.DataFrame.from_dict(cells, orient="index")


def _img_tag(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f"<figure><img alt='{html.escape(alt)}' src='data:image/png;base64,{data}'><figcaption>{html.escape(alt)}</figcaption></figure>"


def build_sections(study_dir: Path) -> tuple[dict, list[Section], dict]:
    meta, results, diversity = load_study(study_dir)
    task_metrics: dict[str, str] = {t: spec["metric"] for t, spec in meta["tasks"].items()}
    protocols: list[str] = [p for p in meta.get("protocols", []) if p in set(results["protocol"])]
    main_protocol = meta.get("main_protocol", protocols[0] if protocols else "linear")
    sections: list[Section] = []
    facts: dict = {"main_protocol": main_protocol, "task_metrics": task_metrics}

    _add_results_tables(sections, facts, results, meta, task_metrics, protocols, main_protocol)
    _add_checks(sections, facts, results, task_metrics, protocols, main_protocol, meta)
    _add_region_heatmaps(sections, facts, results, task_metrics, main_protocol)
    perf = _task_means(facts.get("main_table", pd.DataFrame()), task_metrics)
    _add_diversity(sections, facts, diversity, perf, task_metrics, main_protocol)
    _add_samples_and_reconstructions(sections, study_dir, meta)
    # 5. Comparison with the published results
    sec = _paper_comparison(perf, meta)
    if sec is not None:
        sections.append(sec)
        facts["paper_comparison"] = sec.markdown
    return meta, sections, facts


def _add_results_tables(sections: list[Section], facts: dict, results: pd.DataFrame, meta: dict,
                        task_metrics: dict[str, str], protocols: list[str], main_protocol: str) -> None:
    """1. The main table of each protocol (the main protocol's also into ``facts``)."""
    for protocol in [main_protocol] + [p for p in protocols if p != main_protocol]:
        table = tables.main_table(results, task_metrics, protocol=protocol)
        if table.empty:
            continue
        sec = Section(f"Results: {protocol}")
        sec.markdown = tables.table_markdown(table, task_metrics)
        sec.html = tables.table_html(table, task_metrics)
        note = (f"Mean ± std over {len(meta.get('seeds', [0]))} seed(s) on each task's global test set; best in bold; "
                "mean rank = mean over tasks of a dense rank from 0 on the displayed values (the paper's convention).")
        sec.markdown += f"\n\n{note}"
        sec.html += f"<p class='note'>{html.escape(note)}</p>"
        sections.append(sec)
        if protocol == main_protocol:
            facts["main_table"] = table


def _add_checks(sections: list[Section], facts: dict, results: pd.DataFrame, task_metrics: dict[str, str],
                protocols: list[str], main_protocol: str, meta: dict) -> None:
    """1b. Representation sensitivity (each protocol) and collapsed heads; the checks' sentences (the
    reconstruction check's too) into ``facts``."""
    sec = Section("Representation sensitivity and collapse checks")
    sens_tables = checks.sensitivity_tables(results, task_metrics, [main_protocol, *protocols])
    for protocol, sens in sens_tables.items():
        lines = checks.sensitivity_markdown(sens)
        sec.markdown += f"\n\n**{protocol}**\n\n" + "\n".join(lines)
        sec.html += f"<h3>{html.escape(protocol)}</h3>" + _md_table_to_html(lines)
    groups = checks.group_decomposition(results, main_protocol)
    if not groups.empty:
        lines = checks.sensitivity_markdown(groups)
        sec.markdown += f"\n\n**{main_protocol}, inside and between class groups**\n\n" + "\n".join(lines)
        sec.html += f"<h3>{html.escape(main_protocol)}, inside and between class groups</h3>" + _md_table_to_html(lines)
    facts.update(checks.check_facts(results, task_metrics, main_protocol, meta.get("reconstruction_losses"),
                                    protocols, tables=sens_tables, groups=groups))
    collapse = facts.get("collapse")
    if collapse:
        sec.markdown += f"\n\n{collapse}"
        sec.html += f"<p>{html.escape(collapse)}</p>"
        flagged = checks.collapse_markdown(results)
        if flagged:
            sec.markdown += "\n\n" + "\n".join(flagged)
            sec.html += _md_table_to_html(flagged)
    sec.markdown = sec.markdown.lstrip()
    if sec.markdown:
        note = ("Global heads on the global test sets; value = mean over seeds, interval = union of the seeds' 95% "
                "bootstrap intervals. Representation-sensitive: the best pretrained encoder's interval lies above "
                "both baselines' intervals (docs/evaluation.md).")
        sec.markdown += f"\n\n{note}"
        sec.html += f"<p class='note'>{html.escape(note)}</p>"
        sections.append(sec)


def _add_region_heatmaps(sections: list[Section], facts: dict, results: pd.DataFrame, task_metrics: dict[str, str],
                         main_protocol: str) -> None:
    """2. Region heatmaps: pretraining dataset x evaluation continent, globally trained head."""
    sec = Section(f"Pretraining region × evaluation region ({main_protocol})")
    sel = results[(results["protocol"] == main_protocol) & (results["region"] != "global")]
    if "train_region" in sel:
        sel = sel[sel["train_region"] == "global"]
    for task, metric in task_metrics.items():
        part = sel[(sel["task"] == task) & (sel["metric"] == metric)]
        if part.empty:
            continue
        matrix = part.groupby(["dataset", "region"])["value"].mean().unstack("region")
        order = [d for d in (facts.get("main_table", pd.DataFrame()).index) if d in matrix.index]
        matrix = matrix.loc[order + [d for d in matrix.index if d not in order]]
        png = figures.figure_png(figures.region_heatmap(matrix, title=f"{task} ({metric})", metric=metric))
        sec.images.append((f"heatmap_{task}.png", png, f"{task}: {metric} on each continent's test subset"))
    if sec.images:
        sections.append(sec)


def _add_diversity(sections: list[Section], facts: dict, diversity: pd.DataFrame, perf: pd.DataFrame,
                   task_metrics: dict[str, str], main_protocol: str) -> None:
    """3. Diversity and its correlation with performance (the tables go into ``facts['correlation_tables']``)."""
    if not diversity.empty and not perf.empty:
        measures = [m for m in HEADLINE_MEASURES if m in diversity]
        sec = Section("Diversity and performance")
        shown = diversity[measures + [c for c in ("n_samples",) if c in diversity]]
        sec.markdown = shown.to_markdown(floatfmt=".3f")
        sec.html = shown.to_html(float_format=lambda v: f"{v:.3f}", classes="diversity")
        pretrained = perf.drop(index=list(BASELINES), errors="ignore")
        stats = correlation_stats(diversity, pretrained["mean_over_tasks"], measures)
        facts["correlations"] = stats
        if stats:
            corr = pd.DataFrame(stats).T
            keep = [c for c in ("spearman_rho", "spearman_p", "spearman_ci_low", "spearman_ci_high",
                                "spearman_boot_defined", "pearson_r", "pearson_p", "kendall_tau", "kendall_p", "n") if c in corr]
            corr = corr[keep]
            facts["correlation_tables"] = {"correlations.csv": corr}
            sec.markdown += "\n\nCorrelation with mean performance over tasks:\n\n" + corr.to_markdown(floatfmt=".3f")
            sec.html += "<h3>Correlation with mean performance over tasks</h3>" + corr.to_html(
                float_format=lambda v: f"{v:.3f}")
            per_task = _per_task_correlations(diversity, pretrained, [t for t in task_metrics if t in pretrained],
                                              list(stats))
            if not per_task.empty:
                facts["correlation_tables"]["correlations_per_task.csv"] = per_task
                sec.markdown += ("\n\nSpearman ρ (p) per task:\n\n"
                                 + per_task.to_markdown())
                sec.html += "<h3>Spearman ρ (p) per task</h3>" + per_task.to_html()
            png = figures.figure_png(figures.correlation_figure(
                diversity, pretrained["mean_over_tasks"], list(stats), stats,
                ylabel=f"mean {main_protocol} performance"))
            sec.images.append(("correlation.png", png, "Diversity vs. mean downstream performance (one point per "
                                                        "pretraining dataset; line: least squares with bootstrap 95% band)"))
        sections.append(sec)


def _add_samples_and_reconstructions(sections: list[Section], study_dir: Path, meta: dict) -> None:
    """4. Sample maps and reconstructions."""
    points = meta.get("sample_points") or {}
    if points:
        sec = Section("Where each dataset's samples are")
        pts = {n: (np.asarray(v["lat"]), np.asarray(v["lon"]), v["continent"]) for n, v in points.items()}
        sec.images.append(("sample_maps.png", figures.figure_png(figures.sample_maps(pts)),
                           "Sample locations of each pretraining dataset, coloured by continent"))
        sections.append(sec)
    recon = {n: Path(study_dir) / p for n, p in (meta.get("reconstructions") or {}).items()}
    recon = {n: p for n, p in recon.items() if p.is_file()}
    losses = meta.get("reconstruction_losses") or {}
    if recon or losses:
        sec = Section("Example reconstructions")
        if losses:
            lines = checks.reconstruction_markdown(losses)
            note = ("Held-out reconstruction check at the end of pretraining: the masked-patch loss on samples no "
                    "model trained on, next to the loss of predicting every masked patch as the mean of the sample's "
                    "visible patches of that band (same loss, same target space). A reconstruction that follows the "
                    "input lies well below the mean predictor (ratio < 1); mean over seeds.")
            sec.markdown = "\n".join(lines) + f"\n\n{note}"
            sec.html = _md_table_to_html(lines) + f"<p class='note'>{html.escape(note)}</p>"
        for name, path in recon.items():
            sec.images.append((f"recon_{_slug(name)}.png", path.read_bytes(), f"{name}: input, mask, reconstruction"))
        sections.append(sec)


def _paper_comparison(perf: pd.DataFrame, meta: dict) -> Section | None:
    from scipy import stats as st

    if perf.empty:
        return None
    pub, pub_tasks = tables.paper_table()
    pub["mean_over_tasks"] = pub[list(pub_tasks)].mean(axis=1)
    region_of = {n: d.get("region") for n, d in meta.get("datasets", {}).items()}
    pairs = []
    for dataset in perf.index:
        region = "zero" if dataset == ZERO else region_of.get(dataset)
        match = pub.index[pub["region"].fillna("zero") == region] if region else []
        if len(match):
            pairs.append((dataset, match[0]))
    if len(pairs) < 3:
        return None
    ours = pd.Series({d: perf.loc[d, "mean_over_tasks"] for d, _ in pairs})
    theirs = pd.Series({d: pub.loc[p, "mean_over_tasks"] for d, p in pairs})
    rho, p = st.spearmanr(ours.to_numpy(), theirs.to_numpy())
    sec = Section("This study next to the published results")
    lines = ["| this study | paper row | this study: mean over tasks | paper: mean over tasks (LP) | paper mean rank |",
             "|---|---|---|---|---|"]
    for d, prow in pairs:
        lines.append(f"| {d} | {prow} | {ours[d]:.3f} | {theirs[d]:.3f} | {pub.loc[prow, 'published_mean_rank']:.2f} |")
    cite = tables.paper_results()["citation"]
    text = (f"Spearman rank correlation between this study's per-dataset mean performance and the published one: "
            f"ρ = {rho:.2f} (p = {p:.2g}, n = {len(pairs)}). The study's tasks are not the paper's tasks "
            f"(SimEarth stand-ins unless real tasks were configured), so this compares orderings, not values. "
            f"Published figures: {cite}")
    sec.markdown = "\n".join(lines) + "\n\n" + text
    sec.html = _md_table_to_html(lines) + f"<p class='note'>{html.escape(text)}</p>"
    sec.images.append(("paper_comparison.png", figures.figure_png(figures.paper_comparison_figure(
        ours, theirs, rho=float(rho), p=float(p), ylabel="this study: mean over tasks")), "This study vs. the paper"))
    return sec


def _md_table_to_html(lines: list[str]) -> str:
    rows = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines if not set(ln) <= set("|-")]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows[1:])
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in text)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:0.9em;display:block;overflow-x:auto;max-width:100%}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
th:first-child{text-align:left}figure{margin:1em 0}img{max-width:100%}figcaption{font-size:0.85em;color:#555}
.note{font-size:0.85em;color:#555}.summary{background:#f6f8fa;padding:0.8em 1.2em;border-left:4px solid #1b9e77}
"""


def write_report(study_dir: str | Path) -> Path:
    """Write ``report/index.html`` (images embedded) and ``report/report.md`` (images beside it).

    Under the study folder's lock: while a study runs in the folder, ``geodiv report`` waits for it
    (``GEODIV_WAIT_LOCK=1``) or stops with an error naming the study's process, rather than reporting half a study.
    """
    study_dir = Path(study_dir)
    if not study_dir.is_dir():
        raise InputError(f"{study_dir} is not a folder; give the --out folder of a `geodiv study` run")
    with folder_lock(study_dir, "geodiv report"):
        return _write_report(study_dir)


def _write_report(study_dir: Path) -> Path:
    meta, sections, facts = build_sections(study_dir)
    write_correlation_tables(study_dir, facts)
    summary = summarise(facts, meta)
    out = study_dir / "report"
    title = f"geodiv study: {meta.get('name', study_dir.name)}"
    md = [f"# {title}", "", summary, ""]
    body = [f"<h1>{html.escape(title)}</h1>", f"<div class='summary'>{_paragraphs(summary)}</div>"]
    for sec in sections:
        md += [f"## {sec.title}", "", sec.markdown, ""]
        body += [f"<h2>{html.escape(sec.title)}</h2>", sec.html]
        for name, png, caption in sec.images:
            write_bytes(out / name, png)
            md += [f"![{caption}]({name})", ""]
            body.append(_img_tag(png, caption))
    timings = meta.get("timings") or {}
    if timings:
        lines = timings_table(timings)
        md += ["## Wall time by step", "", *lines]
        body.append("<h2>Wall time by step</h2>" + _md_table_to_html(lines))
    page = ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
            + "\n".join(body) + "</body></html>\n")
    write_text(out / "report.md", "\n".join(md) + "\n")
    index = out / "index.html"
    write_text(index, page)
    return index


def write_correlation_tables(study_dir: Path, facts: dict) -> None:
    """``correlations.csv`` (each measure against the mean over tasks) and ``correlations_per_task.csv`` (Spearman
    per task) in the study folder, from the tables :func:`build_sections` computed."""
    for name, table in (facts.get("correlation_tables") or {}).items():
        write_text(Path(study_dir) / name, table.to_csv(index_label="measure"))


def timings_table(timings: dict[str, float]) -> list[str]:
    """Markdown lines of the time by step kind that ``study.json`` records: each kind's steps' own wall times
    summed (under ``--jobs N`` they overlap, so the kinds add up to more than the run), then the run's wall time."""
    return ["| step | seconds (its steps, summed) |", "|---|---|", *(f"| {k} | {v:.1f} |" for k, v in timings.items())]


def _paragraphs(text: str) -> str:
    return "".join(f"<p>{html.escape(p)}</p>" for p in text.split("\n\n") if p.strip())


def format_summary(study_dir: str | Path) -> str:
    """The main table (markdown) and the generated summary, for the terminal after a study."""
    meta, results, _ = load_study(Path(study_dir))
    task_metrics = {t: spec["metric"] for t, spec in meta["tasks"].items()}
    protocol = meta.get("main_protocol", "linear")
    table = tables.main_table(results, task_metrics, protocol=protocol)
    facts = {"main_protocol": protocol, "task_metrics": task_metrics, "main_table": table,
             **checks.check_facts(results, task_metrics, protocol, meta.get("reconstruction_losses"),
                                  meta.get("protocols", ()))}
    return f"{protocol} results (global test sets):\n\n{tables.table_markdown(table, task_metrics)}\n\n" + summarise(
        facts, meta
    )
