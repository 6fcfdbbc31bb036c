"""Fixtures of the geo tests: user biome layers built by tests/fixtures/biome_polygons/make_fixture.py."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

FIXTURE_SCRIPT = Path(__file__).resolve().parents[1] / "fixtures" / "biome_polygons" / "make_fixture.py"


@pytest.fixture(scope="session")
def biome_layers(tmp_path_factory) -> dict[str, Path]:
    spec = importlib.util.spec_from_file_location("make_biome_fixture", FIXTURE_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make(tmp_path_factory.mktemp("biome_layers"))
