"""Atomic writes and output-folder locks.

Every artifact is written to a temporary file beside its target, then renamed: a reader never sees a
half-written file, and an interrupted command leaves either the old file or none. Only regular files (or new
paths) are replaced; the final file gets the mode ``open`` would give (0o666 less the umask).

Commands that write a folder (build, pretrain, study, task simulation) hold an advisory lock on it
(``folder_lock``): a second run into the same folder waits or stops with a message naming the holder. The lock is
an ``flock`` on ``FOLDER/.geodiv.lock``, which the kernel releases when its process dies, so a lock left by a
killed run is taken over safely. Whoever takes a folder's lock first removes the temporary files that dead runs
left in it (``sweep_temp_files``): no live writer can own them then. Commands that write one file into a folder
they do not own (``evaluate --out r.json``) lock only that file (``file_lock``: ``.r.json.geodiv.lock`` beside it,
removed on release), so writers of different files in one folder (the current directory, say) run side by side.
"""

from __future__ import annotations

import contextlib
import datetime
import glob
import json
import os
import re
import shutil
import socket
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from geodiv.errors import InputError, LockedError
from geodiv.progress import log

#: Name of the lock file in a locked output folder.
LOCK_NAME = ".geodiv.lock"
#: Name of the lock file of one locked output file NAME, beside it (``file_lock``).
FILE_LOCK_NAME = ".{name}.geodiv.lock"
#: Names of the temporary files ``atomic_path`` creates: ``.NAME.tmp-`` + mkstemp's 8 characters + suffix.
TEMP_RE = re.compile(r"^\..+\.tmp-[a-z0-9_]{8}(\.[A-Za-z0-9]+)?$")
#: How deep below a locked folder the sweep looks (a study's cache/, evaluations/feature_cache/, a build's .progress/).
SWEEP_DEPTH = 2
#: Environment variable that makes ``folder_lock`` wait for a held lock instead of stopping (``--wait-lock``).
WAIT_ENV = "GEODIV_WAIT_LOCK"
#: Environment variable naming folders (os.pathsep-separated real paths) whose lock a parent process holds for this
#: one: a concurrent study's step processes (``geodiv study --jobs N``) work inside the study folder the study has
#: locked, side by side, so their own locks of folders inside it are taken as held (as a re-entrant lock would be).
HELD_ENV = "GEODIV_HELD_LOCKS"


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux), else set and restored."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def check_target(target: str | os.PathLike[str]) -> Path:
    """``target`` as a Path, refused unless it is a new path or a regular file (never a device, folder, pipe)."""
    target = Path(target)
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        return target
    except NotADirectoryError:
        raise InputError(f"cannot write {target}: a part of its path is a file, not a folder; choose another output "
                         "path") from None
    if not stat.S_ISREG(mode):
        what = "a folder" if stat.S_ISDIR(mode) else "not a regular file (a device, pipe or socket)"
        raise InputError(f"cannot write {target}: it is {what}, and geodiv replaces only regular files; "
                         "give a file path that is new or a regular file")
    return target


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success rename it onto ``target``.

    Use it for writers that want a path (``np.save``, ``torch.save``, ``fig.savefig``). ``suffix`` keeps
    the extension that some writers key their format on (defaults to the target's own suffix).
    """
    target = check_target(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Hidden name, same folder (so the rename is atomic), same extension (writers key formats on it).
    fd, tmp = tempfile.mkstemp(
        prefix=f".{target.name}.tmp-", suffix=target.suffix if suffix is None else suffix, dir=target.parent
    )
    tmp_path = Path(tmp)
    try:
        try:
            os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp makes 0600; give what open() would
        finally:
            os.close(fd)
        try:
            yield tmp_path
        except OSError as err:
            if err.filename is None:  # a failed write() names no file: name the target (disk full, I/O error)
                raise OSError(err.errno, err.strerror or str(err), str(target)) from err
            raise
        check_target(target)  # it may have become a folder or device while we wrote
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_open(target: str | os.PathLike[str], mode: str = "w", **kwargs: Any) -> Iterator[TextIO | BinaryIO]:
    """Open a temporary file for writing; it replaces ``target`` only if the block finishes."""
    if not any(m in mode for m in "wx"):
        raise ValueError(f"atomic_open is for writing, got mode {mode!r}")
    with atomic_path(target) as tmp:
        with open(tmp, mode.replace("x", "w"), **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())


def write_json(target: str | os.PathLike[str], obj: Any, indent: int | None = 2) -> None:
    """Write ``obj`` as JSON atomically (keys kept in insertion order, NaN refused)."""
    with atomic_open(target, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=indent, allow_nan=False, default=json_default)
        fh.write("\n")


def write_text(target: str | os.PathLike[str], text: str) -> None:
    with atomic_open(target, "w", encoding="utf-8") as fh:
        fh.write(text)


def write_bytes(target: str | os.PathLike[str], data: bytes) -> None:
    with atomic_open(target, "wb") as fh:
        fh.write(data)


def json_default(obj: Any) -> Any:
    """``json.dumps(default=...)`` for the values geodiv's records carry: numpy scalars and arrays, paths."""
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


# ------------------------------------------------------------------------------------------- folder locks
_held: dict[str, list[Any]] = {}  # lock file realpath -> [open lock file, depth]; re-entrant within one process
_held_guard = threading.Lock()


def _holder_text(path: Path) -> str:
    for _ in range(20):  # the holder writes its record right after taking the lock
        try:
            text = path.read_text(encoding="utf-8").strip()
        except OSError:
            text = ""
        if text:
            try:
                info = json.loads(text)
                return (f"pid {info.get('pid')} on host {info.get('host')}, running `{info.get('command')}` "
                        f"since {info.get('started')}")
            except (json.JSONDecodeError, AttributeError):
                break
        time.sleep(0.05)
    return "another process (its record is not readable)"


def sweep_temp_files(folder: str | os.PathLike[str], depth: int = SWEEP_DEPTH) -> int:
    """Remove temporary files of dead atomic writes in ``folder`` and its subfolders down to ``depth`` levels;
    return how many were removed.

    Only names that ``atomic_path`` makes are touched (``TEMP_RE``). Subfolders that have their own lock file are
    left to the command that locks them. Call it only while holding ``folder``'s lock (``folder_lock`` does), so
    that no live writer owns the files.
    """
    removed = 0
    folder = Path(folder)
    levels = [folder]
    for level in range(depth + 1):
        below = []
        for here in levels:
            try:
                entries = list(os.scandir(here))
            except OSError:
                continue
            if here != folder and any(e.name == LOCK_NAME for e in entries):
                continue
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    below.append(Path(entry.path))
                elif TEMP_RE.match(entry.name) and entry.is_file(follow_symlinks=False):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
                        removed += 1
        levels = below if level < depth else []
    return removed


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike[str], command: str, wait: bool | None = None) -> Iterator[Path]:
    """Hold an advisory lock on output ``folder`` (created if needed) for the block.

    A folder locked by another process makes this wait (``wait=True``, or ``GEODIV_WAIT_LOCK=1``) or raise
    ``LockedError`` naming the holder's pid, host, command and start time. Re-entrant within a process. The
    first holder sweeps the temporary files left by dead runs (``sweep_temp_files``).
    """
    folder = Path(folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    key = os.path.realpath(folder)
    held_by_parent = any(key == p or key.startswith(p.rstrip(os.sep) + os.sep)
                         for p in os.environ.get(HELD_ENV, "").split(os.pathsep) if p)
    if held_by_parent:
        yield folder
        return
    with _holding(folder / LOCK_NAME, folder, folder, command, wait) as fh:
        if fh is None:  # re-entered: the outer block sweeps and cleans up
            yield folder
            return
        removed = sweep_temp_files(folder)
        if removed:
            log(f"{folder}: removed {removed} temporary file(s) left by an interrupted run")
        try:
            yield folder
        except BaseException:
            if created:
                _remove_if_empty(folder)  # a run that failed before writing anything leaves no folder behind
            raise
        finally:
            with contextlib.suppress(OSError):
                fh.seek(0)
                fh.truncate()


@contextlib.contextmanager
def _holding(path: Path, folder: Path, what: Path, command: str, wait: bool | None) -> Iterator[Any]:
    """The lock on the lock file ``path`` (in ``folder``; ``what`` names the locked thing in messages) for the
    block, re-entrant within a process: yields the open lock file, or None where this process holds it already."""
    key = os.path.realpath(path)
    with _held_guard:
        reentrant = key in _held
        if reentrant:
            _held[key][1] += 1
    if reentrant:
        try:
            yield None
        finally:
            with _held_guard:
                _held[key][1] -= 1
        return
    if wait is None:
        wait = os.environ.get(WAIT_ENV, "") not in ("", "0", "false", "no")
    fh = _open_locked(path, folder, wait, what)
    try:
        _write_holder(fh, command)
        with _held_guard:
            _held[key] = [fh, 1]
        try:
            yield fh
        finally:
            with _held_guard:
                del _held[key]
    finally:
        fh.close()  # closing releases the flock


def _write_holder(fh: Any, command: str) -> None:
    """Record who holds a lock (read by ``_holder_text`` for the message of a refused run)."""
    fh.seek(0)
    fh.truncate()
    fh.write(json.dumps({
        "pid": os.getpid(), "host": socket.gethostname(), "command": command,
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }))
    fh.flush()


@contextlib.contextmanager
def file_lock(target: str | os.PathLike[str], command: str, wait: bool | None = None,
              siblings: tuple[str | os.PathLike[str], ...] = ()) -> Iterator[Path]:
    """Hold an advisory lock on the one output file ``target`` (and the ``siblings`` written with it, e.g. a CSV
    beside a JSON) for the block, not on its folder: other commands writing other files there are not held up.

    The lock is an ``flock`` on ``.NAME.geodiv.lock`` beside ``target``; a second writer of the same file waits
    (``wait=True``, ``GEODIV_WAIT_LOCK=1``) or gets ``LockedError`` naming the holder. The lock file is removed on
    release (a waiter that locked the removed file notices and locks the new one, as for folders). While holding
    it, the temporary files that dead writes of ``target`` and its siblings left beside them are removed. A parent
    folder this call created is removed again if the block fails before anything else was written into it.
    """
    target = Path(target)
    folder = target.parent
    created = not folder.exists()
    path = (folder / FILE_LOCK_NAME.format(name=target.name)).absolute()
    failed = False
    try:
        with _holding(path, folder, target, command, wait) as fh:
            if fh is None:
                yield target
                return
            for name in (target.name, *(Path(s).name for s in siblings)):
                for entry in folder.glob(f".{glob.escape(name)}.tmp-*"):
                    if TEMP_RE.match(entry.name) and entry.is_file():
                        with contextlib.suppress(FileNotFoundError):
                            entry.unlink()
            try:
                yield target
            finally:
                with contextlib.suppress(OSError):
                    os.unlink(path)  # while still holding it: a waiter on this file retries on the next one
    except BaseException:
        failed = True
        raise
    finally:
        if failed and created:
            _remove_if_empty(folder)


def _remove_if_empty(folder: Path) -> None:
    """Remove ``folder`` if it holds nothing but its lock file and empty subfolders."""
    for _dirpath, _dirnames, filenames in os.walk(folder):
        if any(name != LOCK_NAME for name in filenames):
            return
    with contextlib.suppress(OSError):
        shutil.rmtree(folder)


def _open_locked(path: Path, folder: Path, wait: bool, what: Path | None = None) -> Any:
    """The lock file, open and locked. Retried if the file we locked was removed meanwhile (a run that failed
    removes the folder it created), so that two processes never hold locks on two different files."""
    while True:
        folder.mkdir(parents=True, exist_ok=True)
        fh = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held open for the block
        try:
            _acquire(fh, path, what or folder, wait)
            if os.path.exists(path) and os.path.samestat(os.fstat(fh.fileno()), os.stat(path)):
                return fh
        except BaseException:
            fh.close()
            raise
        fh.close()


def _acquire(fh: Any, path: Path, what: Path, wait: bool) -> None:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no advisory locks, run unlocked
        return
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        holder = _holder_text(path)
    if not wait:
        raise LockedError(
            f"{what} is in use by {holder}. Wait for it to finish (or rerun with --wait-lock to wait), or "
            f"write {'into another folder' if what.is_dir() else 'another file'}; if that process is gone, run "
            "again: its lock is released when it dies"
        )
    from geodiv.progress import log

    log(f"{what} is in use by {holder}; waiting for it to finish")
    fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
