import json

import numpy as np

from geodiv.bands import S2_BANDS
from geodiv.cli import main
from geodiv.data.shard_writer import write_shards


def test_landscape_json(capsys):
    assert main(["landscape", "--region", "Africa", "--n", "40", "--seed", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"region", "n", "landscape_entropy", "std", "quantiles", "window"} <= set(out)
    assert out["region"] == "Africa" and out["n"] == 40 and out["window"] == 7
    assert main(["landscape", "--region", "Africa", "--n", "40", "--seed", "3", "--window", "9"]) == 0
    assert "Africa: landscape entropy" in capsys.readouterr().out


def test_landscape_bad_region_is_a_clean_error(capsys):
    assert main(["landscape", "--region", "Atlantis", "--n", "5"]) == 2
    assert "error" in capsys.readouterr().err


def test_diversity_json(tmp_path, capsys):
    rng = np.random.default_rng(0)
    samples = [
        (
            f"s{i}",
            rng.integers(0, 6000, size=(13, 16, 16), dtype=np.uint16),
            {
                "lat": 48.0 + i,
                "lon": 2.0,
                "continent": "Europe",
                "biome": None,
                "landcover": "Croplands",
                "climate": "Cfb",
            },
        )
        for i in range(3)
    ]
    write_shards(samples, tmp_path / "ds", shard_size=2, bands=S2_BANDS)
    assert main(["diversity", str(tmp_path / "ds"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in (
        "continent_entropy",
        "biome_entropy",
        "landcover_entropy",
        "climate_entropy",
        "spectral_entropy",
        "landscape_entropy",
        "n_samples",
    ):
        assert key in out
    assert out["n_samples"] == 3 and out["continent_entropy"] == 0.0
    assert main(["diversity", str(tmp_path / "ds")]) == 0
    assert "spectral entropy" in capsys.readouterr().out
