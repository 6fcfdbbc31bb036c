"""MOSAIKS-style label tables with imagery from a GeoTIFF manifest or from geodiv shards."""

from __future__ import annotations

import numpy as np
import pytest

from geodiv.errors import DataError, InputError
from geodiv.evaluate.tasks import detect_format, load_task


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
