"""fMoW-Sentinel (SatMAE's release): CSV per split + one 13-band Sentinel-2 GeoTIFF per image.

CSV columns as the fMoW-Sentinel README documents them: ``category, location_id, image_id, timestamp,
polygon`` (``polygon`` is the site outline as WKT lon/lat; its centroid gives the sample location, so
per-continent subsets work), optionally ``image_path`` (SatMAE's CSVs). Split files are ``train.csv``,
``val.csv`` and ``test.csv``/``test_gt.csv``; give the folder or any one of them (its siblings are picked
up). Image paths follow the data stage's rule (:func:`geodiv.data.sources.fmow.fmow_image_paths`): re-rooted
under ``image_root`` (default: the CSV folder), or rebuilt from SatMAE's layout when ``image_path`` is absent.
A folder with train and val but no test (how SatMAE evaluates) is evaluated on val; the evaluation then holds
out a seeded part of train for model selection, and the results' notes say so. 62 classes, in the order of
``FMOW_CLASSES`` (alphabetical, SatMAE's label indices).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from geodiv.bands import S2_BANDS
from geodiv.data.sources.fmow import FMOW_CATEGORIES, FMOW_ID_COLUMNS, fmow_image_paths, polygon_centroids
from geodiv.errors import DataError, InputError
from geodiv.evaluate.tasks.base import SPLIT_ALIASES, split_options
from geodiv.evaluate.tasks.geotiff_manifest import ManifestTask, read_table

#: The 62 classes, as the data stage's fMoW-Sentinel reader lists them (one list for both stages).
FMOW_CLASSES: tuple[str, ...] = FMOW_CATEGORIES
#: note added to results when val stands in for a missing test split
VAL_AS_TEST = ("fMoW-Sentinel folder has train and val but no test: evaluated on val (as SatMAE does); model "
               "selection on a seeded hold-out of train")


def _is_fmow_csv(path: Path) -> bool:
    if not (path.is_file() and path.suffix.lower() == ".csv"):
        return False
    try:
        with open(path, encoding="utf-8") as fh:
            header = [c.strip().lower() for c in fh.readline().split(",")]
    except (OSError, UnicodeDecodeError):
        return False
    return "category" in header and ("image_path" in header or all(c in header for c in FMOW_ID_COLUMNS))


def _split_files(folder: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for csv in sorted(folder.glob("*.csv")):
        split = SPLIT_ALIASES.get(csv.stem.lower())
        if split is not None and _is_fmow_csv(csv):
            out.setdefault(split, csv)
    return out


def detect(path: Path) -> bool:
    if path.is_dir():
        return bool(_split_files(path))
    return _is_fmow_csv(path)


def load(spec: str | os.PathLike[str], **options: Any):
    import pandas as pd

    common, extra = split_options(options)
    known = {"image_root", "name"}
    if set(extra) - known:
        raise InputError(f"unknown option(s) for fMoW-Sentinel: {', '.join(sorted(set(extra) - known))} (known: image_root, name)")
    path = Path(spec)
    folder = path if path.is_dir() else path.parent
    files = _split_files(folder)
    if path.is_file() and path not in files.values():
        files = {"all": path}
    if not files:
        raise InputError(f"{path}: no fMoW-Sentinel CSV (train.csv / val.csv / test_gt.csv with category, "
                         "location_id, image_id[, image_path])")
    notes = []
    if set(files) == {"train", "val"}:
        files = {"train": files["train"], "test": files["val"]}
        notes.append(VAL_AS_TEST)
    image_root = Path(extra.get("image_root", folder))
    parts = []
    for split, csv in files.items():
        table = read_table(csv)
        table.columns = [str(c).strip().lower() for c in table.columns]
        if "category" not in table.columns:
            raise DataError(f"{csv}: fMoW-Sentinel CSV lacks the category column")
        unknown = sorted(set(table["category"]) - set(FMOW_CLASSES))
        if unknown:
            raise DataError(f"{csv}: unknown fMoW categories {', '.join(map(str, unknown[:5]))}; expected the 62 fMoW classes")
        paths = fmow_image_paths(table, csv, image_root)
        out = pd.DataFrame({
            "path": paths,
            "label": table["category"].astype(str),
            "id": [Path(p).stem for p in paths],
        })
        if "polygon" in table.columns:
            out["lat"], out["lon"] = polygon_centroids(table["polygon"], where=str(csv))
        if split != "all":
            out["split"] = split
        parts.append(out)
    table = pd.concat(parts, ignore_index=True)
    task = _FmowTask(
        path,
        table,
        common,
        name=extra.get("name", "fmow-sentinel"),
        task_type="classification",
        classes=list(FMOW_CLASSES),
        image_root=image_root,
        file_bands=list(S2_BANDS),
    )
    if notes:
        task.info["notes"] = notes
        task.info["split_origin"] = "source (val used as test)"
    return task


class _FmowTask(ManifestTask):
    source = "fmow"
