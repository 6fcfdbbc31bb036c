"""Training logs: a CSV that is always whole on disk, and TensorBoard events when tensorboard is installed."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path
from typing import Any

from geodiv.atomic import atomic_open

CSV_FIELDS: tuple[str, ...] = ("epoch", "step", "lr", "loss", "samples_per_s")


def tensorboard_writer_class() -> type | None:
    """``torch.utils.tensorboard.SummaryWriter`` when the tensorboard package is installed, else None."""
    if importlib.util.find_spec("tensorboard") is None:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # an install too old or broken for torch's writer: the CSV is the log
        return None
    return SummaryWriter


class MetricsLog:
    """Rows of ``CSV_FIELDS`` in ``out_dir/log.csv``; the file is rewritten atomically on every row.

    On resume, rows after the resumed step are dropped first, so a run that was stopped and resumed has
    the same log as one that never stopped. Only the main rank writes (``enabled=False`` elsewhere).
    """

    def __init__(
        self, out_dir: Path, *, enabled: bool, tensorboard: bool, resume_step: int | None = None
    ) -> None:
        self.path = Path(out_dir) / "log.csv"
        self.enabled = enabled
        self.rows: list[dict[str, Any]] = []
        self._tb = None
        if not enabled:
            return
        if resume_step is not None and self.path.is_file():
            with open(self.path, newline="", encoding="utf-8") as fh:
                self.rows = [r for r in csv.DictReader(fh) if int(r["step"]) <= resume_step]
            self._rewrite()
        elif self.path.is_file():
            self.path.unlink()  # a fresh run: the file appears with its first row (a run that fails leaves none)
        writer = tensorboard_writer_class() if tensorboard else None
        if writer is not None:
            self._tb = writer(log_dir=str(Path(out_dir) / "tensorboard"), purge_step=resume_step)

    def append(self, **row: Any) -> None:
        if not self.enabled:
            return
        missing = set(CSV_FIELDS) - set(row)
        if missing:
            raise ValueError(f"log row lacks {sorted(missing)}")
        self.rows.append({k: row[k] for k in CSV_FIELDS})
        self._rewrite()
        if self._tb is not None:
            step = int(row["step"])
            for key in ("lr", "loss", "samples_per_s"):
                self._tb.add_scalar(f"train/{key}", float(row[key]), step)
            self._tb.flush()

    def _rewrite(self) -> None:
        with atomic_open(self.path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
            writer.writeheader()
            writer.writerows(self.rows)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def read_log(out_dir: Path) -> list[dict[str, float]]:
    """The rows of ``out_dir/log.csv`` as numbers (epoch and step as ints)."""
    with open(Path(out_dir) / "log.csv", newline="", encoding="utf-8") as fh:
        return [
            {k: (int(v) if k in ("epoch", "step") else float(v)) for k, v in row.items()}
            for row in csv.DictReader(fh)
        ]
