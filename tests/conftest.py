"""Shared test settings: deterministic, quiet, single-threaded torch (CI has 2 cores and runs 2 workers)."""

import os
import subprocess
import sys
import textwrap
import time

import pytest

os.environ.setdefault("GEODIV_PROGRESS", "0")

try:
    import torch

    # 1 thread by default (2 xdist workers on 2 cores); GEODIV_TEST_THREADS=2 runs the suite with 2 threads, which
    # changes float summation order inside kernels: every tolerance must hold both ways.
    torch.set_num_threads(int(os.environ.get("GEODIV_TEST_THREADS", "1")))
except ImportError:  # pragma: no cover - torch is a hard dependency; keep collection errors readable
    pass


SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, "src"))


@pytest.fixture
def lock_holder(tmp_path):
    """Start a separate process that holds a folder's geodiv lock (or, with ``lock="file_lock"``, one output
    file's) until it is killed; returns its Popen."""
    procs = []

    def start(folder, lock="folder_lock"):
        ready = tmp_path / f".ready-{len(procs)}"
        code = textwrap.dedent(f"""
            import pathlib, time
            from geodiv.atomic import {lock}
            with {lock}({str(folder)!r}, "geodiv test-holder"):
                pathlib.Path({str(ready)!r}).write_text("x")
                time.sleep(120)
        """)
        proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": SRC})
        procs.append(proc)
        for _ in range(600):
            if ready.exists():
                return proc
            time.sleep(0.05)
        raise AssertionError("the lock holder did not start")

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()
