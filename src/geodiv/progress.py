"""Progress for every long step: throughput (items/s) and ETA, as a bar or as timestamped log lines.

One helper so every stage reports the same way, on stderr. ``GEODIV_PROGRESS`` chooses how:

- ``bar`` (or ``1``): a tqdm bar, redrawn in place; the default when stderr is a terminal.
- ``log``: one timestamped line (``log``) at most every ``GEODIV_PROGRESS_INTERVAL`` seconds (default 60) with
  the count, the rate since the start, the elapsed time and the ETA; the default when stderr is not a terminal
  (a log file, CI, a batch job), where a bar's carriage returns would pile up, and what a concurrent study's step
  processes use, where two bars would draw over each other. A step shorter than the interval prints nothing.
- ``0``: nothing.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm.auto import tqdm

from geodiv.errors import ConfigError

T = TypeVar("T")
# No tqdm monitor thread: a process without stray threads can fork its shard workers (geodiv.data.parallel).
tqdm.monitor_interval = 0


#: Seconds between two log lines of one progress counter in ``log`` mode, unless ``GEODIV_PROGRESS_INTERVAL``.
DEFAULT_LOG_INTERVAL_S = 60.0
_MODES = {"bar": "bar", "1": "bar", "true": "bar", "yes": "bar", "log": "log",
          "0": "off", "false": "off", "no": "off", "": "off"}


def progress_mode() -> str:
    """``bar``, ``log`` or ``off``, from ``GEODIV_PROGRESS`` (default: a bar on a terminal, log lines elsewhere)."""
    flag = os.environ.get("GEODIV_PROGRESS")
    if flag is None:
        return "bar" if sys.stderr.isatty() else "log"
    mode = _MODES.get(flag.strip().lower())
    if mode is None:
        raise ConfigError(f"GEODIV_PROGRESS={flag!r}: use bar, log or 0")
    return mode


def _log_interval() -> float:
    raw = os.environ.get("GEODIV_PROGRESS_INTERVAL", "")
    try:
        interval = float(raw) if raw else DEFAULT_LOG_INTERVAL_S
    except ValueError:
        interval = -1.0
    if not interval >= 0:
        raise ConfigError(f"GEODIV_PROGRESS_INTERVAL={raw!r}: give the seconds between progress lines, e.g. 60")
    return interval


class _NullFile:
    """Where a log-mode counter's own drawing goes: it speaks through ``log`` only."""

    def write(self, _text: str) -> None:
        pass

    def flush(self) -> None:
        pass


class LogLines(tqdm):
    """A tqdm counter that, instead of drawing a bar, logs a line at most every ``interval`` seconds.

    tqdm keeps the count, the rate and the remaining time; ``display`` (which tqdm calls on updates, postfix
    changes and close) only formats them. The rate is the average since the start (``smoothing=0``), so the ETA
    does not jump with one slow batch.
    """

    _WITH_TOTAL = "{desc}: {n_fmt}/{total_fmt} {unit} ({percentage:.0f}%), {rate_fmt}, elapsed {elapsed}, ETA {remaining}{postfix}"
    _WITHOUT_TOTAL = "{desc}: {n_fmt} {unit}, {rate_fmt}, elapsed {elapsed}{postfix}"

    def __init__(self, *args: Any, interval: float = DEFAULT_LOG_INTERVAL_S, **kwargs: Any) -> None:
        self._interval = interval
        self._last_line = time.monotonic()
        kwargs.update(file=_NullFile(), smoothing=0.0, mininterval=min(interval, 0.5))
        super().__init__(*args, **kwargs)

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        now = time.monotonic()
        if self.n > 0 and now - self._last_line >= self._interval:
            self._last_line = now
            meter = self.format_dict
            meter["bar_format"] = self._WITH_TOTAL if self.total else self._WITHOUT_TOTAL
            log(" ".join(self.format_meter(**meter).split()))  # tqdm pads the rate to a width
        return True


def progress(
    iterable: Iterable[T] | None = None,
    *,
    total: int | None = None,
    desc: str = "",
    unit: str = "it",
    disable: bool | None = None,
) -> tqdm:
    """A counter showing ``unit``/s and ETA (``progress_mode``); use as an iterator wrapper or with
    ``.update(n)``. ``disable=True`` silences it whatever the mode (e.g. on every rank but the main one)."""
    mode = "off" if disable else progress_mode()
    if mode == "log":
        return LogLines(iterable, total=total, desc=desc, unit=unit, unit_scale=False, interval=_log_interval())
    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        unit_scale=False,
        dynamic_ncols=True,
        mininterval=0.5,
        disable=mode == "off",
        file=sys.stderr,
    )


def log(message: str) -> None:
    """A one-line status message on stderr, timestamped, always shown (unlike bars); ``GEODIV_LOG_PREFIX``
    (set by a concurrent study for each step's process) comes before the message."""
    prefix = os.environ.get("GEODIV_LOG_PREFIX", "")
    print(f"[geodiv {time.strftime('%H:%M:%S')}] {prefix}{message}", file=sys.stderr, flush=True)

