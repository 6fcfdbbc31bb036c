"""Learning-rate schedule of MAE/SatMAE training: per-iteration linear warmup, then half-cosine; one rule for
the base-rate scaling. Pretraining (``lr_at``) and fine-tuning both use ``warmup_cosine`` and ``scaled_lr``.

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


def warmup_cosine(step: float, total: float, warmup: float, lr: float, min_lr: float) -> float:
    """Linear warmup from 0 to ``lr`` over ``warmup``, then half-cosine from ``lr`` to ``min_lr`` at ``total``.

    ``step``, ``total`` and ``warmup`` share one unit (optimiser steps, or fractional epochs) and may be
    fractional: ``lr * step / warmup`` during warmup (the very first step has rate 0), then
    ``min_lr + (lr - min_lr) * (1 + cos(pi * (step - warmup) / (total - warmup))) / 2``, held at ``min_lr``
    past ``total``. With no time after warmup (``total <= warmup``) the rate after warmup is ``lr``.
    """
    if step < warmup:
        return lr * step / warmup
    if total <= warmup:
        return lr
    progress = min((step - warmup) / (total - warmup), 1.0)
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def lr_at(
    step: int,
    *,
    steps_per_epoch: int,
    lr: float,
    min_lr: float,
    warmup_epochs: float,
    epochs: float,
) -> float:
    """Learning rate for pretraining's optimiser step ``step`` (0-based).

    ``warmup_cosine`` on the fractional epoch ``step / steps_per_epoch``, as MAE's ``adjust_learning_rate``
    does: ``lr * e / warmup`` during warmup (so the very first step has rate 0), then
    ``min_lr + (lr - min_lr) * (1 + cos(pi * (e - warmup) / (epochs - warmup))) / 2``.
    """
    if steps_per_epoch <= 0:
        raise ValueError(f"steps_per_epoch must be positive, got {steps_per_epoch}")
    if not 0 <= warmup_epochs <= epochs:
        raise ValueError(f"warmup_epochs must lie in [0, epochs={epochs}], got {warmup_epochs}")
    return warmup_cosine(step / steps_per_epoch, epochs, warmup_epochs, lr, min_lr)
