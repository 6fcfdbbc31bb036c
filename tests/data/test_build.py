import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from geodiv.cli import main
from geodiv.data import build as build_mod
from geodiv.data.build import build_dataset, load_dataset_configs
from geodiv.data.catalog import assert_disjoint
from geodiv.data.shard_reader import iter_samples, verify_dataset
from geodiv.errors import DataError

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "datasets"
SMALL = {"n": 9, "size": 16, "shard_size": 4, "seed": 5, "bands": ["B2", "B3", "B4", "B8"]}


def test_one_hot_build_writes_shards_manifest_and_catalog(tmp_path):
    m = build_dataset({**SMALL, "name": "oceania", "strategy": {"kind": "one_hot", "continent": "Oceania"}},
                      tmp_path / "oc")
    assert m["n_samples"] == 9 and [s["n"] for s in m["shards"]] == [4, 4, 1]
    assert m["counts"]["continent"] == {"Oceania": 9}
    assert m["bands"] == ["B2", "B3", "B4", "B8"] and m["config"]["strategy"]["continent"] == "Oceania"
    assert verify_dataset(tmp_path / "oc") == {"n_samples": 9, "n_shards": 3}
    key, image, meta = next(iter_samples(tmp_path / "oc"))
    assert image.shape == (4, 16, 16) and image.dtype == np.uint16 and image.max() > 0
    assert meta["continent"] == "Oceania" and {"lat", "lon", "biome", "landcover", "climate"} <= set(meta)
    assert (tmp_path / "oc" / "catalog.parquet").exists()


def test_interrupted_build_resumes_to_the_same_manifest(tmp_path, monkeypatch):
    cfg = {**SMALL, "name": "g", "strategy": {"kind": "global", "mode": "balanced"}, "n": 12}
    full = build_dataset(cfg, tmp_path / "full")
    real = build_mod.SimEarthSamples._make
    calls = {"n": 0}

    def dying(self, a, b):
        calls["n"] += 1
        if a >= 8:  # the third shard of 4: two finished shards, then the build dies
            raise KeyboardInterrupt
        return real(self, a, b)

    monkeypatch.setattr(build_mod.SimEarthSamples, "_make", dying)
    monkeypatch.setattr(build_mod.SimEarthSamples, "__init__", _small_chunks(build_mod.SimEarthSamples.__init__))
    with pytest.raises(KeyboardInterrupt):
        build_dataset(cfg, tmp_path / "part")
    assert sorted(p.name for p in (tmp_path / "part").glob("*.tar")) == ["shard-000000.tar", "shard-000001.tar"]
    monkeypatch.setattr(build_mod.SimEarthSamples, "_make", real)
    resumed = build_dataset(cfg, tmp_path / "part")
    assert json.dumps(resumed, sort_keys=True) == json.dumps(full, sort_keys=True)


def _small_chunks(init):
    def wrapped(self, catalog, cfg, chunk=64):
        init(self, catalog, cfg, chunk=4)
    return wrapped


def test_exclusions_keep_pretraining_and_downstream_apart(tmp_path):
    down = build_dataset({**SMALL, "name": "down", "strategy": {"kind": "one_hot", "continent": "Europe"}},
                         tmp_path / "down")
    assert down["n_samples"] == 9
    # same seed and strategy would draw the same places; the exclusion forces different ones
    cfg = {**SMALL, "name": "pre", "strategy": {"kind": "one_hot", "continent": "Europe"},
           "exclude": [str(tmp_path / "down")], "min_km": 5.0, "margin": 1.0}
    build_dataset(cfg, tmp_path / "pre")
    a = [(m["lat"], m["lon"]) for _, _, m in iter_samples(tmp_path / "down")]
    b = [(m["lat"], m["lon"]) for _, _, m in iter_samples(tmp_path / "pre")]
    assert_disjoint(*np.array(a).T, *np.array(b).T, min_km=5.0)


def test_paper_suite_defines_the_seven_equal_datasets():
    configs = load_dataset_configs(CONFIGS / "paper.yaml")
    assert len(configs) == 7
    assert {c.n for c in configs.values()} == {700_000}
    kinds = sorted((c.strategy.kind, getattr(c.strategy, "continent", None)) for c in configs.values())
    assert kinds == [("global", None)] + [("one_hot", c) for c in
                                          ("Africa", "Asia", "Europe", "North America", "Oceania", "South America")]
    assert len({c.seed for c in configs.values()}) == 1


def test_every_example_config_validates():
    for path in sorted(CONFIGS.glob("*.yaml")):
        if "stac" in path.name:
            continue
        assert load_dataset_configs(path), path


def test_cli_build_suite_only_and_inspect(tmp_path, capsys):
    suite = {"defaults": {**SMALL, "n": 4}, "datasets": {
        "europe": {"strategy": {"kind": "one_hot", "continent": "Europe"}},
        "africa": {"strategy": {"kind": "one_hot", "continent": "Africa"}}}}
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(suite))
    assert main(["build", str(tmp_path / "suite.yaml"), "--out", str(tmp_path / "out"), "--only", "africa",
                 "--set", "n=3"]) == 0
    assert "built 3 samples" in capsys.readouterr().out
    assert not (tmp_path / "out" / "europe").exists()
    assert main(["inspect", str(tmp_path / "out" / "africa")]) == 0
    text = capsys.readouterr().out
    assert "Africa" in text and "100.0 %" in text
    assert (tmp_path / "out" / "africa" / "inspect" / "map.png").stat().st_size > 1000
    assert (tmp_path / "out" / "africa" / "inspect" / "examples.png").exists()
    # a different config into the same folder is refused
    assert main(["build", str(tmp_path / "suite.yaml"), "--out", str(tmp_path / "out"), "--only", "africa"]) == 2


def test_build_refuses_impossible_sizes(tmp_path):
    from geodiv.data.build import DatasetConfig, candidate_catalog
    from geodiv.data.strategies import select

    cfg = DatasetConfig(**{**SMALL, "strategy": {"kind": "one_hot", "continent": "Europe"}})
    cat = candidate_catalog(cfg)
    with pytest.raises(DataError, match="the dataset needs"):
        select(cfg.strategy, cat, len(cat) + 1, seed=0)


def test_rerun_build_rebuilds_a_corrupt_shard(tmp_path):
    out = tmp_path / "oc"
    cfg = {**SMALL, "name": "oceania", "strategy": {"kind": "one_hot", "continent": "Oceania"}}
    first = build_dataset(cfg, out)
    good = {p.name: p.read_bytes() for p in out.glob("shard-*.tar")}
    shard = out / "shard-000001.tar"
    data = bytearray(shard.read_bytes())
    data[700] ^= 0xFF  # a flipped byte inside the first sample's image
    shard.write_bytes(bytes(data))
    (out / ".shard-000002.tar.tmp-d3ad_run.tar").write_bytes(b"left by a killed run")
    again = build_dataset(cfg, out)
    assert again == first
    assert {p.name: p.read_bytes() for p in out.glob("shard-*.tar")} == good
    assert verify_dataset(out)["n_samples"] == 9
    assert not list(out.glob(".*.tmp-*"))  # the dead run's temp file was swept


def test_build_into_a_folder_another_build_holds_stops(tmp_path, lock_holder, capsys):
    holder = lock_holder(tmp_path / "oc")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({**SMALL, "name": "oceania", "strategy": {"kind": "one_hot", "continent": "Oceania"}}))
    assert main(["build", str(cfg), "--out", str(tmp_path / "oc")]) == 2
    err = capsys.readouterr().err
    assert f"pid {holder.pid}" in err and "--wait-lock" in err
    assert sorted(p.name for p in (tmp_path / "oc").iterdir()) == [".geodiv.lock"]


def test_failed_build_leaves_no_empty_folder(tmp_path):
    cfg = {**SMALL, "name": "oceania", "strategy": {"kind": "one_hot", "continent": "Oceania"},
           "exclude": [str(tmp_path / "missing.parquet")]}
    with pytest.raises(Exception, match="missing.parquet"):
        build_dataset(cfg, tmp_path / "new")
    assert not (tmp_path / "new").exists()


def test_build_with_wait_lock_waits_for_the_holder(tmp_path, lock_holder, monkeypatch, capsys):
    import subprocess
    import sys

    from geodiv.atomic import WAIT_ENV

    monkeypatch.setenv(WAIT_ENV, "0")  # restored after the test (the CLI sets it for its process)
    holder = lock_holder(tmp_path / "oc")
    killer = subprocess.Popen([sys.executable, "-c", f"import os, time; time.sleep(1); os.kill({holder.pid}, 9)"])
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({**SMALL, "name": "oceania", "strategy": {"kind": "one_hot", "continent": "Oceania"}}))
    assert main(["build", str(cfg), "--out", str(tmp_path / "oc"), "--wait-lock"]) == 0
    killer.wait()
    assert f"in use by pid {holder.pid}" in capsys.readouterr().err  # it said whom it waited for
    assert verify_dataset(tmp_path / "oc")["n_samples"] == 9
