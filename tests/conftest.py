"""Shared test settings: deterministic, quiet, single-threaded torch (CI has 2 cores and runs 2 workers)."""

import os

os.environ.setdefault("GEODIV_PROGRESS", "0")

try:
    import torch

    # 1 thread by default (2 xdist workers on 2 cores); GEODIV_TEST_THREADS=2 runs the suite with 2 threads, which
    # changes float summation order inside kernels: every tolerance must hold both ways.
    torch.set_num_threads(int(os.environ.get("GEODIV_TEST_THREADS", "1")))
except ImportError:  # pragma: no cover - torch is a hard dependency; keep collection errors readable
    pass
