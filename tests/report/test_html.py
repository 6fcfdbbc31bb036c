import json
import re
import shutil
import subprocess

import pandas as pd
import pytest
from scipy import stats

from geodiv.errors import InputError
from geodiv.report import format_summary, write_report
from geodiv.report.html import correlation_stats, performance_by_dataset


def test_report_sections_and_numbers(study_dir):
    index = write_report(study_dir)
    page = index.read_text()
    assert page.startswith("<!DOCTYPE html>") and page.count("data:image/png;base64,") >= 4
    for title in ("Results: linear", "Results: knn", "Pretraining region × evaluation region (linear)",
                  "Diversity and performance", "Where each dataset", "This study next to the published results"):
        assert title in page, title
    md = (study_dir / "report" / "report.md").read_text()
    # Europe is best on both tasks under linear probing: bold, mean rank 0.
    assert re.search(r"\| one-hot-europe \| \*\*0\.86 ± 0\.01\*\* \| \*\*0\.86 ± 0\.01\*\* \| 0\.00 \|", md)
    assert (study_dir / "report" / "heatmap_landcover.png").stat().st_size > 1000


def test_correlation_matches_scipy(study_dir):
    results = pd.read_csv(study_dir / "results.csv")
    perf = performance_by_dataset(results, {"landcover": "accuracy", "treecover": "r2"}, "linear")
    diversity = pd.read_csv(study_dir / "diversity.csv").set_index("dataset")
    pretrained = perf["mean_over_tasks"].drop("zero-pretraining")
    got = correlation_stats(diversity, pretrained, ["landscape_entropy", "spectral_entropy"])
    x = diversity.loc[pretrained.index, "spectral_entropy"]
    rho, p = stats.spearmanr(x, pretrained)
    assert got["spectral_entropy"]["spearman_rho"] == pytest.approx(rho)
    assert got["spectral_entropy"]["spearman_p"] == pytest.approx(p)
    assert got["spectral_entropy"]["spearman_ci_low"] <= rho <= got["spectral_entropy"]["spearman_ci_high"]
    assert got["landscape_entropy"]["n"] == 4


def test_summary_states_order_and_uncertainty(study_dir):
    text = format_summary(study_dir)
    assert "'one-hot-europe' has the best mean rank" in text and "zero-pretraining" in text
    assert "seed std" in text and "SimEarth" in text
    assert "Reconstruction check" not in text  # the synthetic study has no held-out losses
    meta = json.loads((study_dir / "study.json").read_text())
    meta["reconstruction_losses"] = {"global": [{"seed": 0, "n": 256, "mae_loss": 0.017, "mean_visible_loss": 0.0153}]}
    (study_dir / "study.json").write_text(json.dumps(meta))
    text = format_summary(study_dir)
    assert "Reconstruction check (held-out patches, end of pretraining): no pretraining dataset" in text
    assert "1.11 to 1.11" in text


def test_unfinished_study_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="missing study.json, results.csv"):
        write_report(tmp_path)
    with pytest.raises(InputError, match="not a folder"):
        write_report(tmp_path / "nowhere")
    assert not (tmp_path / "nowhere").exists()


def test_a_study_running_in_the_folder_keeps_the_report_out(study_dir, lock_holder):
    from geodiv.errors import LockedError

    proc = lock_holder(study_dir)  # as `geodiv study` holds it while it runs
    with pytest.raises(LockedError, match=rf"pid {proc.pid}.*geodiv test-holder"):
        write_report(study_dir)
    assert not (study_dir / "report").exists()
    proc.kill()
    proc.wait()
    assert write_report(study_dir).is_file()  # a dead holder's lock is taken over


@pytest.mark.slow
def test_report_opens_in_headless_chromium_without_console_errors(study_dir, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    index = write_report(study_dir)
    shot = tmp_path / "shot.png"
    proc = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
         "--window-size=1200,2000", f"--screenshot={shot}", index.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    console = [ln for ln in proc.stderr.splitlines() if "CONSOLE" in ln or "Uncaught" in ln]
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not console, "\n".join(console)
    assert shot.stat().st_size > 10_000


def test_per_task_correlations_match_scipy(study_dir):
    write_report(study_dir)
    per_task = pd.read_csv(study_dir / "correlations_per_task.csv", index_col="measure")
    results = pd.read_csv(study_dir / "results.csv")
    perf = performance_by_dataset(results, {"landcover": "accuracy", "treecover": "r2"}, "linear")
    diversity = pd.read_csv(study_dir / "diversity.csv").set_index("dataset")
    y = perf["landcover"].drop("zero-pretraining")
    rho, p = stats.spearmanr(diversity.loc[y.index, "landscape_entropy"], y)
    assert per_task.loc["landscape_entropy", "landcover"] == f"{rho:.2f} ({p:.2g})"


def test_class_group_metrics_get_their_own_table_and_sentence(study_dir):
    # a task with class groups carries group_accuracy and within_group_accuracy rows: the checks section compares
    # the best pretrained encoder with the baselines on each, and the summary says it
    results = pd.read_csv(study_dir / "results.csv")
    extra = results[(results["task"] == "landcover") & (results["metric"] == "accuracy")].copy()
    parts = []
    for metric, shift in (("group_accuracy", 0.1), ("within_group_accuracy", -0.1)):
        part = extra.copy()
        part["metric"] = metric
        part[["value", "ci_low", "ci_high"]] += shift
        parts.append(part)
    pd.concat([results, *parts]).to_csv(study_dir / "results.csv", index=False)
    page = write_report(study_dir).read_text()
    md = (study_dir / "report" / "report.md").read_text()
    assert "linear, inside and between class groups" in page
    best = extra[(extra["dataset"] == "one-hot-europe") & (extra["protocol"] == "linear") & (extra["region"] == "global")]
    value = best["value"].mean() - 0.1
    assert f"| landcover (within_group_accuracy) | one-hot-europe: {value:.3f}" in md
    assert "Class groups (linear;" in md and "landcover: telling the groups apart, best pretrained 'one-hot-europe'" in md
