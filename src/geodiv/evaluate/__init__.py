"""Downstream evaluation: tasks, frozen features (cached), kNN / linear probe / fine-tuning, per-region results.

``evaluate(checkpoint, task, protocol, by=None, out=None, config=None, seed=0)`` is the entry point (the CLI's
``geodiv evaluate`` and the study runner both call it). docs/evaluation.md states every default and why.
"""

from geodiv.evaluate.config import EvalConfig, resolve_config
from geodiv.evaluate.knn import knn_predict
from geodiv.evaluate.linear import fit_linear_probe
from geodiv.evaluate.metrics import METRICS_BY_TYPE, compute_metrics, geobench_aggregate
from geodiv.evaluate.regions import plan_regions
from geodiv.evaluate.runner import PROTOCOLS, RECORD_FIELDS, evaluate, format_records, write_results
from geodiv.evaluate.simearth_tasks import simearth_task
from geodiv.evaluate.tasks.base import Task, TaskSample
from geodiv.evaluate.tasks.registry import load_task

__all__ = [
    "METRICS_BY_TYPE",
    "PROTOCOLS",
    "RECORD_FIELDS",
    "EvalConfig",
    "Task",
    "TaskSample",
    "compute_metrics",
    "evaluate",
    "fit_linear_probe",
    "format_records",
    "geobench_aggregate",
    "knn_predict",
    "load_task",
    "plan_regions",
    "resolve_config",
    "simearth_task",
    "write_results",
]
