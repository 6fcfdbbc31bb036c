"""What makes a resumed pretraining run continue exactly: where the data stands, and the global RNG state.

``BatchSource`` draws this rank's micro-batches endlessly, pass after pass, from one loader made by a factory
(``pretrain.make_loader_factory``) and reports the position that checkpoints save; ``capture_rng`` /
``restore_rng`` carry the global RNG state across a resume.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import torch

from geodiv.errors import DataError


def capture_rng() -> dict[str, Any]:
    """Global RNG states in plain types and tensors (loadable with ``weights_only=True``)."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    python = state["python"]
    random.setstate((python[0], tuple(python[1]), python[2]))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


class BatchSource:
    """Endless micro-batches for this rank from one loader that runs pass after pass.

    ``make_loader(first_pass, batches_done)`` returns an endless loader (``ShardStream(epochs=None)``) that starts
    at pass ``first_pass`` and skips the first ``batches_done`` batches it would deliver. The position
    ``(first_pass, batches delivered since)`` is saved in checkpoints, so a resumed run continues with exactly the
    batch that an uninterrupted run would have drawn. A checkpoint of the loader-per-pass version, ``(pass, batches in
    pass)``, resumes at the same point; later passes follow this version's order.

    One loader serves the whole run: its DataLoader workers start once and go from one pass to the next on their
    own. A loader per pass (as before) made every pass boundary wait for the next loader: forking the workers from
    the training process, opening shards, filling the shuffle buffer. Starting the next pass's loader ahead hid part
    of it; on an H200, `tiny` at 64 px still lost about 0.5 s per pass of 1.4 s (docs/scaling.md).
    """

    def __init__(self, make_loader: Callable[[int, int], Iterable[Any]], position: tuple[int, int] = (0, 0)) -> None:
        self.make_loader = make_loader
        self.first_pass, self.delivered = int(position[0]), int(position[1])
        self._it: Iterator[Any] | None = None

    def position(self) -> tuple[int, int]:
        return self.first_pass, self.delivered

    @staticmethod
    def fresh_pass(position: tuple[int, int]) -> int:
        """A pass that no batch up to ``position`` came from. A pass can give a rank no batch only while each of its
        workers gets one within 3 passes (else the stream raises), so ``delivered`` batches span fewer than
        ``3 (delivered + 1)`` passes; pass indices only seed the stream, so overshooting costs nothing."""
        return int(position[0]) + 3 * (int(position[1]) + 1)

    def __iter__(self) -> BatchSource:
        return self

    def __next__(self) -> Any:
        if self._it is None:
            self._it = iter(self.make_loader(self.first_pass, self.delivered))
        batch = next(self._it, None)
        if batch is None:
            raise DataError(
                "this process's share of the data yields no full batch; use fewer processes or DataLoader workers, "
                "a smaller batch_size, or more samples"
            )
        self.delivered += 1
        return batch

    def close(self) -> None:
        """Stop the loader's workers now (they would stop when garbage-collected)."""
        self._it = None
