"""BatchSource: one endless loader per run, exact positions, a fresh pass after a change of process count."""

from __future__ import annotations

import itertools

import pytest

from geodiv.errors import DataError
from geodiv.train.batches import BatchSource


class Endless:
    """A loader factory: from pass p on, passes of ``sizes[p % len]`` batches (p, 0), (p, 1), ...; the first
    ``batches_done`` are skipped. It records its calls."""

    def __init__(self, sizes: list[int]) -> None:
        self.sizes = sizes
        self.calls: list[tuple[int, int]] = []

    def __call__(self, first_pass: int, batches_done: int):
        self.calls.append((first_pass, batches_done))
        batches = ((p, i) for p in itertools.count(first_pass) for i in range(self.sizes[p % len(self.sizes)]))
        return itertools.islice(batches, batches_done, None)


def test_one_loader_for_the_run_and_exact_positions():
    factory = Endless([3, 4])
    source = BatchSource(factory)
    got = [next(source) for _ in range(9)]
    assert got == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (1, 3), (2, 0), (2, 1)]
    assert factory.calls == [(0, 0)]  # no new loader at a pass boundary
    assert source.position() == (0, 9)
    source.close()


@pytest.mark.parametrize("start", [(0, 0), (1, 2), (0, 5)])
def test_a_resumed_source_continues_with_the_next_batch(start):
    straight = BatchSource(Endless([3, 4]))
    for _ in range(start[1] + (3 if start[0] == 1 else 0)):
        next(straight)
    resumed = BatchSource(Endless([3, 4]), start)
    for _ in range(6):
        assert next(resumed) == next(straight)
    # a checkpoint's (pass, batches in pass) from the loader-per-pass version means the same thing
    assert resumed.position() == (start[0], start[1] + 6)


def test_fresh_pass_is_past_every_pass_the_batches_could_span():
    source = BatchSource(Endless([1]), (2, 0))
    for _ in range(4):
        batch = next(source)
    assert batch == (5, 0) and BatchSource.fresh_pass(source.position()) > 5
    # passes with no batch for this rank (up to 2 in a row per worker) still land before the fresh pass
    source = BatchSource(Endless([0, 0, 1]), (0, 0))
    for _ in range(3):
        batch = next(source)
    assert batch == (8, 0) and BatchSource.fresh_pass(source.position()) > 8


def test_a_loader_that_ends_is_an_error():
    with pytest.raises(DataError, match="no full batch"):
        next(BatchSource(lambda first, done: iter([])))
