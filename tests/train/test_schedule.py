import math

import pytest

from geodiv.train.schedule import lr_at, scaled_lr, warmup_cosine


def test_scaled_lr_is_the_linear_rule():
    # the pretrain-where recipe: blr 1e-4 at effective batch 4096 -> 1.6e-3
    assert scaled_lr(1e-4, 4096) == pytest.approx(1.6e-3)
    assert scaled_lr(2e-4, 256) == pytest.approx(2e-4)


def test_warmup_cosine_counts_in_any_unit():
    # in optimiser steps: 10 warmup steps of 100
    assert warmup_cosine(0, 100, 10, 1.0, 0.0) == 0.0
    assert warmup_cosine(5, 100, 10, 1.0, 0.0) == pytest.approx(0.5)
    assert warmup_cosine(10, 100, 10, 1.0, 0.1) == pytest.approx(1.0)
    assert warmup_cosine(55, 100, 10, 1.0, 0.1) == pytest.approx(0.55)  # half way down the cosine
    assert warmup_cosine(100, 100, 10, 1.0, 0.1) == pytest.approx(0.1)
    assert warmup_cosine(7, 3, 10, 1.0, 0.1) == pytest.approx(0.7)  # warmup longer than the run: never reached
    # pretraining's lr_at is the same schedule on fractional epochs
    kw = dict(steps_per_epoch=7, lr=0.3, min_lr=0.01, warmup_epochs=1.5, epochs=6)
    assert [lr_at(s, **kw) for s in range(50)] == [warmup_cosine(s / 7, 6, 1.5, 0.3, 0.01) for s in range(50)]


def test_warmup_is_linear_per_iteration_and_starts_at_zero():
    kw = dict(steps_per_epoch=10, lr=1.0, min_lr=0.0, warmup_epochs=2, epochs=10)
    assert lr_at(0, **kw) == 0.0
    assert lr_at(1, **kw) == pytest.approx(0.05)  # epoch 0.1 of 2 warmup epochs
    assert lr_at(15, **kw) == pytest.approx(0.75)
    assert lr_at(20, **kw) == pytest.approx(1.0)  # warmup over: the peak


def test_half_cosine_after_warmup_reaches_min_lr():
    kw = dict(steps_per_epoch=4, lr=2.0, min_lr=0.5, warmup_epochs=1, epochs=5)
    # halfway through the cosine part (epoch 3 of 1..5) the rate is the midpoint of lr and min_lr
    assert lr_at(12, **kw) == pytest.approx(1.25)
    # one step after warmup
    e = 5 / 4
    assert lr_at(5, **kw) == pytest.approx(0.5 + 1.5 * 0.5 * (1 + math.cos(math.pi * (e - 1) / 4)))
    assert lr_at(20, **kw) == pytest.approx(0.5)
    assert lr_at(100, **kw) == pytest.approx(0.5)  # past the end it stays at min_lr


def test_schedule_is_monotone_in_each_phase():
    kw = dict(steps_per_epoch=7, lr=1e-3, min_lr=1e-6, warmup_epochs=3, epochs=12)
    rates = [lr_at(s, **kw) for s in range(7 * 12)]
    warm = rates[: 7 * 3 + 1]
    decay = rates[7 * 3:]
    assert all(a < b for a, b in zip(warm, warm[1:]))
    assert all(a >= b for a, b in zip(decay, decay[1:]))
    assert max(rates) == pytest.approx(1e-3)


def test_no_warmup_starts_at_peak():
    assert lr_at(0, steps_per_epoch=3, lr=0.1, min_lr=0.0, warmup_epochs=0, epochs=2) == pytest.approx(0.1)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        lr_at(0, steps_per_epoch=0, lr=1, min_lr=0, warmup_epochs=0, epochs=1)
    with pytest.raises(ValueError):
        lr_at(0, steps_per_epoch=1, lr=1, min_lr=0, warmup_epochs=3, epochs=2)
    with pytest.raises(ValueError):
        scaled_lr(1e-4, 0)
