"""Helpers for the task-reader tests: load the fixture writers kept in tests/fixtures/<name>/make_fixture.py."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def fixture_module(name: str) -> ModuleType:
    path = FIXTURES / name / "make_fixture.py"
    spec = importlib.util.spec_from_file_location(f"make_fixture_{name}", path)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def geobench_tasks(tmp_path):
    """Three GEO-Bench task folders; the stand-in geobench modules are removed before the reader runs,
    so reading must not need geobench (or import anything the pickles name)."""
    module = fixture_module("geobench")
    paths = module.make_all(tmp_path)
    for key in [k for k in sys.modules if k == "geobench" or k.startswith("geobench.")]:
        del sys.modules[key]
    return paths


@pytest.fixture(scope="session")
def fixture_writer():
    """The ``fixture_module`` loader: ``fixture_writer("fmow_task").make(tmp_path)``."""
    return fixture_module
