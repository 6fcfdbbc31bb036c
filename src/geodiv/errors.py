"""Exceptions that geodiv raises for bad input.

Every message names what was wrong (file, sample, field), what was expected, and how to fix it.
The CLI turns a ``GeodivError`` into a one-paragraph message and exit status 2, without a traceback.
"""

from __future__ import annotations


class GeodivError(Exception):
    """Base class: a problem with the user's input or configuration, explained in the message."""


class ConfigError(GeodivError, ValueError):
    """A configuration file or value is invalid."""


class InputError(GeodivError, ValueError):
    """Input data (coordinates, arrays, files) is invalid."""


class DataError(GeodivError):
    """A data file (shard, GeoTIFF, HDF5, checkpoint) is corrupt, truncated or of the wrong shape."""


class UnsafeCheckpointError(GeodivError):
    """A checkpoint would need arbitrary code to be unpickled; geodiv refuses to load it."""
