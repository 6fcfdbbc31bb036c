"""Learning-rate schedule of MAE/SatMAE pretraining: per-iteration linear warmup, then half-cosine.

The rate is a pure function of the optimiser step, so a resumed run recomputes exactly the rate it would
have had: no scheduler object carries hidden state across a checkpoint.
"""

from __future__ import annotations

import math


def scaled_lr(blr: float, effective_batch: int) -> float:
    """Absolute learning rate from the base rate: ``lr = blr * effective_batch / 256`` (the MAE linear rule)."""
    if effective_batch <= 0:
        raise ValueError(f"effective batch must be positive, got {effective_batch}")
    return blr * effective_batch / 256


def lr_at(
    step: int,
    *,
    steps_per_epoch: int,
    lr: float,
    min_lr: float,
    warmup_epochs: float,
    epochs: float,
) -> float:
    """Learning rate for optimiser step ``step`` (0-based).

    The schedule runs on the fractional epoch ``step / steps_per_epoch``, as MAE's ``adjust_learning_rate``
    does: ``lr * e / warmup`` during warmup (so the very first step has rate 0), then
    ``min_lr + (lr - min_lr) * (1 + cos(pi * (e - warmup) / (epochs - warmup))) / 2``.
    """
    if steps_per_epoch <= 0:
        raise ValueError(f"steps_per_epoch must be positive, got {steps_per_epoch}")
    if not 0 <= warmup_epochs <= epochs:
        raise ValueError(f"warmup_epochs must lie in [0, epochs={epochs}], got {warmup_epochs}")
    epoch = step / steps_per_epoch
    if epoch < warmup_epochs:
        return lr * epoch / warmup_epochs
    if epochs == warmup_epochs:
        return lr
    progress = min((epoch - warmup_epochs) / (epochs - warmup_epochs), 1.0)
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))
