"""GeoTIFF, fMoW-Sentinel, foreign WebDataset and STAC adapters, on small fixtures in the real formats."""

from types import SimpleNamespace

import numpy as np
import pytest

from geodiv.bands import S2_BANDS
from geodiv.data.build import build_dataset
from geodiv.data.shard_reader import iter_samples
from geodiv.data.sources.fmow import FMOW_CATEGORIES, FmowSourceConfig, fmow_catalog
from geodiv.data.sources.geotiff import GeoTiffSourceConfig, file_band_names, geotiff_catalog, read_geotiff
from geodiv.data.sources.stac import stac_build
from geodiv.data.sources.webdataset import ForeignShards, WebDatasetSourceConfig
from geodiv.errors import DataError, InputError

from .datakit import fixture_module


@pytest.fixture(scope="module")
def tifs(tmp_path_factory):
    return fixture_module("geotiff").make(tmp_path_factory.mktemp("geotiff"))


def test_geotiff_bands_by_name_and_location_from_georeference(tifs):
    gt = fixture_module("geotiff")
    image, info = read_geotiff(tifs["tifs"] / "a.tif", ["B8", "B2"], size=32)
    assert image.shape == (2, 32, 32) and image.dtype == np.uint16
    assert image[0, 5, 5] == gt.pixel_value(0, 3) and image[1, 5, 5] == gt.pixel_value(0, 0)
    assert info["lat"] == pytest.approx(44.99, abs=0.02) and info["lon"] == pytest.approx(15.0, abs=0.02)
    cat = geotiff_catalog(GeoTiffSourceConfig(root=str(tifs["tifs"])))
    assert len(cat) == 3 and set(cat["continent"]) == {"Europe"}


def test_band_names_rules_of_builds_and_task_readers():
    def src(count, descriptions=None):  # what file_band_names reads of an open rasterio dataset
        return SimpleNamespace(count=count, descriptions=descriptions or (None,) * count, name="x/img.tif")

    described = src(4, ("B02", "B03", "B04", "B08"))
    assert file_band_names(described, None, "w") == ["B2", "B3", "B4", "B8"]
    assert file_band_names(described, ["B8", "B4", "B3", "B2"], "w") == ["B8", "B4", "B3", "B2"]  # the option wins
    with pytest.raises(InputError, match="w: file_bands names 3 bands but the GeoTIFF has 4"):
        file_band_names(described, ["B2", "B3", "B4"], "w", option="file_bands", error=InputError)
    # A build refuses descriptions it cannot read and undescribed 12-band files; a task reader (guess) falls
    # through to the known layout of its band count.
    twelve = src(12, tuple(f"Band {i}" for i in range(1, 13)))
    with pytest.raises(DataError, match="band description not understood.*give band_names"):
        file_band_names(twelve, None, "w")
    assert file_band_names(twelve, None, "w", guess=True) == [b for b in S2_BANDS if b != "B10"]
    with pytest.raises(DataError, match="cannot tell which Sentinel-2 bands the 12 channels.*give band_names"):
        file_band_names(src(12), None, "w")
    with pytest.raises(InputError, match="the 4 channels.*give file_bands"):
        file_band_names(src(4), None, "w", option="file_bands", guess=True, error=InputError)


def test_geotiff_errors_name_the_file(tifs):
    with pytest.raises(DataError, match=r"nan\.tif: image has 1 NaN"):
        read_geotiff(tifs["bad"] / "nan.tif", ["B2", "B3", "B4"], size=40)
    with pytest.raises(DataError, match=r"a\.tif.* lacks band\(s\) B11"):
        read_geotiff(tifs["tifs"] / "a.tif", ["B11"], size=40)
    with pytest.raises(DataError, match=r"smaller than the dataset's 64 px"):
        read_geotiff(tifs["tifs"] / "a.tif", ["B2"], size=64)
    with pytest.raises(DataError, match=r"plain\.tif: no georeference and no lat/lon"):
        geotiff_catalog(GeoTiffSourceConfig(root=str(tifs["nogeo"])))


def test_geotiff_manifest_build_with_labels(tifs, tmp_path):
    cfg = {"n": 1, "size": 32, "bands": ["B2", "B3", "B4", "B8"], "shard_size": 2,
           "source": {"kind": "geotiff", "manifest": str(tifs["nogeo"] / "manifest.csv"), "band_names": ["B2", "B3", "B4", "B8"]},
           "strategy": {"kind": "one_hot", "continent": "Europe"}}
    build_dataset(cfg, tmp_path / "ds")
    (_, image, meta), = list(iter_samples(tmp_path / "ds"))
    assert meta["label"] == 3 and meta["lat"] == 48.85 and meta["continent"] == "Europe"
    assert image[:, 0, 0].tolist() == [500, 501, 502, 503]


def test_fmow_sentinel_csv_and_13_band_tiffs(tmp_path):
    csv = fixture_module("fmow").make(tmp_path / "fmow")
    assert len(FMOW_CATEGORIES) == 62
    cat = fmow_catalog(FmowSourceConfig(csv=str(csv)))
    assert list(cat["label"]) == [FMOW_CATEGORIES.index(c) for c in ("airport", "crop_field", "zoo")]
    assert list(cat["continent"]) == ["Europe", "Africa", "Asia"]
    assert cat["lat"].iloc[2] == pytest.approx(35.68, abs=1e-3)
    m = build_dataset({"n": 3, "size": 16, "bands": ["B2", "B8A", "B12"], "source": {"kind": "fmow", "csv": str(csv)},
                       "strategy": {"kind": "global"}}, tmp_path / "ds")
    assert m["counts"]["continent"] == {"Africa": 1, "Asia": 1, "Europe": 1}
    by_cat = {meta["category"]: (img, meta) for _, img, meta in iter_samples(tmp_path / "ds")}
    img, meta = by_cat["zoo"]
    assert img[:, 0, 0].tolist() == [301, 308, 312]  # row 2: 100 * 3 + band index (B2=1, B8A=8, B12=12)
    assert meta["date"] == "2019-03-21T03:05:40Z" and meta["label"] == FMOW_CATEGORIES.index("zoo")
    (tmp_path / "bad.csv").write_text("category,image_path\nzoo,x.tif\n")
    with pytest.raises(DataError, match="lacks column"):
        fmow_catalog(FmowSourceConfig(csv=str(tmp_path / "bad.csv")))


@pytest.mark.parametrize("variant", ["documented", "author_prefix"])
def test_fmow_paths_one_rule_for_documented_columns_and_author_paths(tmp_path, variant):
    """Without image_path the path is rebuilt from SatMAE's layout; absolute author paths (/atlas/u/...) are
    re-rooted under the CSV's folder, as the evaluate stage does (one rule: fmow_image_paths)."""
    import pandas as pd

    from geodiv.data.sources.fmow import fmow_image_paths

    csv = fixture_module("fmow").make(tmp_path / "fmow")
    table = pd.read_csv(csv)
    rel = list(table["image_path"])
    if variant == "documented":
        table = table.drop(columns="image_path")
    else:
        table["image_path"] = ["/atlas/u/someone/fmow-sentinel/" + p for p in rel]
    table.to_csv(csv, index=False)
    assert fmow_image_paths(table, csv, csv.parent) == [str(csv.parent / p) for p in rel]
    cat = fmow_catalog(FmowSourceConfig(csv=str(csv)))
    assert list(cat["continent"]) == ["Europe", "Africa", "Asia"]
    table.drop(columns=["location_id"] + (["image_path"] if variant != "documented" else [])).to_csv(csv, index=False)
    with pytest.raises(DataError, match="lacks column"):
        fmow_catalog(FmowSourceConfig(csv=str(csv)))


@pytest.mark.parametrize("provider,baseline,applied,offset", [
    ("earthsearch", "05.09", True, 0),       # Earth Search v1 removed the offset: earthsearch:boa_offset_applied
    ("earthsearch", "05.09", False, 1000),   # not removed: raster:bands offset -0.1 / scale 0.0001
    ("planetary", "05.09", False, 1000),     # Planetary Computer: ESA's values, baseline >= 04.00
    ("planetary", "03.01", False, 0),        # older baseline: no offset
])
def test_stac_items_as_each_provider_writes_them(tmp_path, provider, baseline, applied, offset):
    stac_fx = fixture_module("stac")
    fx = stac_fx.make_provider(tmp_path / "stac", provider, baseline=baseline, offset_applied=applied)
    locs = tmp_path / "locs.csv"
    locs.write_text("id,lat,lon\nL0,{},{}\n".format(*fx["inside"]))
    cfg = {"api": str(fx["catalog"]), "locations": str(locs), "bands": ["B2", "B3", "B4", "B5"], "size": 32}
    stac_build(cfg, out=tmp_path / "out")  # common-name asset keys (blue, rededge1 ...), COGs before jp2
    (_, image, meta), = list(iter_samples(tmp_path / "out"))
    assert meta["stac_item"] == fx["item"] and meta["boa_offset"] == offset
    assert image[:, 16, 16].tolist() == [stac_fx.expected(b) for b in range(4)]
    stac_build({**cfg, "boa_offset": 0}, out=tmp_path / "raw")  # the config overrides the item's word
    (_, raw, meta), = list(iter_samples(tmp_path / "raw"))
    assert raw[:, 16, 16].tolist() == [stac_fx.expected(b) + offset for b in range(4)] and meta["boa_offset"] == 0


def test_stac_band_from_eo_common_names():
    import pystac

    from geodiv.data.sources.stac import asset_band

    def asset(**band):
        return pystac.Asset(href="x.tif", extra_fields={"eo:bands": [band]} if band else {})

    assert asset_band("nir08", asset()) == "B8A" and asset_band("swir16", asset()) == "B11"
    assert asset_band("band_x", asset(name="x", common_name="swir22")) == "B12"
    assert asset_band("re", asset(common_name="rededge", center_wavelength=0.74)) == "B6"
    assert asset_band("B8A", asset()) == "B8A" and asset_band("scl", asset()) is None


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return fixture_module("wds").make(tmp_path_factory.mktemp("wds"))


@pytest.mark.parametrize(("name", "extra", "bands"), [
    ("npy", {"label_key": "cls"}, 13),
    ("npz", {"scale": 10000.0, "layout": "auto"}, 10),
    ("pth", {}, 10),
    ("tif", {}, 13),
])
def test_foreign_shards_decoders_and_detection(shards, name, extra, bands):
    cfg = WebDatasetSourceConfig(urls=str(shards[name]), **extra)
    got = list(ForeignShards(cfg, bands=["B2", "B4"], size=16))
    assert len(got) == 3
    for i, s in enumerate(got):
        # B2 and B4 sit at positions 1 and 3 of the 13-band order, 0 and 2 of SatMAE's 10
        pos = (1, 3) if bands == 13 else (0, 2)
        assert s.image.dtype == np.uint16 and s.image[:, 0, 0].tolist() == [100 * (i + 1) + p for p in pos]
        assert s.meta["lat"] == fixture_module("wds").LOCS[i][0]
    if name == "npy":
        assert [s.meta["label"] for s in got] == [0, 1, 0]


def test_foreign_shards_clear_errors(shards):
    with pytest.raises(DataError, match=r"nothing.tar, sample n0: no image member recognised among json, txt.*Set image_key"):
        list(ForeignShards(WebDatasetSourceConfig(urls=str(shards["nothing"]))))
    with pytest.raises(DataError, match="look normalised"):
        list(ForeignShards(WebDatasetSourceConfig(urls=str(shards["npz"])), bands=["B2"]))
    with pytest.raises(DataError, match="no entry 'pixels'"):
        list(ForeignShards(WebDatasetSourceConfig(urls=str(shards["npz"]), array_key="pixels", scale=10000.0), bands=["B2"]))


def test_foreign_shards_build(shards, tmp_path):
    m = build_dataset({"n": 2, "size": 16, "bands": ["B2", "B3"], "source": {"kind": "webdataset", "urls": str(shards["tif"])},
                       "strategy": {"kind": "global"}}, tmp_path / "ds")
    assert m["n_samples"] == 2 and sum(m["counts"]["continent"].values()) == 2


def test_stac_build_from_a_static_catalog(tmp_path):
    stac_fx = fixture_module("stac")
    fx = stac_fx.make(tmp_path / "stac")
    locs = tmp_path / "locs.csv"
    rows = [fx["inside"], fx["noasset"], fx["outside"]]
    locs.write_text("id,lat,lon\n" + "".join(f"L{i},{la},{lo}\n" for i, (la, lo) in enumerate(rows)))
    cfg = {"api": str(fx["catalog"]), "collection": None, "locations": str(locs), "bands": ["B2", "B3", "B4", "B5"],
           "size": 32, "max_cloud": 20, "on_error": "skip"}
    m = stac_build(cfg, out=tmp_path / "out")
    assert m["n_samples"] == 1 and m["skipped"]["count"] == 2
    reasons = " | ".join(m["skipped"]["first_reasons"])
    assert "item noasset: no asset for band B5" in reasons and "location L2" in reasons and "no STAC item" in reasons
    (key, image, meta), = list(iter_samples(tmp_path / "out"))
    assert key == "L0" and meta["stac_item"] == "clear" and meta["cloud_cover"] == 5.0
    assert image[:, 16, 16].tolist() == [stac_fx.expected(b) for b in range(4)]  # harmonised, least cloudy item
    with pytest.raises(DataError, match="no asset for band B5"):
        stac_build({**cfg, "on_error": "raise"}, out=tmp_path / "out2")
