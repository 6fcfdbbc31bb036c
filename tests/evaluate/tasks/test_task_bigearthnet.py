"""BigEarthNet-S2 patch folders (fixture: tests/fixtures/bigearthnet_task/make_fixture.py; the real example
patches from bigearthnet-common are used too when tests/fixtures/bigearthnet/ holds them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

from geodiv.errors import DataError, InputError
from geodiv.evaluate.tasks.bigearthnet import CLASSES_19, CLASSES_43
from geodiv.evaluate.tasks.registry import detect_format, load_task

REAL = Path(__file__).resolve().parents[2] / "fixtures" / "bigearthnet"


@pytest.fixture
def ben(tmp_path, fixture_writer):
    return fixture_writer("bigearthnet_task").make(tmp_path)


def test_nomenclatures():
    assert len(CLASSES_43) == 43 and len(CLASSES_19) == 19


def test_reads_patches_labels_and_location(ben):
    assert detect_format(ben) == "bigearthnet"
    task = load_task(ben)
    assert task.type == "multilabel" and task.classes == list(CLASSES_19) and task.has_location
    assert task.bands == ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B11", "B12"]
    assert [task.n(s) for s in task.splits()] == [2, 1, 1]
    first, second = list(task.iter_split("train"))
    assert first.image.shape == (12, 12, 12) and first.image.dtype == np.uint16
    with rasterio.open(ben / first.key / f"{first.key}_B02.tif") as src:
        np.testing.assert_array_equal(first.image[1], src.read(1))
    on = [task.classes[i] for i in np.flatnonzero(first.label)]
    assert on == ["Arable land", "Pastures"]
    assert sorted(task.classes[i] for i in np.flatnonzero(second.label)) == [
        "Coniferous forest", "Inland waters", "Mixed forest"]
    assert first.continent == "Europe" and 44 < first.lat < 50 and 9 < first.lon < 15
    # "Airports" has no BigEarthNet-19 class: an all-zero vector; in the 43-class nomenclature it is set
    airport = next(load_task(ben).iter_split("test"))
    assert airport.label.sum() == 0
    airport43 = next(load_task(ben, nomenclature=43).iter_split("test"))
    assert [CLASSES_43[i] for i in np.flatnonzero(airport43.label)] == ["Airports"]


def test_random_splits_without_split_files(tmp_path, fixture_writer):
    folder = fixture_writer("bigearthnet_task").make(tmp_path, with_splits=False)
    task = load_task(folder, split_fractions=(0.5, 0.25, 0.25))
    assert [task.n(s) for s in task.splits()] == [2, 1, 1]


def test_missing_band_file(ben):
    task = load_task(ben)
    key = task.keys("val")[0]
    (ben / key / f"{key}_B8A.tif").unlink()
    with pytest.raises(DataError, match=rf"{key}_B8A\.tif does not exist"):
        list(task.iter_split("val"))


@pytest.mark.skipif(not any(REAL.glob("*/*_labels_metadata.json")), reason="real example patches not present")
def test_real_example_patches():
    """Real BigEarthNet patches (cropped to 48 x 48 px by tests/fixtures/bigearthnet/make_fixture.py)."""
    import json

    task = load_task(REAL, nomenclature=43, split_fractions=(0.5, 0.0, 0.5))
    for split in task.splits():
        for s in task.iter_split(split):
            meta = json.loads((REAL / s.key / f"{s.key}_labels_metadata.json").read_text())
            assert s.image.shape == (12, 48, 48) and s.continent == "Europe"
            assert sorted(CLASSES_43[i] for i in np.flatnonzero(s.label)) == sorted(meta["labels"])
            assert 0 < float(s.image[1].mean()) < 10000  # B2 reflectance x 10000


def test_bigearthnet_v2_reben_metadata_parquet_and_tile_tree(tmp_path, fixture_writer):
    import pandas as pd

    fix = fixture_writer("bigearthnet_task")
    root = fix.make_v2(tmp_path)
    assert detect_format(root) == "bigearthnet" and detect_format(root / "metadata.parquet") == "bigearthnet"
    task = load_task(root)
    assert task.info["version"] == "2.0" and task.classes == list(CLASSES_19) and task.has_location
    meta = pd.read_parquet(root / "metadata.parquet")
    expected_splits = {s: list(meta.loc[meta["split"] == v, "patch_id"])
                       for s, v in (("train", "train"), ("val", "validation"), ("test", "test"))}
    assert {s: task.keys(s) for s in task.splits()} == expected_splits
    for split in task.splits():
        for s in task.iter_split(split):
            labels = list(meta.set_index("patch_id").loc[s.key, "labels"])
            assert sorted(task.classes[i] for i in np.flatnonzero(s.label)) == sorted(labels)
            tile = "_".join(s.key.split("_")[:-2])
            with rasterio.open(root / "BigEarthNet-S2" / tile / s.key / f"{s.key}_B8A.tif") as src:
                b8a = src.read(1)
            assert s.image.shape == (12, 12, 12) and b8a.shape == (6, 6)  # 20 m band onto the 10 m grid
            with rasterio.open(root / "BigEarthNet-S2" / tile / s.key / f"{s.key}_B02.tif") as src:
                np.testing.assert_array_equal(s.image[1], src.read(1))
            assert s.continent == "Europe"
    with pytest.raises(InputError, match="19-class nomenclature only"):
        load_task(root, nomenclature=43)


def test_unknown_layout_error_lists_formats_and_versions(tmp_path):
    (tmp_path / "patch").mkdir()
    (tmp_path / "patch" / "patch_B02.tif").write_bytes(b"")
    with pytest.raises(InputError) as err:
        detect_format(tmp_path)
    text = str(err.value)
    for fact in ("BigEarthNet-S2 v1.0", "v2.0 (reBEN)", "GEO-Bench v1", "ForTy v1", "fMoW-Sentinel"):
        assert fact in text
