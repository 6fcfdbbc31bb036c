"""Built-in task readers, registered with :func:`geodiv.evaluate.tasks.register_source` on import.

Detection runs in priority order (most specific layouts first); docs/tasks.md describes each format.
The SimEarth source is registered by the SimEarth task module of ``geodiv.evaluate`` (a named source).
"""

from __future__ import annotations

from geodiv.evaluate.sources import bigearthnet, fmow, forty, geobench, geotiff_manifest, mosaiks, shards
from geodiv.evaluate.tasks import register_source

register_source("geodiv", shards.load, detect=shards.detect, priority=10,
                description="geodiv task folder: task.json + split shard folders")
register_source("geobench", geobench.load, detect=geobench.detect, priority=20,
                description="GEO-Bench v1 task folder: task_specs.pkl, *_partition.json, *.hdf5")
register_source("forty", forty.load, detect=forty.detect, priority=30,
                description="ForTy TFRecord shards (*.tfrecord*)")
register_source("bigearthnet", bigearthnet.load, detect=bigearthnet.detect, priority=40,
                description="BigEarthNet-S2 folder of patch folders with *_labels_metadata.json")
register_source("fmow", fmow.load, detect=fmow.detect, priority=50,
                description="fMoW-Sentinel CSV (category, image_path, polygon ...) or folder of them")
register_source("mosaiks", mosaiks.load, detect=mosaiks.detect, priority=60,
                description="MOSAIKS-style label table (lat, lon, value) + imagery")
register_source("geotiff", geotiff_manifest.load, detect=geotiff_manifest.detect, priority=70,
                description="GeoTIFF manifest CSV/Parquet (path, label[, lat, lon, split])")

__all__ = ["bigearthnet", "fmow", "forty", "geobench", "geotiff_manifest", "mosaiks", "shards"]
