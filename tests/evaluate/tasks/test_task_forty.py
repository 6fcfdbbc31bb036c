"""ForTy TFRecords read without TensorFlow (fixture: tests/fixtures/forty/make_fixture.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from geodiv.errors import DataError, InputError
from geodiv.evaluate.tasks.base import IGNORE_INDEX
from geodiv.evaluate.tasks.registry import detect_format, load_task


@pytest.fixture
def fix(fixture_writer):
    return fixture_writer("forty")


@pytest.mark.parametrize("bytes_encoding", [False, True])
def test_reads_records_seasons_masks_and_locations(tmp_path, fix, bytes_encoding):
    folder, written = fix.make(tmp_path, bytes_encoding=bytes_encoding)
    assert detect_format(folder) == "forty"
    task = load_task(folder, season=2)
    assert task.type == "segmentation" and len(task.classes) == 8 and task.has_location
    assert task.bands == ["B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12"]
    assert task.splits() == ["train", "val", "test"] and [task.n(s) for s in task.splits()] == [3, 1, 2]
    samples = list(task.iter_split("train"))
    s2, labels = written["forty_v1-train.tfrecord-00000-of-00001"][1]
    s = samples[1]
    np.testing.assert_array_equal(s.image, s2[2].transpose(2, 0, 1))  # season 2, channels first
    expected = labels.copy()
    expected[labels == 8] = IGNORE_INDEX  # code 8 = unknown
    np.testing.assert_array_equal(s.label, expected)
    assert (s.lat, s.lon) == pytest.approx(fix.LOCATIONS[1]) and s.continent == "South America"
    assert samples[0].continent == "Europe"


def test_default_is_median_of_seasons(tmp_path, fix):
    folder, written = fix.make(tmp_path)
    s = next(load_task(folder).iter_split("val"))
    s2, _ = written["forty_v1-validation.tfrecord-00000-of-00001"][0]
    np.testing.assert_allclose(s.image, np.median(s2, axis=0).transpose(2, 0, 1))


def test_pool_without_split_names_and_few_shot(tmp_path, fix):
    folder, _ = fix.make(tmp_path, per_split={"all": 10})
    (folder / "forty_v1-all.tfrecord-00000-of-00001").rename(folder / "forty_part0.tfrecord")
    task = load_task(folder, split_fractions=(0.6, 0.2, 0.2), seed=1)
    assert [task.n(s) for s in task.splits()] == [6, 2, 2]
    keys = {s: {x.key for x in task.iter_split(s)} for s in task.splits()}
    assert not (keys["train"] & keys["test"]) and sum(map(len, keys.values())) == 10
    few = load_task(folder, split_fractions=(0.6, 0.2, 0.2), seed=1, train_fraction=0.5)
    assert few.n("train") == 3 and {x.key for x in few.iter_split("train")} <= keys["train"]


def test_configurable_layout_and_clear_errors(tmp_path, fix):
    folder, _ = fix.make(tmp_path)
    with pytest.raises(DataError, match=r"record 0: feature 'sentinel2' is missing.*layout"):
        list(load_task(folder, image_key="sentinel2").iter_split("train"))
    with pytest.raises(DataError, match=r"expected 4 seasons x 8 x 8 x 4 bands"):
        list(load_task(folder, image_bands=["B2", "B3", "B4", "B8"]).iter_split("train"))
    with pytest.raises(DataError, match=r"label code\(s\) \[8\]"):
        list(load_task(folder, ignore_codes=[255]).iter_split("train"))
    truncated = folder / "forty_v1-test.tfrecord-00000-of-00001"
    truncated.write_bytes(truncated.read_bytes()[:-10])
    with pytest.raises(DataError, match="truncated TFRecord"):
        load_task(folder).n("test")


# -- records written by tensorflow-datasets' own encoder (tests/fixtures/forty_tfds/write_with_tfds.py) --------
TFDS = Path(__file__).resolve().parents[2] / "fixtures" / "forty_tfds"


def _tfds_copy(tmp_path, encoding, with_features_json=True):
    folder = tmp_path / encoding
    shutil.copytree(TFDS / encoding, folder)
    if not with_features_json:
        (folder / "features.json").unlink()
    return folder


@pytest.mark.parametrize("encoding,convention", [("none", "0-8"), ("bytes", "1-9"), ("zlib", "1-9")])
@pytest.mark.parametrize("with_features_json", [True, False])
def test_tfds_encodings_and_class_conventions(tmp_path, encoding, convention, with_features_json):
    exp = np.load(TFDS / "expected.npz")
    folder = _tfds_copy(tmp_path, encoding, with_features_json)
    task = load_task(folder, season=3)
    assert task.info["class_convention"].startswith(convention)
    assert [task.n(s) for s in task.splits()] == [3, 1, 2]
    first = 0 if convention == "0-8" else 1
    for split, file in (("train", "train"), ("val", "validation"), ("test", "test")):
        for j, s in enumerate(task.iter_split(split)):
            key = f"{encoding}/forty_v1-{file}.tfrecord-00000-of-00001/{j}"
            np.testing.assert_array_equal(s.image, exp[f"{key}/s2"][3].transpose(2, 0, 1))
            codes = exp[f"{key}/labels"].astype(int)
            expected = np.where(codes == first + 8, IGNORE_INDEX, codes - first)  # unknown -> ignored
            np.testing.assert_array_equal(s.label, expected)
            # TFDS stores float64 scalars in a float_list: float32 precision is what the files hold
            assert (s.lat, s.lon) == tuple(exp[f"{key}/latlon"].astype(np.float32).astype(float))


def test_tfds_wrong_convention_or_encoding_is_a_clear_error(tmp_path):
    zlib_dir = _tfds_copy(tmp_path, "zlib", with_features_json=False)
    with pytest.raises(DataError, match=r"record 0: label code\(s\) \[9\] are outside the class-code convention 0-8"):
        list(load_task(zlib_dir, class_convention="0-8").iter_split("train"))
    none_dir = _tfds_copy(tmp_path, "none")
    with pytest.raises(DataError, match=r"label code\(s\) \[0\] are outside the class-code convention 1-9"):
        list(load_task(none_dir, class_convention="1-9").iter_split("train"))
    with pytest.raises(DataError, match=r"not a whole number|not a square mask"):
        list(load_task(zlib_dir, encoding="bytes", class_convention="1-9").iter_split("train"))


def test_convention_that_labels_cannot_tell_asks_for_configuration(tmp_path, fix):
    folder, _ = fix.make(tmp_path)
    for path in folder.glob("*.tfrecord*"):  # rewrite the labels with codes 1..8 only
        path.unlink()
    import tfrecord

    writer = tfrecord.TFRecordWriter(str(folder / "forty_v1-train.tfrecord-00000-of-00001"))
    writer.write({"id": (0, "int"), "lat": (1.0, "float"), "lon": (2.0, "float"),
                  "s2": (np.zeros(4 * 8 * 8 * 10, np.float32).tobytes(), "byte"),
                  "segmentation_labels": ((np.arange(64) % 8 + 1).tolist(), "int")})
    writer.close()
    with pytest.raises(InputError, match="class_convention='1-9'"):
        load_task(folder)
    task = load_task(folder, class_convention="1-9")
    assert np.unique(next(task.iter_split("all" if "all" in task.splits() else "train")).label).tolist() == list(range(8))
