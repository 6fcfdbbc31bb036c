"""Fixtures of the evaluation tests (helpers live in synthetic.py)."""

import copy

import pytest

from .synthetic import TINY_RANDOM


@pytest.fixture
def tiny_config() -> dict:
    return copy.deepcopy(TINY_RANDOM)

