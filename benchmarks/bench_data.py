"""geodiv.data benchmarks: shard streaming throughput per core, shard writing, building from SimEarth.

Throughput is samples per CPU-second of this single-threaded process (``time.process_time``), i.e. per core, so
that other processes sharing the machine do not distort it. Baselines run in the same process on the same data:
- streaming (geodiv: memory-mapped tar parsing, zero-copy .npy views, then one compiled pass that crops,
  normalises through a lookup table and resamples, ``geodiv.data.transforms.normalize_resample``): the
  webdataset library's own pipeline (``wds.WebDataset(...).decode()``) feeding the same
  per-sample work written the direct way (``satmae_normalize`` on the whole image, ``F.interpolate`` bicubic
  with antialias, ``torch.flip``);
- building: the simulator alone (``simulate_patches``), the bound the build should approach.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from geodiv.bands import SATMAE_BANDS
from geodiv.data.normalize import satmae_normalize
from geodiv.data.shard_format import Sample
from geodiv.data.shard_writer import write_shards
from geodiv.data.stream import ShardStream
from geodiv.data.transforms import Augment


def _samples(n: int, size: int = 96, seed: int = 0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 5000, (len(SATMAE_BANDS), size, size)).astype(np.uint16)
    for i in range(n):
        yield Sample(f"s{i:06d}", np.roll(base, i, axis=2), {"lat": 0.0, "lon": 0.0, "continent": "Europe"})


def _cpu_rate(fn, n: int) -> float:
    t = time.process_time()
    count = fn()
    dt = time.process_time() - t
    assert count == n, (count, n)
    return n / dt


def _baseline_stream(root: Path, mode: str, seed: int = 0) -> int:
    """The direct way: webdataset's reader and decoder, then normalise-crop-resize per sample."""
    import webdataset as wds

    urls = sorted(str(p) for p in root.glob("shard-*.tar"))
    aug = Augment(mode, 96)
    rng = np.random.default_rng(seed)
    n = 0
    for sample in wds.WebDataset(urls, shardshuffle=False, empty_check=False).decode():
        x = torch.from_numpy(satmae_normalize(sample["npy"], SATMAE_BANDS))
        p = aug.params(96, 96, rng)
        if mode == "train":
            x = x[:, p.top : p.top + p.height, p.left : p.left + p.width]
            x = F.interpolate(x[None], size=(96, 96), mode="bicubic", align_corners=False, antialias=True)[0]
            x = torch.flip(x, dims=(-1,)) if p.flip else x
        else:
            x = F.interpolate(x[None], size=(109, 109), mode="bicubic", align_corners=False, antialias=True)[0]
            x = x[:, 6:102, 6:102]
        n += 1
    return n


def run(quick: bool = False) -> list[dict]:
    torch.set_num_threads(1)
    n = 400 if quick else 3000
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_data_") as tmp:
        root = Path(tmp) / "ds"
        t = time.process_time()
        write_shards(_samples(n), root, shard_size=500, bands=SATMAE_BANDS)
        write_rate = n / (time.process_time() - t)
        rows.append({"benchmark": "data.write_shards 96x96x10", "value": round(write_rate, 1), "unit": "samples/s/core",
                     "baseline": None, "ratio": None, "target": "-", "note": f"{n} samples, sha256 + stats included"})
        for mode in ("train", "eval"):
            stream = ShardStream(root, augment=mode, normalize="satmae", shuffle_buffer=256, seed=0, verify=False)
            sum(1 for _ in stream)  # warm the page cache and the resampling-matrix cache
            # interleaved repeats, medians: the machine may be shared
            values, bases = [], []
            for _ in range(1 if quick else 3):
                values.append(_cpu_rate(lambda s=stream: sum(1 for _ in s), n))
                bases.append(_cpu_rate(lambda m=mode: _baseline_stream(root, m), n))
            value, base = float(np.median(values)), float(np.median(bases))
            what = "random resized crop 0.2-1 + flip" if mode == "train" else "resize 109 + centre crop 96"
            rows.append({"benchmark": f"data.ShardStream {mode} 96x96x10 uint16", "value": round(value, 1),
                         "unit": "samples/s/core", "baseline": round(base, 1), "ratio": round(value / base, 2),
                         "target": ">= 2000 samples/s/core",
                         "note": f"read + decode + satmae normalise + {what}, bicubic antialias; baseline webdataset"
                                 " pipeline + direct normalise/F.interpolate"})
        verified = ShardStream(root, augment="train", shuffle_buffer=256, seed=0, verify=True)
        value = _cpu_rate(lambda: sum(1 for _ in verified), n)
        rows.append({"benchmark": "data.ShardStream train, first pass with sha256 verification", "value": round(value, 1),
                     "unit": "samples/s/core", "baseline": None, "ratio": None, "target": "-",
                     "note": "each shard hashed once per process before it is read"})
        raw = ShardStream(root, augment="none", normalize="satmae", shuffle_buffer=256, seed=0, verify=False)
        value = _cpu_rate(lambda: sum(1 for _ in raw), n)
        rows.append({"benchmark": "data.ShardStream read + decode + normalise (no resampling)", "value": round(value, 1),
                     "unit": "samples/s/core", "baseline": None, "ratio": None, "target": "-", "note": "the I/O part"})
        rows.append(_bench_whole_batches(root, n))
    rows.append(_bench_build(quick))
    return rows


def _bench_whole_batches(root: Path, n: int, workers: int = 4, batch: int = 384) -> dict:
    """What a DataLoader with ``drop_last`` gets per CPU second of its workers: each worker's stream (the worker
    emulated in this process) with ``whole_batches`` against the same stream decoding its partial last batch, which
    the DataLoader then throws away. Same delivered batches (tests/data/test_stream.py)."""
    from unittest import mock

    from geodiv.data import stream as stream_mod

    def delivered_per_cpu_s(whole: bool) -> tuple[float, int]:
        delivered, cpu = 0, 0.0
        for w in range(workers):
            info = type("WorkerInfo", (), {"id": w, "num_workers": workers})
            with mock.patch.object(stream_mod, "get_worker_info", lambda i=info: i):
                s = ShardStream(root, augment="train", size=64, shuffle_buffer=256, seed=0, verify=False,
                                whole_batches=whole)
                s.load_state_dict({"epoch": 0, "batches_done": 0, "batch_size": batch})
                t = time.process_time()
                got = sum(1 for _ in s)
                cpu += time.process_time() - t
            delivered += got - got % batch
        return delivered / cpu, delivered

    delivered_per_cpu_s(True)  # warm the caches
    values, bases = [], []
    for _ in range(5):  # interleaved repeats, medians: one pass is well under a CPU second
        (v, kept), (b, _) = delivered_per_cpu_s(True), delivered_per_cpu_s(False)
        values.append(v)
        bases.append(b)
    value, base = float(np.median(values)), float(np.median(bases))
    return {"benchmark": f"data.ShardStream whole_batches, {workers} workers x batch {batch} (drop_last)",
            "value": round(value, 1), "unit": "delivered samples/s/core", "baseline": round(base, 1),
            "ratio": round(value / base, 2), "target": "-",
            "note": f"{n} samples in shards of 500, 96 -> 64 px train crops; {kept} delivered per pass, {n - kept} in"
                    " partial batches: decoded and dropped before (baseline), not decoded now; the workers emulated"
                    " in one process"}


def _bench_build(quick: bool) -> dict:
    """Marginal cost of building: writing simulated samples vs simulating them (the catalog, drawn once per
    dataset, is a fixed cost: about 0.3 s per region for the land-cell tables of geodiv.geo)."""
    from geodiv.data.build import DatasetConfig, SimEarthSamples, _selected_catalog
    from geodiv.simearth.world import simulate_patches

    n = 32 if quick else 128
    cfg = DatasetConfig(name="bench", n=n, size=96, seed=0, shard_size=64, strategy={"kind": "global", "mode": "balanced"})
    with tempfile.TemporaryDirectory(prefix="bench_build_") as tmp:
        t = time.process_time()
        catalog = _selected_catalog(cfg, Path(tmp) / "ds")
        setup = time.process_time() - t
        for _ in simulate_patches(catalog["lat"].to_numpy()[:4], catalog["lon"].to_numpy()[:4], 0, size=96):
            pass  # warm the simulator's lazily loaded tables
        t = time.process_time()
        for _ in simulate_patches(catalog["lat"].to_numpy(), catalog["lon"].to_numpy(), 0, size=96):
            pass
        sim_rate = n / (time.process_time() - t)
        t = time.process_time()
        write_shards(SimEarthSamples(catalog, cfg), Path(tmp) / "ds", cfg.shard_size, bands=cfg.bands, size=96)
        build_rate = n / (time.process_time() - t)
    return {"benchmark": "data.build_dataset from SimEarth 96 px, 13 bands (per sample)", "value": round(build_rate, 2),
            "unit": "samples/s/core", "baseline": round(sim_rate, 2), "ratio": round(build_rate / sim_rate, 2),
            "target": "limited by the simulator (ratio near 1)",
            "note": f"baseline: simulate_patches alone at the same {n} locations; catalog setup {setup:.1f} s CPU once"}


if __name__ == "__main__":
    import json

    for row in run(quick=False):
        print(json.dumps(row))
