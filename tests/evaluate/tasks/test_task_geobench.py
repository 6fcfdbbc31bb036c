"""GEO-Bench v1 task folders (fixtures written in the real format by tests/fixtures/geobench/make_fixture.py)."""

from __future__ import annotations

import json
import os
import pickle

import h5py
import numpy as np
import pytest

from geodiv.errors import DataError, InputError, UnsafeCheckpointError
from geodiv.evaluate.tasks.registry import detect_format, load_task


def _raw_bands(path, names):
    with h5py.File(path, "r") as fp:
        return [np.asarray(fp[n]) for n in names]


def test_classification_task_maps_bands_labels_and_partitions(geobench_tasks):
    folder = geobench_tasks["classification"]
    assert detect_format(folder) == "geobench"
    task = load_task(folder)
    assert (task.name, task.type, task.source) == ("m-eurosat", "classification", "geobench")
    assert task.classes[:2] == ["Annual Crop", "Forest"] and len(task.classes) == 10
    assert task.bands == ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12"]
    assert task.splits() == ["train", "val", "test"]
    partition = json.loads((folder / "default_partition.json").read_text())
    assert [task.n(s) for s in task.splits()] == [len(partition[s]) for s in ("train", "valid", "test")]
    samples = list(task.iter_split("val"))
    assert [s.key for s in samples] == partition["valid"]
    first = samples[0]
    raw = _raw_bands(folder / f"{first.key}.hdf5", ["02 - Blue", "08A - Vegetation Red Edge", "01 - Coastal aerosol"])
    assert first.image.shape == (13, 8, 8) and first.image.dtype == np.int16
    np.testing.assert_array_equal(first.image[1], raw[0])  # "02 - Blue" -> B2
    np.testing.assert_array_equal(first.image[8], raw[1])  # "08A - ..." -> B8A
    # the 60 m band is stored at 4 x 4 and brought onto the 8 x 8 grid
    assert raw[2].shape == (4, 4)
    assert abs(float(first.image[0].mean()) - float(raw[2].mean())) < 0.05 * float(raw[2].mean()) + 1
    # labels come from the pickled metadata: the fixture writes label = index % 10
    assert [s.label for s in samples] == [6, 7]
    # the bands' transform (UTM 33N, corner 500000 E, 5000000 N, 10 m) puts the centre of the 8 x 8 grid here
    assert task.has_location and first.continent == "Europe"
    assert first.lat == pytest.approx(45.1533, abs=1e-3) and first.lon == pytest.approx(15.0003, abs=1e-3)
    stats = task.info["band_stats"]
    assert set(stats) == set(task.bands) and stats["B2"]["mean"] > 0


def test_few_shot_uses_geobench_partition_file(geobench_tasks):
    folder = geobench_tasks["classification"]
    few = json.loads((folder / "0.50x_train_partition.json").read_text())
    task = load_task(folder, train_fraction=0.5)
    assert task.info["partition"] == "0.50x_train"
    assert [s.key for s in task.iter_split("train")] == few["train"]
    # a fraction without its own partition file: a seeded subset of the default train split
    other = load_task(folder, train_fraction=0.34, seed=3)
    keys = [s.key for s in other.iter_split("train")]
    assert len(keys) == 2 and set(keys) <= set(json.loads((folder / "default_partition.json").read_text())["train"])
    assert keys == [s.key for s in load_task(folder, train_fraction=0.34, seed=3).iter_split("train")]


def test_multilabel_and_segmentation(geobench_tasks):
    ml = load_task(geobench_tasks["multilabel"])
    assert ml.type == "multilabel" and len(ml.classes) == 43 and "B10" not in ml.bands and len(ml.bands) == 12
    sample = next(ml.iter_split("train"))
    assert sample.label.shape == (43,) and sample.label.dtype == np.float32
    assert set(np.unique(sample.label)) <= {0.0, 1.0}

    seg = load_task(geobench_tasks["segmentation"])
    assert seg.type == "segmentation" and seg.classes[1] == "well-managed plantation"
    assert seg.info["dropped_bands"] == ["01 - VH.Real"]  # Sentinel-1 band is not a Sentinel-2 band
    s = next(seg.iter_split("test"))
    with h5py.File(geobench_tasks["segmentation"] / f"{s.key}.hdf5", "r") as fp:
        np.testing.assert_array_equal(s.label, np.asarray(fp["label"]))
    assert s.label.dtype == np.uint8 and s.image.shape == (13, 8, 8)


def test_band_selection_and_mean_fill(geobench_tasks):
    task = load_task(geobench_tasks["multilabel"], bands=["B2", "B3", "B4", "B10"], fill_missing_bands="mean")
    assert task.bands == ["B2", "B3", "B4", "B10"] and task.filled_bands == ["B10"]
    s = next(task.iter_split("train"))
    from geodiv.bands import S2_BANDS, SATMAE_MEAN

    assert np.all(s.image[3] == round(SATMAE_MEAN[S2_BANDS.index("B10")]))
    with pytest.raises(InputError, match=r"lacks band\(s\) B10.*fill_missing_bands='mean'"):
        load_task(geobench_tasks["multilabel"], bands=["B2", "B10"])


def test_location_table_enables_continents(geobench_tasks, tmp_path):
    folder = geobench_tasks["segmentation"]  # files without band transform/CRS
    table = tmp_path / "locations.csv"
    keys = json.loads((folder / "default_partition.json").read_text())["test"]
    table.write_text("id,lat,lon\n" + f"{keys[0]},48.85,2.35\n")
    task = load_task(folder)
    with pytest.raises(InputError, match="no sample locations.*locations="):
        task.require_location()
    located = load_task(folder, locations=str(table))
    assert located.has_location
    located.require_location()
    got = [(s.key, s.lat, s.continent) for s in located.iter_split("test")]
    assert got == [(keys[0], 48.85, "Europe")]


def test_malicious_pickle_in_hdf5_attribute_is_refused(geobench_tasks, tmp_path):
    folder = geobench_tasks["classification"]
    victim = json.loads((folder / "default_partition.json").read_text())["test"][0]
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    with h5py.File(folder / f"{victim}.hdf5", "a") as fp:
        fp.attrs["pickle"] = str(pickle.dumps({"label": Exploit(), "bands_order": []}))
    task = load_task(folder)
    with pytest.raises(UnsafeCheckpointError, match=rf"{victim}\.hdf5.*system"):
        list(task.iter_split("test"))
    assert not marker.exists()


def test_malicious_task_specs_is_refused(geobench_tasks):
    folder = geobench_tasks["segmentation"]
    (folder / "task_specs.pkl").write_bytes(b"cos\nsystem\n(S'echo hi'\ntR.")
    with pytest.raises(UnsafeCheckpointError, match=r"task_specs\.pkl.*os\.system"):
        load_task(folder)


def test_missing_partition_file(geobench_tasks):
    folder = geobench_tasks["multilabel"]
    (folder / "default_partition.json").unlink()
    (folder / "original_partition.json").unlink()
    with pytest.raises(DataError, match=r"default_partition\.json is missing.*resplit=True"):
        load_task(folder)
    task = load_task(folder, resplit=True, split_fractions=(0.5, 0.25, 0.25))
    assert sum(task.n(s) for s in task.splits()) == 4 and task.n("train") == 2


def test_partition_listing_a_missing_sample(geobench_tasks):
    folder = geobench_tasks["segmentation"]
    name = json.loads((folder / "default_partition.json").read_text())["train"][0]
    (folder / f"{name}.hdf5").unlink()
    with pytest.raises(DataError, match=rf"partition\.json: split 'train' lists 1 sample.*{name}\.hdf5"):
        load_task(folder).n("train")


def test_label_count_mismatch_names_file_and_sample(geobench_tasks):
    folder = geobench_tasks["multilabel"]
    name = json.loads((folder / "default_partition.json").read_text())["train"][0]
    path = folder / f"{name}.hdf5"
    with h5py.File(path, "a") as fp:
        from geodiv.evaluate.tasks._unpickle import pickle_bytes_from_attr, safe_loads

        attrs = safe_loads(pickle_bytes_from_attr(fp.attrs["pickle"], what="t"), what="t")
        # keep the records out of the rewritten pickle: only what the reader needs
        attrs = {"label": np.zeros(19, dtype=np.int64), "bands_order": list(attrs["bands_order"])}
        fp.attrs["pickle"] = str(pickle.dumps(attrs))
    with pytest.raises(DataError, match=rf"{name}\.hdf5.*19 entries but the task has 43 classes"):
        list(load_task(folder).iter_split("train"))


# -- files written by geobench 1.0.0 itself (tests/fixtures/geobench_v1/write_with_geobench.py) ----------------
def _written():
    from pathlib import Path

    here = Path(__file__).resolve().parents[2] / "fixtures" / "geobench_v1"
    return here / "m-eurosat-mini", np.load(here / "expected.npz")


def test_geobench_written_files_read_pixels_labels_splits_and_locations():
    from pyproj import Transformer

    folder, exp = _written()
    with pytest.warns(UserWarning, match="EuroSAT-MS order"):
        task = load_task(folder)  # m-eurosat without band_remap: GEO-Bench's labels, with a warning
    assert task.has_location and task.info["band_remap"] == "none"
    assert task.classes == list(exp["classes"])
    names = [str(n) for n in exp["names"]]
    by_split = {s: [n for n, sp in zip(names, exp["splits"]) if sp == s] for s in ("train", "valid", "test")}
    assert [task.keys(s) for s in ("train", "val", "test")] == [by_split["train"], by_split["valid"], by_split["test"]]
    continents = {}
    for split in task.splits():
        for s in task.iter_split(split):
            i = names.index(s.key)
            np.testing.assert_array_equal(s.image, exp["images"][i])  # standard labels: channels as written
            assert s.label == int(exp["labels"][i])
            a, b, c, d, e, f = exp["transforms"][i]
            x, y = a * 4 + b * 4 + c, d * 4 + e * 4 + f  # centre of the 8 x 8 grid
            lon, lat = Transformer.from_crs(int(exp["epsg"][i]), 4326, always_xy=True).transform(x, y)
            assert s.lat == pytest.approx(lat, abs=1e-6) and s.lon == pytest.approx(lon, abs=1e-6)
            continents[s.key] = s.continent
    assert continents["s5"] == "Africa" and continents["s0"] == "Europe"


def test_geobench_eurosat_band_remap_relabels_the_channels():
    folder, exp = _written()
    task = load_task(folder, band_remap="eurosat", bands=["B8A", "B9", "B12"])
    sample = next(task.iter_split("train"))
    i = [str(n) for n in exp["names"]].index(sample.key)
    # EuroSAT-MS files hold B1..B12 then B8A: B8A is the 13th channel, B9 the 9th, B12 the 12th
    np.testing.assert_array_equal(sample.image, exp["images"][i][[12, 8, 11]])
    with pytest.raises(InputError, match="band_remap must be one of"):
        load_task(folder, band_remap="sentinel")


def test_geobench_without_georeference_says_so_and_takes_a_location_table(geobench_tasks, tmp_path):
    folder = geobench_tasks["segmentation"]
    task = load_task(folder)
    assert not task.has_location and "locations=" in task.info["location"]
    with pytest.raises(InputError, match="locations="):
        task.require_location()
    keys = task.keys("test")
    table = tmp_path / "ids.csv"
    table.write_text("id,lat,lon\n" + "".join(f"{k},48.1,11.5\n" for k in keys))
    located = load_task(folder, locations=str(table))
    assert located.has_location
    assert {s.continent for s in located.iter_split("test")} == {"Europe"}


def test_geobench_by_continent_from_the_cli(tmp_path):
    """`geodiv evaluate --by continent` on files written by geobench: locations come from the band transforms."""
    from geodiv.cli import main

    folder, _ = _written()
    config = tmp_path / "eval.yaml"
    config.write_text("random_init: {preset: tiny, overrides: {img_size: 16, patch_size: 8}}\n"
                      "metrics: {n_boot: 0}\nknn: {k: [1]}\n")
    out = tmp_path / "res.json"
    assert main(["evaluate", "--checkpoint", "random", "--task", str(folder), "--protocol", "knn", "--by", "continent",
                 "--out", str(out), "--config", str(config), "--task-option", "band_remap=eurosat"]) == 0
    records = json.loads(out.read_text())
    assert {(r["region"], r["n"]) for r in records if r["train_region"] == "global"} == {
        ("global", 2), ("Europe", 1), ("Africa", 1)}


def test_geobench_brick_kiln_band_remap_relabels_bands_and_drops_true_colour(tmp_path, fixture_writer):
    import sys
    import warnings

    folder = fixture_writer("geobench").make_classification(tmp_path, name="m-brick-kiln")
    for key in [k for k in sys.modules if k == "geobench" or k.startswith("geobench.")]:
        del sys.modules[key]  # the reader must not need geobench
    with pytest.warns(UserWarning, match="geo-bench issue 29"):
        plain = load_task(folder)
    assert plain.info["band_remap"] == "none" and len(plain.source_bands) == 13
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        task = load_task(folder, band_remap="brick-kiln", bands=["B7", "B8A", "B11", "B12"])
    # the three 8-bit true-colour channels (GEO-Bench's "10", "11", "12") are no bands: dropped, not relabelled
    assert sorted(task.info["dropped_bands"]) == ["10 - SWIR - Cirrus", "11 - SWIR", "12 - SWIR"]
    assert "B6" not in task.source_bands and "B10" not in task.source_bands
    sample = next(task.iter_split("train"))
    names = ["06 - Vegetation Red Edge", "07 - Vegetation Red Edge", "08A - Vegetation Red Edge", "09 - Water vapour"]
    raw = _raw_bands(folder / f"{sample.key}.hdf5", names)  # what GEO-Bench calls B6, B7, B8A, B9
    for got, want in zip(sample.image, raw):
        np.testing.assert_array_equal(got, want)
