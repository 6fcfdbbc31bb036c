"""Stage 8, study: plan the whole study from one config, run every step once (cached by input hash), resume.

``run_study`` chains the stages' public entry functions: build datasets -> diversity -> pretrain (per seed) ->
downstream tasks -> evaluate (every checkpoint and zero pretraining, every task x protocol x region).
The report (``geodiv.report``) is written from the folder it leaves.
"""

from geodiv.study.config import StudyConfig, load_study_config, paper_datasets
from geodiv.study.runner import run_study

__all__ = ["StudyConfig", "load_study_config", "paper_datasets", "run_study"]
