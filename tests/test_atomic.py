"""Atomic writes (regular targets only, umask, temp sweeping) and output-folder locks."""

import json
import os
import subprocess
import sys
import time

import pytest

from geodiv.atomic import LOCK_NAME, atomic_path, folder_lock, sweep_temp_files, write_text
from geodiv.errors import InputError, LockedError


def test_write_refuses_device_and_folder_targets(tmp_path):
    with pytest.raises(InputError, match="not a regular file"):
        write_text("/dev/null", "x")
    assert not os.path.isfile("/dev/null")  # still the device
    (tmp_path / "d").mkdir()
    with pytest.raises(InputError, match="is a folder"):
        write_text(tmp_path / "d", "x")
    write_text(tmp_path / "f.txt", "a")
    write_text(tmp_path / "f.txt", "b")  # a regular file is replaced
    assert (tmp_path / "f.txt").read_text() == "b"


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_final_mode_follows_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        write_text(tmp_path / "a.txt", "x")
        with open(tmp_path / "b.txt", "w") as fh:  # what open() gives
            fh.write("x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o666 & ~umask
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == (tmp_path / "b.txt").stat().st_mode & 0o777


def test_failed_write_leaves_no_temp_and_names_the_target(tmp_path):
    import errno

    with pytest.raises(OSError) as info:
        with atomic_path(tmp_path / "out.bin"):
            raise OSError(errno.ENOSPC, "No space left on device")
    assert info.value.filename == str(tmp_path / "out.bin")
    assert list(tmp_path.iterdir()) == []


def test_lock_names_the_holder_and_is_taken_over_after_a_kill(tmp_path, lock_holder):
    folder = tmp_path / "out"
    proc = lock_holder(folder)
    try:
        with pytest.raises(LockedError, match=rf"pid {proc.pid} on host .*geodiv test-holder"):
            with folder_lock(folder, "geodiv second"):
                pass
        # a dead run's temp file, left beside the lock
        (folder / ".shard-000000.tar.tmp-k3x_9q2a.tar").write_bytes(b"partial")
        (folder / "keep.tar").write_bytes(b"ok")
    finally:
        proc.kill()  # kill -9: the kernel drops the flock, the lock file stays
        proc.wait()
    assert json.loads((folder / LOCK_NAME).read_text())["pid"] == proc.pid  # a stale record
    with folder_lock(folder, "geodiv third"):
        assert json.loads((folder / LOCK_NAME).read_text())["command"] == "geodiv third"
        assert not (folder / ".shard-000000.tar.tmp-k3x_9q2a.tar").exists()  # swept
        assert (folder / "keep.tar").exists()


def test_waiting_for_a_lock_proceeds_when_the_holder_ends(tmp_path, lock_holder):
    folder = tmp_path / "out"
    proc = lock_holder(folder)
    killer = subprocess.Popen([sys.executable, "-c", f"import os, time; time.sleep(1.0); os.kill({proc.pid}, 9)"])
    t0 = time.perf_counter()
    with folder_lock(folder, "geodiv waiter", wait=True):
        waited = time.perf_counter() - t0
    killer.wait()
    proc.wait()
    assert waited > 0.5


def test_lock_is_reentrant_and_a_failed_first_run_leaves_no_folder(tmp_path):
    with folder_lock(tmp_path / "a", "x"):
        with folder_lock(tmp_path / "a", "x"):
            pass
    with pytest.raises(RuntimeError):
        with folder_lock(tmp_path / "new", "x"):
            raise RuntimeError("failed before writing anything")
    assert not (tmp_path / "new").exists()


def test_sweep_removes_only_atomic_temp_names_near_the_folder(tmp_path):
    temp = ".checkpoint-3.pth.tmp-a1b2c3d4.pth"  # what atomic_path makes
    for sub in ("", "cache", "evaluations/feature_cache", "a/b/c", "locked"):
        (tmp_path / sub).mkdir(parents=True, exist_ok=True)
        (tmp_path / sub / temp).write_text("")
    (tmp_path / "locked" / LOCK_NAME).write_text("")  # another command's folder: its own sweep
    (tmp_path / ".notes.tmp-mine").write_text("")  # not a name atomic_path makes
    assert sweep_temp_files(tmp_path) == 3
    assert not (tmp_path / temp).exists() and not (tmp_path / "evaluations/feature_cache" / temp).exists()
    assert (tmp_path / "a/b/c" / temp).exists()  # deeper than SWEEP_DEPTH
    assert (tmp_path / "locked" / temp).exists() and (tmp_path / ".notes.tmp-mine").exists()


def test_racing_runs_get_the_lock_one_at_a_time(tmp_path):
    """Four processes released together: exactly one holds the folder, the others are told who does."""
    go = tmp_path / "go"
    code = ("import os, pathlib, sys, time\n"
            "from geodiv.atomic import folder_lock\n"
            "from geodiv.errors import LockedError\n"
            "pathlib.Path(sys.argv[1]).write_text('')\n"
            f"while not os.path.exists({str(go)!r}): time.sleep(0.01)\n"
            "try:\n"
            f"    with folder_lock({str(tmp_path / 'out')!r}, 'racer'):\n"
            "        print('held', flush=True)\n"
            "        t0 = time.time()  # hold until the three others were refused (or 30 s)\n"
            f"        while len(list(pathlib.Path({str(tmp_path)!r}).glob('refused-*'))) < 3 and time.time() - t0 < 30:\n"
            "            time.sleep(0.01)\n"
            "except LockedError as err:\n"
            "    print('locked', 'pid' in str(err))\n"
            f"    pathlib.Path({str(tmp_path)!r}, f'refused-{{os.getpid()}}').write_text('')\n")
    src = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, "src"))
    ready = [tmp_path / f"ready{i}" for i in range(4)]
    procs = [subprocess.Popen([sys.executable, "-c", code, str(r)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": src}) for r in ready]
    deadline = time.time() + 60
    while not all(r.exists() for r in ready) and time.time() < deadline:
        time.sleep(0.02)
    go.write_text("")
    outputs = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
    assert outputs == ["held", "locked True", "locked True", "locked True"]


def test_step_processes_of_a_locked_study_share_its_folders(tmp_path, lock_holder, monkeypatch):
    # `geodiv study --jobs N`: the study holds its folder; its step processes lock folders inside it side by side
    from geodiv.atomic import HELD_ENV
    from geodiv.errors import LockedError

    study = tmp_path / "study"
    sibling = lock_holder(study / "evaluations")  # another step process of the same study
    with pytest.raises(LockedError, match=f"pid {sibling.pid}"):
        with folder_lock(study / "evaluations", "geodiv evaluate"):
            pass
    monkeypatch.setenv(HELD_ENV, str(study.resolve()))
    with folder_lock(study / "evaluations", "geodiv evaluate") as folder:
        assert folder == study / "evaluations"
    lock_holder(tmp_path / "elsewhere")
    with pytest.raises(LockedError):  # only folders inside the held one
        with folder_lock(tmp_path / "elsewhere", "geodiv evaluate"):
            pass


def test_a_file_lock_holds_one_file_not_its_folder(tmp_path, lock_holder):
    from geodiv.atomic import file_lock

    folder = tmp_path / "out"
    proc = lock_holder(folder / "a.json", lock="file_lock")
    with pytest.raises(LockedError, match=rf"a\.json is in use by pid {proc.pid} .*write another file"):
        with file_lock(folder / "a.json", "geodiv evaluate"):
            pass
    (folder / ".b.json.tmp-abcd1234.json").write_text("{")  # a dead write of b.json
    (folder / ".a.json.tmp-abcd1234.json").write_text("{")  # a.json's writer is alive: not its to remove
    with file_lock(folder / "b.json", "geodiv evaluate") as target:
        assert target == folder / "b.json" and (folder / ".b.json.geodiv.lock").exists()
        with file_lock(folder / "b.json", "geodiv evaluate"):  # re-entrant within a process
            pass
    assert not (folder / ".b.json.tmp-abcd1234.json").exists() and (folder / ".a.json.tmp-abcd1234.json").exists()
    assert not (folder / ".b.json.geodiv.lock").exists() and not (folder / ".geodiv.lock").exists()
    proc.kill()
    proc.wait()
    with file_lock(folder / "a.json", "geodiv evaluate"):  # released by the kernel when its holder died
        pass
    with pytest.raises(RuntimeError):  # a failed first write leaves no folder behind
        with file_lock(tmp_path / "new" / "r.json", "geodiv evaluate"):
            raise RuntimeError
    assert not (tmp_path / "new").exists()
