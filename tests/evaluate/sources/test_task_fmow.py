"""fMoW-Sentinel CSV + GeoTIFF reader (fixture: tests/fixtures/fmow_task/make_fixture.py)."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

from geodiv.errors import DataError
from geodiv.evaluate.sources.fmow import FMOW_CLASSES
from geodiv.evaluate.tasks import detect_format, load_task


@pytest.fixture
def fix(fixture_writer):
    return fixture_writer("fmow_task")


@pytest.fixture
def fmow(tmp_path, fix):
    return fix.make(tmp_path)


def test_classes():
    assert len(FMOW_CLASSES) == 62 and list(FMOW_CLASSES) == sorted(FMOW_CLASSES)


def test_reads_splits_images_and_polygon_locations(fmow, fix):
    assert detect_format(fmow) == "fmow" and detect_format(fmow / "val.csv") == "fmow"
    task = load_task(fmow / "train.csv")  # siblings val.csv / test_gt.csv are picked up
    assert task.type == "classification" and task.source == "fmow" and len(task.classes) == 62
    assert task.splits() == ["train", "val", "test"] and [task.n(s) for s in task.splits()] == [4, 1, 1]
    assert task.has_location and len(task.bands) == 13
    samples = list(task.iter_split("train"))
    names = [fix.SITES[i][0] for i in fix.SPLITS["train"]]
    assert [task.classes[s.label] for s in samples] == names
    for s, i in zip(samples, fix.SPLITS["train"]):
        _, lat, lon = fix.SITES[i]
        assert s.lat == pytest.approx(lat, abs=1e-6) and s.lon == pytest.approx(lon, abs=1e-6)
    assert [s.continent for s in samples] == ["Europe", "South America", "Asia", "North America"]
    # the '/home/user/fmow-sentinel/' prefix in image_path is dropped to find the file under the CSV folder
    with rasterio.open(fmow / "train/airport/airport_0/airport_0_0.tif") as src:
        np.testing.assert_array_equal(samples[0].image, src.read())
    assert [s.continent for s in task.iter_split("test")] == ["Oceania"]


def test_unknown_category_and_missing_image(fmow):
    csv = fmow / "val.csv"
    csv.write_text(csv.read_text().replace("dam,", "spaceport,"))
    with pytest.raises(DataError, match=r"val\.csv: unknown fMoW categories spaceport"):
        load_task(fmow)
    csv.write_text(csv.read_text().replace("spaceport,", "dam,"))
    (fmow / "test/park/park_5/park_5_0.tif").unlink()
    task = load_task(fmow)
    with pytest.raises(DataError, match=r"park_5_0.*does not exist"):
        list(task.iter_split("test"))


def test_bad_polygon_names_the_row(fmow):
    csv = fmow / "train.csv"
    lines = csv.read_text().splitlines()
    lines[2] = lines[2].replace("POLYGON ((", "POLYGON ((oops ")
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"train\.csv: row 3: polygon"):
        load_task(fmow)
