"""Built-in task readers, registered with :func:`geodiv.evaluate.tasks.register_source` on import.

Detection runs in priority order (most specific layouts first); docs/tasks.md describes each format.
The SimEarth source is registered by the SimEarth task module of ``geodiv.evaluate`` (a named source).
"""

from __future__ import annotations

from geodiv.evaluate.sources import bigearthnet, fmow, forty, geobench, geotiff_manifest, mosaiks, shards
from geodiv.evaluate.tasks import register_source

#: The built-in path sources in detection order: (name, reader module with ``load``/``detect``, description).
_BUILT_IN = (
    ("geodiv", shards, "geodiv task folder: task.json + split shard folders"),
    ("geobench", geobench, "GEO-Bench v1 task folder (geobench 1.0.x and older ccb files): task_specs.pkl, "
                           "*_partition.json, *.hdf5"),
    ("forty", forty, "ForTy v1 TFRecord shards (*.tfrecord*; TFDS tensor encodings none/bytes/zlib)"),
    ("bigearthnet", bigearthnet, "BigEarthNet-S2 v1.0 folder of patch folders with *_labels_metadata.json, or "
                                 "BigEarthNet v2.0 (reBEN) folder with metadata.parquet + BigEarthNet-S2/<tile>/<patch>/"),
    ("fmow", fmow, "fMoW-Sentinel (SatMAE's release) CSV (category, location_id, image_id[, image_path], polygon) "
                   "or folder of them"),
    ("mosaiks", mosaiks, "MOSAIKS-style label table (lat, lon, value) + imagery"),
    ("geotiff", geotiff_manifest, "GeoTIFF manifest CSV/Parquet (path, label[, lat, lon, split])"),
)
for _rank, (_name, _reader, _description) in enumerate(_BUILT_IN, start=1):
    register_source(_name, _reader.load, detect=_reader.detect, priority=10 * _rank, description=_description)

__all__ = ["bigearthnet", "fmow", "forty", "geobench", "geotiff_manifest", "mosaiks", "shards"]
