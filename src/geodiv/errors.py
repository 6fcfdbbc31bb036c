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


class LockedError(GeodivError):
    """An output folder is locked by another running geodiv command."""


def _mount_point(path: str) -> str:
    import os

    probe = os.path.abspath(path)
    while not os.path.exists(probe) and probe != os.path.dirname(probe):
        probe = os.path.dirname(probe)
    while not os.path.ismount(probe):
        probe = os.path.dirname(probe)
    return probe


def _free_space(path: str) -> str:
    import shutil

    try:
        free = shutil.disk_usage(_mount_point(path)).free
    except OSError:
        return "unknown free space"
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if free < 1024 or unit == "TiB":
            return f"{free:.0f} {unit} free" if unit == "bytes" else f"{free:.1f} {unit} free"
        free /= 1024
    return ""  # pragma: no cover


def os_error_message(err: OSError) -> str:
    """One line for an operating-system error: what failed, on which path, and how to fix it."""
    import errno

    path = err.filename if err.filename is not None else "(path not known)"
    if err.filename2 is not None:
        path = f"{path} -> {err.filename2}"
    path = str(path)
    reason = err.strerror or str(err)
    code = err.errno
    if code in (errno.ENOSPC, errno.EDQUOT):
        disk = _mount_point(path) if err.filename is not None else "the output disk"
        return (f"no space left on the disk holding {path} (mounted at {disk}, {_free_space(path)}): {reason}; "
                "free some space or write to a folder on another disk")
    if code == errno.EROFS:
        return f"{path} is on a read-only file system; write the output to a writable folder"
    if code in (errno.EACCES, errno.EPERM):
        return (f"permission denied for {path}; choose a folder you can write to, or fix its permissions "
                "(chmod/chown)")
    if code == errno.ENOTDIR:
        return f"{path}: a part of this path is a file, not a folder; choose a path whose parents are folders"
    if code == errno.EISDIR:
        return f"{path} is a folder where a file is needed; give a file path"
    if code == errno.EEXIST:
        return f"{path} already exists and is in the way (a file where a folder is needed?); move it or choose another path"
    if code == errno.ENOENT:
        return f"{path} does not exist; check the path"
    return f"{reason}: {path}; check the path and the disk"
