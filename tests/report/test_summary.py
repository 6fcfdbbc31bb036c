import math

import pandas as pd

from geodiv.report.figures import correlation_figure
from geodiv.report.html import correlation_stats
from geodiv.report.summary import summarise


def test_summary_withholds_a_conditional_correlation_interval():
    # Six one-hot sets share continent entropy 0: rho is defined in about 2/3 of the resamples, so no interval;
    # spectral entropy differs between every set: its interval is given.
    names = ["africa", "asia", "europe", "north-america", "oceania", "south-america", "global"]
    diversity = pd.DataFrame({"continent_entropy": [0.0] * 6 + [2.3],
                              "spectral_entropy": [5.1, 5.4, 5.0, 5.3, 4.9, 5.2, 5.6]}, index=names)
    perf = pd.Series([0.50, 0.52, 0.48, 0.51, 0.47, 0.49, 0.53], index=names)
    stats = correlation_stats(diversity, perf, ["continent_entropy", "spectral_entropy"])
    continent, spectral = stats["continent_entropy"], stats["spectral_entropy"]
    assert math.isnan(continent["spearman_ci_low"]) and 0.55 < continent["spearman_boot_defined"] < 0.75
    assert spectral["spearman_boot_defined"] == 1.0
    assert spectral["spearman_ci_low"] <= spectral["spearman_rho"] <= spectral["spearman_ci_high"]
    text = summarise({"correlations": stats}, {})
    share = f"{continent['spearman_boot_defined']:.0%}"
    assert f"continent_entropy ρ = 0.61 (p = 0.14, no bootstrap CI: ρ is defined in only {share} of the resamples" in text
    assert f"spectral_entropy ρ = {spectral['spearman_rho']:.2f} (p = {spectral['spearman_p']:.2g}, 95% bootstrap CI [" in text
    # The figure follows the same rule: a fit line for both, the bootstrap band only where the interval is given.
    fig = correlation_figure(diversity, perf, ["continent_entropy", "spectral_entropy"], stats, ylabel="acc")
    continent_ax, spectral_ax = fig.axes[:2]
    assert len(continent_ax.lines) == 1 and len(spectral_ax.lines) == 1
    assert len(continent_ax.collections) == 1  # the points only
    assert len(spectral_ax.collections) == 2  # the points and the band
