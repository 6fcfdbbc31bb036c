"""GeoTIFF manifests (CSV / Parquet): type inference, splits, locations, masks, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin

from geodiv.errors import DataError, InputError
from geodiv.evaluate.tasks.registry import detect_format, load_task


def _tif(path, data, lonlat=None):
    kw = {}
    if lonlat is not None:  # a WGS84 georeference centred on (lon, lat)
        lon, lat = lonlat
        kw = {"crs": CRS.from_epsg(4326), "transform": from_origin(lon - 0.002, lat + 0.002, 0.001, 0.001)}
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
                       dtype=str(data.dtype), **kw) as dst:
        dst.write(data)


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(0)
    out = []
    places = [(2.35, 48.85), (-46.63, -23.55), (139.69, 35.68), (-74.0, 40.71), (36.82, -1.29), (151.2, -33.9)]
    (tmp_path / "img").mkdir()
    for i, lonlat in enumerate(places):
        data = rng.integers(0, 3000, (4, 4, 4)).astype(np.uint16)
        _tif(tmp_path / "img" / f"p{i}.tif", data, lonlat)
        out.append(data)
    return out


def test_classification_csv_with_split_and_georeference(tmp_path, images):
    table = pd.DataFrame({"path": [f"img/p{i}.tif" for i in range(6)],
                          "label": ["forest", "crop", "forest", "urban", "crop", "urban"],
                          "split": ["train", "train", "train", "valid", "test", "test"]})
    table.to_csv(tmp_path / "m.csv", index=False)
    assert detect_format(tmp_path / "m.csv") == "geotiff"
    task = load_task(tmp_path / "m.csv", file_bands=["B2", "B3", "B4", "B8"])
    assert task.type == "classification" and task.classes == ["crop", "forest", "urban"]
    assert [task.n(s) for s in task.splits()] == [3, 1, 2] and task.has_location
    samples = list(task.iter_split("train"))
    np.testing.assert_array_equal(samples[1].image, images[1])
    assert [task.classes[s.label] for s in samples] == ["forest", "crop", "forest"]
    assert samples[0].lat == pytest.approx(48.85, abs=1e-6) and samples[0].continent == "Europe"
    assert [s.continent for s in task.iter_split("test")] == ["Africa", "Oceania"]


def test_parquet_regression_with_coordinates_and_random_split(tmp_path, images):
    table = pd.DataFrame({"id": [f"s{i}" for i in range(6)], "image_path": [f"img/p{i}.tif" for i in range(6)],
                          "target": np.linspace(0, 1, 6), "latitude": [10.0] * 6, "longitude": [20.0] * 6})
    table.to_parquet(tmp_path / "m.parquet")
    task = load_task(tmp_path / "m.parquet", file_bands=["B2", "B3", "B4", "B8"], split_fractions=(0.5, 0.0, 0.5))
    assert task.type == "regression" and task.classes is None
    assert task.splits() == ["train", "test"] and task.n("train") == 3
    s = next(task.iter_split("test"))
    assert s.lat == 10.0 and isinstance(s.label, float)
    assert s.label == pytest.approx(float(table.set_index("id").loc[s.key, "target"]))


def test_multilabel_and_segmentation(tmp_path, images):
    rng = np.random.default_rng(1)
    masks = []
    for i in range(6):
        mask = rng.integers(0, 3, (1, 4, 4)).astype(np.uint8)
        _tif(tmp_path / "img" / f"m{i}.tif", mask)
        masks.append(mask[0])
    pd.DataFrame({"path": [f"img/p{i}.tif" for i in range(6)], "label": [f"img/m{i}.tif" for i in range(6)],
                  "split": ["train"] * 6}).to_csv(tmp_path / "seg.csv", index=False)
    with pytest.raises(InputError, match="classes"):
        load_task(tmp_path / "seg.csv", file_bands=["B2", "B3", "B4", "B8"])
    seg = load_task(tmp_path / "seg.csv", file_bands=["B2", "B3", "B4", "B8"], classes=["a", "b", "c"])
    assert seg.type == "segmentation"
    np.testing.assert_array_equal([s.label for s in seg.iter_split("train")], masks)

    pd.DataFrame({"path": [f"img/p{i}.tif" for i in range(2)], "label": ["a;b", "b"]}).to_csv(tmp_path / "ml.csv", index=False)
    ml = load_task(tmp_path / "ml.csv", file_bands=["B2", "B3", "B4", "B8"], split_fractions=(1.0, 0.0, 0.0))
    assert ml.type == "multilabel" and ml.classes == ["a", "b"]
    np.testing.assert_array_equal([s.label for s in ml.iter_split("train")], [[1, 1], [0, 1]])


def test_errors_name_file_and_row(tmp_path, images):
    pd.DataFrame({"path": ["img/p0.tif", "img/p1.tif"], "label": [0, 1]}).to_csv(tmp_path / "a.csv", index=False)
    with pytest.raises(InputError, match="cannot tell which Sentinel-2 bands the 4 channels.*file_bands"):
        load_task(tmp_path / "a.csv")
    pd.DataFrame({"id": ["x", "x"], "path": ["img/p0.tif", "img/p1.tif"], "label": [0, 1]}).to_csv(tmp_path / "b.csv", index=False)
    with pytest.raises(DataError, match=r"b\.csv: rows 2 and 3 share the sample id 'x'"):
        load_task(tmp_path / "b.csv", file_bands=["B2", "B3", "B4", "B8"])
    pd.DataFrame({"path": ["img/p0.tif", "img/nope.tif"], "label": [0.5, 1.5], "split": ["train", "test"]}).to_csv(
        tmp_path / "c.csv", index=False)
    task = load_task(tmp_path / "c.csv", file_bands=["B2", "B3", "B4", "B8"])
    with pytest.raises(DataError, match=r"c\.csv: row 3 \(sample 'nope'.*does not exist"):
        list(task.iter_split("test"))
    pd.DataFrame({"path": ["img/p0.tif"], "label": [0], "split": ["holdout"]}).to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(DataError, match=r"row 2 .*unknown split 'holdout'"):
        load_task(tmp_path / "d.csv", file_bands=["B2", "B3", "B4", "B8"])


def test_unknown_format_and_unknown_name(tmp_path):
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="cannot tell the task format"):
        load_task(tmp_path / "x.csv")
    with pytest.raises(InputError, match="neither an existing path nor a known task name"):
        load_task("no-such-task")


def test_13_band_files_without_descriptions_band_order(tmp_path, fixture_writer):
    """EuroSAT-MS's layout is recognised (bands B1..B12, B8A, said in a warning and in info); elsewhere a
    13-band file without descriptions is read in standard order with a warning; band_order sets it."""
    import shutil

    folder = fixture_writer("eurosat_ms").make(tmp_path)
    with pytest.warns(UserWarning, match="EuroSAT-MS's layout"):
        task = load_task(folder / "manifest.csv", bands=["B8A", "B9", "B12"])
    assert task.info["band_order"].startswith("EuroSAT-MS")
    samples = [s for split in task.splits() for s in task.iter_split(split)]
    assert sorted(s.key for s in samples) == ["Forest_1", "Highway_7", "River_3"]
    for s in samples:
        i = ["Forest_1", "River_3", "Highway_7"].index(s.key)
        assert s.image[:, 0, 0].tolist() == [1000 * (i + 1) + c for c in (12, 8, 11)]  # B8A is the 13th channel
    flat = tmp_path / "flat"
    flat.mkdir()
    shutil.copy(folder / "Forest" / "Forest_1.tif", flat / "scene.tif")
    (flat / "m.csv").write_text("path,label\nscene.tif,Forest\n")
    with pytest.warns(UserWarning, match="assuming the standard order.*band_order='eurosat'"):
        assert load_task(flat / "m.csv", split_fractions=(1, 0, 0)).bands[8] == "B8A"
    chosen = load_task(flat / "m.csv", band_order="eurosat", bands=["B8A"], split_fractions=(1, 0, 0))
    assert next(chosen.iter_split("train")).image[0, 0, 0] == 1012
    with pytest.raises(InputError, match="band_order 'sentinel' is not one of"):
        load_task(flat / "m.csv", band_order="sentinel")
