"""Shared test settings: deterministic, quiet, single-threaded torch (CI has 2 cores and runs 2 workers)."""

import os

os.environ.setdefault("GEODIV_PROGRESS", "0")

try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover - torch is a hard dependency; keep collection errors readable
    pass
