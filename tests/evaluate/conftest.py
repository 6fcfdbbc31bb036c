"""Fixtures of the evaluation tests (helpers live in synthetic.py)."""

import copy

import pytest

from .synthetic import TINY_RANDOM


@pytest.fixture
def tiny_config() -> dict:
    return copy.deepcopy(TINY_RANDOM)



@pytest.fixture
def cli_eval_config(tmp_path, monkeypatch, tiny_config):
    """For `geodiv evaluate` from the CLI: the tiny config as a YAML file, and any task name resolving to a small
    synthetic task."""
    import yaml

    from geodiv.evaluate import runner

    from .synthetic import SyntheticTask

    cfg = tmp_path / "eval.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config))
    monkeypatch.setattr(runner, "resolve_task", lambda spec, options=None: SyntheticTask(n=(12, 3, 6)))
    return cfg
