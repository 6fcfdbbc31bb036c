"""BatchSource: pass after pass, exact positions, and the next pass's loader started ahead."""

from __future__ import annotations

import pytest

from geodiv.errors import DataError
from geodiv.train.batches import BatchSource


class Passes:
    """A loader factory whose pass p yields (p, 0), (p, 1), ... (p, sizes[p % len] - 1); it records its calls."""

    def __init__(self, sizes: list[int]) -> None:
        self.sizes = sizes
        self.calls: list[tuple[int, int]] = []

    def __call__(self, pass_index: int, batches_done: int):
        self.calls.append((pass_index, batches_done))
        return [(pass_index, i) for i in range(batches_done, self.sizes[pass_index % len(self.sizes)])]


@pytest.mark.parametrize("start", [(0, 0), (1, 2)])
def test_lookahead_gives_the_same_batches_and_positions(start):
    plain, ahead = BatchSource(Passes([3, 4]), start), BatchSource(Passes([3, 4]), start, lookahead=True)
    for _ in range(12):
        assert next(plain) == next(ahead)
        assert plain.position() == ahead.position()


def test_lookahead_starts_the_next_pass_when_a_pass_starts():
    factory = Passes([3])
    source = BatchSource(factory, (2, 1), lookahead=True)
    assert next(source) == (2, 1)
    assert factory.calls == [(2, 1), (3, 0)]  # the resumed pass, and the next one from its start
    assert [next(source) for _ in range(2)] == [(2, 2), (3, 0)]
    assert factory.calls == [(2, 1), (3, 0), (4, 0)]  # pass 3 came from the loader made ahead
    source.close()


def test_a_share_without_a_full_batch_is_an_error_with_lookahead_too():
    with pytest.raises(DataError, match="no full batch"):
        next(BatchSource(Passes([0]), lookahead=True))
