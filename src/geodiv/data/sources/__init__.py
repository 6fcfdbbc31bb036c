"""Readers for data people already have: GeoTIFF folders/manifests, fMoW-Sentinel, foreign WebDataset shards, STAC.

Modules: ``geotiff``, ``fmow``, ``webdataset`` (foreign shards), ``stac`` (``stac_build``).
"""
