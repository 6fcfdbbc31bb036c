"""Content-addressed step cache: a step's key is a hash of everything that determines its output.

A finished step leaves a marker ``<out>/cache/<kind>-<key>.json`` (written atomically, last), holding the
step's record (outputs, timings). A rerun skips every step whose marker exists, so a killed study resumes where
it stopped and never does finished work twice; a changed input changes the key and the step runs again.
Steps that are themselves resumable (dataset building, pretraining) pick up their partial work on rerun.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from geodiv.atomic import write_json

#: Bump when the meaning of cached outputs changes without a change of their inputs.
STEP_CACHE_VERSION = 1


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace: equal inputs give equal text, whatever the dict order."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str, allow_nan=False)


def step_key(kind: str, inputs: Any) -> str:
    """16 hex digits of sha256 over the step kind, the cache version and its inputs."""
    text = canonical_json({"kind": kind, "v": STEP_CACHE_VERSION, "inputs": inputs})
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


class StepCache:
    """Markers of finished steps under ``root``."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def marker(self, kind: str, key: str) -> Path:
        return self.root / f"{kind}-{key}.json"

    def get(self, kind: str, key: str) -> dict | None:
        path = self.marker(kind, key)
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            # Markers are written atomically, so a bad one was edited by hand: treat the step as not done.
            return None

    def put(self, kind: str, key: str, record: dict) -> None:
        write_json(self.marker(kind, key), record)
