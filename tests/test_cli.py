"""The CLI's error boundary: operating-system errors become one line naming the path and the fix, exit 2."""

import errno
import os
import tempfile

import numpy as np
import pytest

from geodiv.cli import main

SAMPLE = ["simearth", "sample", "--lat", "62", "--lon", "25", "--seed", "0", "--size", "16", "--out"]


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err and "Traceback" not in "\n".join(err)
    return err[-1]


def test_output_under_a_file(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert main([*SAMPLE, str(tmp_path / "file" / "a.npz")]) == 2
    line = _error_line(capsys)
    assert str(tmp_path / "file" / "a.npz") in line and "is a file, not a folder" in line


def test_device_file_target_is_refused(capsys):
    assert main([*SAMPLE, "/dev/null"]) == 2
    assert "not a regular file" in _error_line(capsys)
    assert not os.path.isfile("/dev/null")


@pytest.mark.parametrize("code, words", [
    (errno.EROFS, "read-only file system"),
    (errno.EACCES, "permission denied"),
])
def test_read_only_or_forbidden_output(tmp_path, capsys, monkeypatch, code, words):
    target = tmp_path / "ro" / "a.npz"

    def refuse(*args, dir=None, **kwargs):  # what mkstemp raises in a read-only / forbidden folder
        raise OSError(code, os.strerror(code), os.path.join(dir, ".a.npz.tmp-x"))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    assert main([*SAMPLE, str(target)]) == 2
    line = _error_line(capsys)
    assert words in line and str(tmp_path / "ro") in line
    with pytest.raises(OSError):  # --debug shows the real exception
        main(["--debug", *SAMPLE, str(target)])


def test_disk_full_names_the_disk(tmp_path, capsys, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")  # write() names no file

    monkeypatch.setattr(np, "savez_compressed", full)
    assert main([*SAMPLE, str(tmp_path / "a.npz")]) == 2
    line = _error_line(capsys)
    assert "no space left on the disk holding" in line and str(tmp_path / "a.npz") in line and "mounted at" in line
    assert list(tmp_path.iterdir()) == []  # no temp file left


def test_study_profiles_are_the_shipped_files(tmp_path, capsys):
    # --profile offers every YAML file in geodiv/study/profiles, the 2-hour CPU study included, and no other name.
    assert main(["study", "--profile", "standard-cpu", "--out", str(tmp_path / "s"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "pretrain   global seed 0" in out and "scene" in out and "steps, 0 cached" in out
    with pytest.raises(SystemExit):
        main(["study", "--profile", "standard_cpu", "--out", str(tmp_path / "t")])
    assert "invalid choice: 'standard_cpu'" in capsys.readouterr().err
