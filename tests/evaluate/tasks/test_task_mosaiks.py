"""MOSAIKS-style label tables with imagery from a GeoTIFF manifest or from geodiv shards."""

from __future__ import annotations

import numpy as np
import pytest

from geodiv.errors import DataError, InputError
from geodiv.evaluate.tasks.registry import detect_format, load_task


@pytest.fixture
def fix(fixture_writer):
    return fixture_writer("mosaiks")


def test_table_with_geotiff_manifest(tmp_path, fix):
    table = fix.make_table(tmp_path)
    images = fix.make_geotiffs(tmp_path)
    assert detect_format(table) == "mosaiks"
    with pytest.raises(InputError, match="without imagery"):
        load_task(table)
    task = load_task(table, imagery=str(images), file_bands=["B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12"],
                     label_transform="log1p")
    assert task.type == "regression" and task.source == "mosaiks" and task.has_location
    assert sum(task.n(s) for s in task.splits()) == len(fix.CELLS) and task.n("val") == 1
    values = {cid: (lat, lon, v) for cid, lat, lon, v in fix.CELLS}
    for split in task.splits():
        for s in task.iter_split(split):
            lat, lon, v = values[s.key]
            assert s.label == pytest.approx(np.log1p(v)) and (s.lat, s.lon) == (lat, lon)
            assert s.continent == "North America" and s.image.shape == (10, 8, 8)


def test_table_with_shards_matched_by_location(tmp_path, fix):
    table = fix.make_table(tmp_path)
    shards = fix.make_shards(tmp_path)
    task = load_task(table, imagery=str(shards), split_fractions=(1.0, 0.0, 0.0))
    # every cell but the last has a shard sample 0.002 deg away; the far-away sample matches nothing
    assert task.n("train") == len(fix.CELLS) - 1 and task.info["matched"] == len(fix.CELLS) - 1
    values = {f"s_{cid}": v for cid, _lat, _lon, v in fix.CELLS}
    got = {s.key: s.label for s in task.iter_split("train")}
    assert got == {k: values[k] for k in got} and "far_away" not in got
    assert task.bands == ["B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12"]
    with pytest.raises(DataError, match="within 0.01 km"):
        load_task(table, imagery=str(shards), max_distance_km=0.01).n("train")


def test_label_column_must_be_clear(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("lat,lon,a,b\n1,2,3,4\n")
    with pytest.raises(InputError, match="label_column"):
        load_task(path, imagery=str(path))


def test_cli_evaluates_a_table_with_imagery_through_task_options(tmp_path, fix):
    """`geodiv evaluate --task table.csv --task-option imagery=...` end to end; a bad option is refused."""
    import json

    from geodiv.cli import main

    table = fix.make_table(tmp_path)
    shards = fix.make_shards(tmp_path)
    config = tmp_path / "eval.yaml"
    config.write_text("random_init: {preset: tiny, overrides: {img_size: 16, patch_size: 8}}\n"
                      "metrics: {n_boot: 0}\nknn: {k: [2]}\n")
    out = tmp_path / "res.json"
    argv = ["evaluate", "--checkpoint", "random", "--task", str(table), "--protocol", "knn", "--out", str(out),
            "--config", str(config), "--task-option", f"imagery={shards}",
            "--task-option", "split_fractions=[0.5, 0.2, 0.3]", "--task-option", "label_transform=log1p"]
    assert main(argv) == 0
    records = json.loads(out.read_text())
    assert {r["task"] for r in records} == {"mosaiks-population"} and {r["metric"] for r in records} >= {"r2"}
    # 9 matched cells: round(0.3 * 9) = 3 test cells, round(0.2 * 9) = 2 val cells
    assert {r["n"] for r in records} == {3} and records[0]["n_train"] == 6
    assert main(argv[:-2] + ["--task-option", "label_transfrom=log1p"]) == 2  # typo: the reader names its options
