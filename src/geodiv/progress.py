"""Progress for every long step: a bar with throughput (items/s) and ETA.

One helper so every stage reports the same way. Bars go to stderr and disappear when stderr is not a
terminal unless ``GEODIV_PROGRESS=1``; set ``GEODIV_PROGRESS=0`` to silence them everywhere.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")
# No tqdm monitor thread: a process without stray threads can fork its shard workers (geodiv.data.parallel).
tqdm.monitor_interval = 0


def progress_enabled() -> bool:
    flag = os.environ.get("GEODIV_PROGRESS")
    if flag is not None:
        return flag not in ("0", "false", "no", "")
    return sys.stderr.isatty()


def progress(
    iterable: Iterable[T] | None = None,
    *,
    total: int | None = None,
    desc: str = "",
    unit: str = "it",
    disable: bool | None = None,
) -> tqdm:
    """A tqdm bar showing ``unit``/s and ETA; use as an iterator wrapper or with ``.update(n)``."""
    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        unit_scale=False,
        dynamic_ncols=True,
        mininterval=0.5,
        disable=(not progress_enabled()) if disable is None else disable,
        file=sys.stderr,
    )


def log(message: str) -> None:
    """A one-line status message on stderr, timestamped, always shown (unlike bars); ``GEODIV_LOG_PREFIX``
    (set by a concurrent study for each step's process) comes before the message."""
    prefix = os.environ.get("GEODIV_LOG_PREFIX", "")
    print(f"[geodiv {time.strftime('%H:%M:%S')}] {prefix}{message}", file=sys.stderr, flush=True)

