"""fMoW-Sentinel CSV + GeoTIFF reader (fixture: tests/fixtures/fmow_task/make_fixture.py)."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

from geodiv.errors import DataError
from geodiv.evaluate.tasks.fmow import FMOW_CLASSES
from geodiv.evaluate.tasks.registry import detect_format, load_task


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
    with rasterio.open(fmow / "train/airport/airport_0/airport_0_1.tif") as src:
        np.testing.assert_array_equal(samples[0].image, src.read())
    assert [s.continent for s in task.iter_split("test")] == ["Oceania"]


def test_unknown_category_and_missing_image(fmow):
    csv = fmow / "val.csv"
    csv.write_text(csv.read_text().replace("dam,", "spaceport,"))
    with pytest.raises(DataError, match=r"val\.csv: unknown fMoW categories spaceport"):
        load_task(fmow)
    csv.write_text(csv.read_text().replace("spaceport,", "dam,"))
    (fmow / "test/park/park_5/park_5_11.tif").unlink()
    task = load_task(fmow)
    with pytest.raises(DataError, match=r"park_5_11.*does not exist"):
        list(task.iter_split("test"))


def test_bad_polygon_names_the_row(fmow):
    csv = fmow / "train.csv"
    lines = csv.read_text().splitlines()
    lines[2] = lines[2].replace("POLYGON ((", "POLYGON ((oops ")
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"train\.csv: row 3: polygon"):
        load_task(fmow)


def test_documented_columns_rebuild_satmae_paths(tmp_path, fix):
    fmow = fix.make(tmp_path, documented=True)
    assert "image_path" not in (fmow / "train.csv").read_text().splitlines()[0]
    assert detect_format(fmow) == "fmow"
    task = load_task(fmow)
    assert [task.n(s) for s in task.splits()] == [4, 1, 1]
    sample = next(task.iter_split("test"))  # test_gt.csv -> test_gt/park/park_5/park_5_11.tif
    assert sample.key == "park_5_11" and task.classes[sample.label] == "park"
    with rasterio.open(fmow / "test_gt/park/park_5/park_5_11.tif") as src:
        np.testing.assert_array_equal(sample.image, src.read())
    _, lat, lon = fix.SITES[5]
    assert sample.lat == pytest.approx(lat, abs=1e-6) and sample.continent == "Oceania"


def test_train_and_val_only_evaluates_on_val_with_a_note(tmp_path, fix):
    from geodiv.evaluate import evaluate
    from geodiv.evaluate.tasks.fmow import VAL_AS_TEST

    fmow = fix.make(tmp_path, documented=True, splits={"train": [0, 1, 2, 3, 5], "val": [4]})
    task = load_task(fmow)
    assert task.splits() == ["train", "test"] and task.keys("test") == ["dam_4_9"]
    assert task.info["notes"] == [VAL_AS_TEST]
    config = {"random_init": {"preset": "tiny", "overrides": {"img_size": 16, "patch_size": 8}},
              "metrics": {"n_boot": 0}, "val_fraction": 0.4}
    records = evaluate(checkpoint="random", task=task, protocol="knn", config=config, seed=3)
    notes = records[0]["notes"]
    assert VAL_AS_TEST in notes and any("held out" in n and "seed 3" in n for n in notes)
    assert records[0]["n"] == 1
