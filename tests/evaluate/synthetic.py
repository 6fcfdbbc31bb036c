"""Synthetic tasks and a tiny encoder for the protocol tests (no files, a few samples, 16 px images)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from geodiv.bands import SATMAE_BANDS, satmae_stats
from geodiv.evaluate.tasks.base import Task, TaskSample

CONTINENT_CYCLE = ("Africa", "Europe", "Asia")
LATLON = {"Africa": (0.0, 20.0), "Europe": (48.0, 10.0), "Asia": (30.0, 100.0)}


class SyntheticTask(Task):
    """Images whose spectra encode the label: class c shifts every band by (c - 1) standard deviations.

    ``continents``: cycle of continents per split (None entries = no location); ``bands`` may drop bands.
    """

    def __init__(self, type_: str = "classification", n=(30, 9, 15), size: int = 16, seed: int = 0,
                 bands=SATMAE_BANDS, located: bool = True, test_continents=CONTINENT_CYCLE, name="synthetic"):
        self.name, self.type, self.bands = name, type_, list(bands)
        self.classes = {"classification": ["a", "b", "c"], "multilabel": ["x", "y"], "regression": None,
                        "segmentation": ["land", "water"]}[type_]
        self.has_location, self.filled_bands, self.info, self.path = located, [], {}, None
        self._n = dict(zip(("train", "val", "test"), n))
        self._size, self._seed, self._test_continents = size, seed, test_continents
        self.reads = 0

    def splits(self) -> list[str]:
        return [s for s in ("train", "val", "test") if self._n[s] > 0]

    def n(self, split: str) -> int:
        return self._n[split]

    def iter_split(self, split: str) -> Iterator[TaskSample]:
        self.reads += 1
        rng = np.random.default_rng([self._seed, ("train", "val", "test").index(split)])
        mean, std = (np.asarray(v)[:, None, None] for v in satmae_stats(self.bands))
        cycle = CONTINENT_CYCLE if split != "test" else self._test_continents
        for i in range(self._n[split]):
            cont = cycle[i % len(cycle)] if self.has_location else None
            lat, lon = LATLON[cont] if cont else (None, None)
            noise = rng.normal(0, 0.3, (len(self.bands), self._size, self._size))
            if self.type == "classification":
                label = int(rng.integers(0, 3))
                z = (label - 1) * 1.0 + noise
            elif self.type == "regression":
                label = float(rng.uniform(-1, 1))
                z = label + noise
            elif self.type == "multilabel":
                label = (rng.random(2) < 0.5).astype(np.float32)
                z = noise + label[0] * 1.0
                z[: len(self.bands) // 2] += label[1] * 1.5
            else:
                label = np.zeros((self._size, self._size), dtype=np.uint8)
                cut = int(rng.integers(4, self._size - 4))
                label[:, cut:] = 1
                z = noise + np.where(label == 1, 1.0, -1.0)[None]
            image = np.clip(mean + z * std, 1, 20000).astype(np.uint16)
            yield TaskSample(f"{split}-{i:04d}", image, label, lat, lon, cont)


def tiny_encoder(seed: int = 0, img_size: int = 16):
    from geodiv.models import build_encoder

    return build_encoder("tiny", img_size=img_size, embed_dim=48, depth=1, num_heads=3, channel_embed=16, seed=seed)


TINY_RANDOM = {"random_init": {"preset": "tiny", "overrides": {"img_size": 16, "embed_dim": 48, "depth": 1,
                                                               "num_heads": 3, "channel_embed": 16}},
               "metrics": {"n_boot": 50}}


def blobs(n: int, k: int, dim: int, rng: np.random.Generator, spread: float = 0.5):
    centers = rng.normal(0, 3, (k, dim))
    y = rng.integers(0, k, n)
    return centers[y] + rng.normal(0, spread, (n, dim)), y
