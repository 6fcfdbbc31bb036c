"""Parallel and distributed builds: shards and manifests byte-identical for any number of workers."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from geodiv.cli import main
from geodiv.data.build import build_dataset
from geodiv.data.parallel import check_parallel
from geodiv.data.shard_format import Sample
from geodiv.data.shard_reader import iter_samples
from geodiv.data.shard_writer import write_shards
from geodiv.errors import ConfigError, DataError

from .datakit import fixture_module

SMALL = {"n": 11, "size": 16, "shard_size": 3, "seed": 2, "bands": ["B2", "B4", "B8"],
         "strategy": {"kind": "global", "mode": "balanced"}}


def _digest(folder: Path) -> dict[str, str]:
    """sha256 of the manifest and of every shard (what "byte-identical" means here)."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()
            and p.suffix in (".json", ".tar")}


@pytest.fixture(scope="module")
def dask_address():
    """A small in-process Dask cluster reached over TCP, as a remote one would be."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, protocol="tcp",
                                  dashboard_address=None) as cluster:
        yield cluster.scheduler_address


def test_process_pool_build_is_byte_identical_to_one_process(tmp_path):
    one = build_dataset(SMALL, tmp_path / "one")
    two = build_dataset(SMALL, tmp_path / "two", workers=2)
    assert one == two and [s["n"] for s in two["shards"]] == [3, 3, 3, 2]
    assert _digest(tmp_path / "one") == _digest(tmp_path / "two")
    assert not list((tmp_path / "two" / ".progress" / "parts").iterdir())  # every part became a shard


def test_cli_build_with_workers_and_bad_scheduler(tmp_path, capsys):
    import yaml

    cfg = tmp_path / "ds.yaml"
    cfg.write_text(yaml.safe_dump({**SMALL, "n": 5}))
    assert main(["build", str(cfg), "--out", str(tmp_path / "two"), "--workers", "2"]) == 0
    assert "built 5 samples in 2 shards" in capsys.readouterr().out
    assert main(["build", str(cfg), "--out", str(tmp_path / "x"), "--scheduler", "myhost:8786"]) == 2
    assert "tcp://HOST:8786" in capsys.readouterr().err


def test_dask_build_is_byte_identical_and_a_suite_builds_each_dataset(tmp_path, dask_address):
    suite = {"defaults": SMALL, "datasets": {"a": {}, "b": {"strategy": {"kind": "one_hot", "continent": "Asia"}}}}
    one = build_dataset(suite, tmp_path / "one")
    dask = build_dataset(suite, tmp_path / "dask", scheduler=dask_address)
    assert one == dask
    for name in ("a", "b"):
        assert _digest(tmp_path / "one" / name) == _digest(tmp_path / "dask" / name)


class Flaky(Sequence):
    """A sequence of samples with a bad image at index 4 and a key repeated across chunks (index 7 = index 1)."""

    def __init__(self, n: int = 10, die_at: int | None = None) -> None:
        self.n, self.die_at = n, die_at

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Sample:
        if not 0 <= i < self.n:
            raise IndexError(i)
        if i == self.die_at:
            raise RuntimeError("worker lost")
        rng = np.random.default_rng(i)
        image = rng.integers(0, 5000, (2, 8, 8)).astype(np.uint16)
        if i == 4:
            image = np.full((2, 8, 8), np.nan)
        key = "k1" if i == 7 else f"k{i}"
        return Sample(key, image, {"lat": float(i), "lon": 1.0, "continent": "Europe"},
                      {"label": (rng.random((8, 8)) * 3).astype(np.uint8)})


def test_skips_and_duplicates_split_shards_as_one_process_does(tmp_path, dask_address):
    kw = {"shard_size": 3, "bands": ["B2", "B3"], "size": 8, "on_error": "skip"}
    one = write_shards(Flaky(), tmp_path / "one", **kw)
    dask = write_shards(Flaky(), tmp_path / "dask", scheduler=dask_address, **kw)
    assert one == dask and one["skipped"]["count"] == 2 and [s["n"] for s in one["shards"]] == [3, 3, 2]
    assert "NaN" in one["skipped"]["first_reasons"][0] and "duplicate" in one["skipped"]["first_reasons"][1]
    assert _digest(tmp_path / "one") == _digest(tmp_path / "dask")
    labels = [m["label"].sum() for _, _, m in iter_samples(tmp_path / "dask")]  # extra arrays survive a repack
    assert labels == [m["label"].sum() for _, _, m in iter_samples(tmp_path / "one")]
    with pytest.raises(DataError, match="sample k4: image has 128 NaN"):
        write_shards(Flaky(), tmp_path / "raise", scheduler=dask_address, **{**kw, "on_error": "raise"})


@pytest.mark.parametrize("parallel", [False, True])
def test_interrupted_build_resumes_to_the_same_shards(tmp_path, dask_address, parallel):
    kw = {"shard_size": 3, "bands": ["B2", "B3"], "size": 8, "on_error": "skip", "resume": True,
          "scheduler": dask_address if parallel else None}
    full = write_shards(Flaky(), tmp_path / "full", **{**kw, "scheduler": None})
    with pytest.raises(RuntimeError, match="worker lost"):
        write_shards(Flaky(die_at=7), tmp_path / "part", **kw)
    kept = sorted(p.name for p in (tmp_path / "part").glob("*.tar"))
    # one process closed shard 1 before item 7; in parallel, the part holding item 7's predecessors was pending
    assert len(kept) == (1 if parallel else 2) and not (tmp_path / "part" / "manifest.json").exists()
    resumed = write_shards(Flaky(), tmp_path / "part", **kw)  # k1 at item 7 is still a duplicate of shard 0's
    assert resumed == full and _digest(tmp_path / "part") == _digest(tmp_path / "full")


def test_foreign_shards_build_in_parallel(tmp_path, dask_address):
    shards = fixture_module("wds").make(tmp_path / "wds")
    cfg = {"n": 3, "size": 16, "shard_size": 1, "bands": ["B2", "B3"], "strategy": {"kind": "global"},
           "source": {"kind": "webdataset", "urls": str(shards["tif"])}}
    one = build_dataset(cfg, tmp_path / "one")
    dask = build_dataset(cfg, tmp_path / "dask", scheduler=dask_address)
    assert one == dask and _digest(tmp_path / "one") == _digest(tmp_path / "dask")


def test_bad_parallel_settings_are_config_errors():
    with pytest.raises(ConfigError, match="workers must be an integer >= 1"):
        check_parallel(0, None)
    with pytest.raises(ConfigError, match="tcp://HOST:8786"):
        check_parallel(2, "myhost:8786")


def test_stac_build_in_parallel_skips_like_one_process(tmp_path, dask_address):
    from geodiv.data.sources.stac import stac_build

    fx = fixture_module("stac").make(tmp_path / "stac")
    locs = tmp_path / "locs.csv"
    rows = [fx["inside"], fx["noasset"], fx["outside"], fx["inside"]]
    locs.write_text("id,lat,lon\n" + "".join(f"L{i},{la},{lo}\n" for i, (la, lo) in enumerate(rows)))
    cfg = {"api": str(fx["catalog"]), "collection": None, "locations": str(locs), "bands": ["B2", "B3", "B4", "B5"],
           "size": 32, "max_cloud": 20, "on_error": "skip", "shard_size": 1}
    one = stac_build(cfg, out=tmp_path / "one")
    dask = stac_build(cfg, out=tmp_path / "dask", scheduler=dask_address)  # each part opens its own search
    for m in (one, dask):
        m.pop("root")
    assert one == dask and one["n_samples"] == 2 and one["skipped"]["count"] == 2
    assert _digest(tmp_path / "one") == _digest(tmp_path / "dask")


@pytest.mark.parametrize("source", ["geotiff", "fmow"])
def test_geotiff_and_fmow_builds_in_parallel(tmp_path, source):
    if source == "geotiff":
        root = fixture_module("geotiff").make(tmp_path / "src")["tifs"]
        cfg = {"n": 2, "size": 16, "bands": ["B2", "B3", "B4"], "source": {"kind": "geotiff", "root": str(root)}}
    else:
        csv = fixture_module("fmow").make(tmp_path / "src")
        cfg = {"n": 3, "size": 16, "bands": ["B2", "B8A", "B12"], "source": {"kind": "fmow", "csv": str(csv)}}
    cfg.update(shard_size=1, strategy={"kind": "global"})
    one = build_dataset(cfg, tmp_path / "one")
    two = build_dataset(cfg, tmp_path / "two", workers=2)
    assert one == two and len(two["shards"]) == cfg["n"]
    assert _digest(tmp_path / "one") == _digest(tmp_path / "two")
    assert (tmp_path / "two" / ".progress" / "parts").is_dir()  # made by the process pool's workers
    assert not (tmp_path / "one" / ".progress" / "parts").exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
@pytest.mark.parametrize("initializer", ["die_with_parent", "_one_thread"])
def test_pool_workers_end_when_the_process_that_started_them_is_killed(tmp_path, initializer):
    # A study or build killed by a signal must not leave a worker running its step on: the parent starts a worker
    # on a 60-s task and is SIGKILLed (no cleanup runs); its worker must be gone within seconds.
    parent = subprocess.Popen([sys.executable, "-c", f"""
import multiprocessing, os, sys, time
from concurrent.futures import ProcessPoolExecutor
from geodiv.data.parallel import {initializer}
pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer={initializer},
                           initargs=(os.getpid(),))
print(pool.submit(os.getpid).result(), flush=True)
pool.submit(time.sleep, 60)
time.sleep(60)
"""], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)  # stderr: the killed parent's leak warnings
    worker = int(parent.stdout.readline())
    assert _alive(worker)
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 15
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(worker)


def _alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting for a reaper)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")
