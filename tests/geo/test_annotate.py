"""annotate / where / annotate_csv and the `geodiv where` command."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from geodiv.cli import main
from geodiv.errors import InputError
from geodiv.geo import annotate, annotate_csv, biome_of, climate_of, continent_of, landcover_of, where


def test_annotate_agrees_with_each_lookup():
    rng = np.random.default_rng(2)
    lat, lon = rng.uniform(-90, 90, 2000), rng.uniform(-180, 180, 2000)
    info = annotate(lat, lon)
    assert set(info) == {"continent", "landcover", "landcover_code", "climate", "biome"}
    assert (info["continent"] == continent_of(lat, lon)).all()
    assert (info["landcover_code"] == landcover_of(lat, lon)).all() and info[
        "landcover_code"
    ].dtype == np.uint8
    assert (info["climate"] == climate_of(lat, lon)).all()
    assert (info["biome"] == biome_of(lat, lon)).all()
    assert info["landcover"].shape == lat.shape


def test_where_paris_and_ocean():
    assert where(48.85, 2.35) == {
        "continent": "Europe",
        "landcover": "Urban and Built-up Lands",
        "climate": "Cfb",
        "biome": "Temperate Broadleaf & Mixed Forests",
    }
    assert where(0.0, -140.0) == {
        "continent": None,
        "landcover": "Water Bodies",
        "climate": None,
        "biome": None,
    }
    with pytest.raises(InputError, match="one point"):
        where([1.0, 2.0], [1.0, 2.0])


def test_cli_where_json(capsys):
    assert main(["where", "48.85", "2.35", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == where(48.85, 2.35)
    assert main(["where", "0", "-140", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["continent"] is None


def test_cli_where_text_and_errors(capsys):
    assert main(["where", "48.85", "2.35"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["continent", "Europe"] and lines[2].split() == ["climate", "Cfb"]
    assert main(["where", "95", "2.35"]) == 2
    assert "not a valid latitude" in capsys.readouterr().err


def _write_csv(path, rows, header=("id", "lat", "lon")):
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


def test_annotate_csv_round_trip(tmp_path, capsys):
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    _write_csv(src, [("paris", 48.85, 2.35), ("pacific", 0, -140), ("cairo", 30.04, 31.24)])
    assert main(["where", "--csv", str(src), "--out", str(out)]) == 0
    assert "annotated 3 rows" in capsys.readouterr().out
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["id"] for r in rows] == ["paris", "pacific", "cairo"]
    assert rows[0]["continent"] == "Europe" and rows[0]["climate"] == "Cfb"
    assert rows[1]["continent"] == "" and rows[1]["landcover"] == "Water Bodies"
    assert rows[2]["continent"] == "Africa" and rows[2]["biome"] == "Deserts & Xeric Shrublands"
    assert list(rows[0]) == ["id", "lat", "lon", "continent", "landcover", "climate", "biome"]


def test_annotate_csv_user_layer_and_header_aliases(tmp_path, biome_layers):
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    _write_csv(src, [(1, 50.0, 10.0), (2, 23.0, 10.0)], header=("id", "Latitude", "Longitude"))
    assert annotate_csv(src, out, biome_layer=biome_layers["vector"]) == 2
    with open(out, newline="") as fh:
        biomes = [r["biome"] for r in csv.DictReader(fh)]
    assert biomes == ["Temperate Broadleaf & Mixed Forests", "Deserts & Xeric Shrublands"]


@pytest.mark.parametrize(
    ("header", "rows", "fragment"),
    [
        (("id", "x", "y"), [(1, 2, 3)], "no latitude column"),
        (("id", "lat", "lon"), [(1, 10, 20), (2, "", 20)], r"data row 2 \(line 3\).*'lat'"),
        (("id", "lat", "lon"), [(1, 10, 20), (2, 95, 20)], r"data row 2.*lat=95"),
        (("id", "lat", "lon"), [(1, 10, 200)], "data row 1"),
    ],
)
def test_annotate_csv_bad_input_writes_nothing(tmp_path, header, rows, fragment):
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    _write_csv(src, rows, header=header)
    with pytest.raises(InputError, match=fragment):
        annotate_csv(src, out)
    assert list(tmp_path.iterdir()) == [src]


def test_cli_csv_needs_out(tmp_path, capsys):
    assert main(["where", "--csv", str(tmp_path / "in.csv")]) == 2
    assert "--out" in capsys.readouterr().err


def test_cli_biome_layer_and_column(capsys, biome_layers):
    layer = str(biome_layers["vector"])
    assert main(["where", "46.5", "10", "--json", "--biome-layer", layer, "--biome-column", "label"]) == 0
    assert json.loads(capsys.readouterr().out)["biome"] == "alps"
    assert main(["where", "50", "10", "--json", "--biome-layer", layer]) == 0
    assert json.loads(capsys.readouterr().out)["biome"] == "Temperate Broadleaf & Mixed Forests"
    assert main(["where", "50", "10", "--biome-layer", layer, "--biome-column", "nope"]) == 2
    assert "no column 'nope'" in capsys.readouterr().err
