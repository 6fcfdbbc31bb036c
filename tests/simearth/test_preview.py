import json

import numpy as np
from PIL import Image

from geodiv.cli import main
from geodiv.simearth import write_patch_npz, write_preview


def test_write_patch_npz(tmp_path):
    out = write_patch_npz(48.86, 2.35, seed=1, out=tmp_path / "p.npz", size=24)
    z = np.load(out)
    assert z["image"].shape == (13, 24, 24) and z["image"].dtype == np.uint16
    assert z["classes"].shape == (24, 24)
    meta = json.loads(str(z["meta"]))
    assert meta["continent"] == "Europe" and len(meta["bands"]) == 13
    assert not list(tmp_path.glob(".*tmp*"))


def test_write_preview_png(tmp_path):
    out = write_preview("Europe", n=2, seed=0, out=tmp_path / "grid.png", size=24)
    with Image.open(out) as im:
        assert im.size[0] > 200 and im.size[1] > 100


def test_cli_sample_and_errors(tmp_path, capsys):
    assert main(["simearth", "sample", "--lat", "62", "--lon", "25", "--seed", "0", "--size", "16",
                 "--out", str(tmp_path / "a.npz")]) == 0
    assert (tmp_path / "a.npz").exists()
    rc = main(["simearth", "sample", "--lat", "0", "--lon", "-30", "--out", str(tmp_path / "b.npz")])
    assert rc == 2 and not (tmp_path / "b.npz").exists()
