"""Diversity of pretraining data: categorical, spectral, landscape and embedding measures, and their correlation
with downstream performance. Definitions, defaults and their reasons: docs/diversity.md."""

from geodiv.diversity.categorical import categorical_diversity, shannon_entropy
from geodiv.diversity.correlate import (
    correlate,
    correlate_measures,
    mean_performance,
)
from geodiv.diversity.dataset import HEADLINE_MEASURES, MEASURES, dataset_diversity, format_diversity
from geodiv.diversity.embedding import vendi_score
from geodiv.diversity.landscape import (
    landscape_by_continent,
    landscape_entropy,
    landscape_entropy_from_fractions,
    landscape_summary,
)
from geodiv.diversity.scorers import register_scorers
from geodiv.diversity.spectral import band_histograms, joint_entropy, quantize, spectral_entropy, summarize

__all__ = [
    "HEADLINE_MEASURES",
    "MEASURES",
    "band_histograms",
    "categorical_diversity",
    "correlate",
    "correlate_measures",
    "dataset_diversity",
    "format_diversity",
    "joint_entropy",
    "landscape_by_continent",
    "landscape_entropy",
    "landscape_entropy_from_fractions",
    "landscape_summary",
    "mean_performance",
    "quantize",
    "register_scorers",
    "shannon_entropy",
    "spectral_entropy",
    "summarize",
    "vendi_score",
]
