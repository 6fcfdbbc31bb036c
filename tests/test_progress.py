"""Progress reporting: bars on a terminal, timestamped lines with rate and ETA elsewhere, nothing when off."""

import re
import time

import pytest

from geodiv.errors import ConfigError
from geodiv.progress import LogLines, progress, progress_mode

LINE = re.compile(r"^\[geodiv \d\d:\d\d:\d\d\] \[pretrain europe\] pretrain: (\d+)/40 step \((\d+)%\), "
                  r"[\d.]+step/s, elapsed \d\d:\d\d, ETA \d\d:\d\d, loss=0\.5$")


def test_log_mode_writes_count_rate_and_eta_at_most_once_per_interval(monkeypatch, capfd):
    monkeypatch.setenv("GEODIV_PROGRESS", "log")
    monkeypatch.setenv("GEODIV_PROGRESS_INTERVAL", "0.05")
    monkeypatch.setenv("GEODIV_LOG_PREFIX", "[pretrain europe] ")
    capfd.readouterr()
    bar = progress(total=40, desc="pretrain", unit="step")
    assert isinstance(bar, LogLines)
    start = time.monotonic()
    for _ in range(40):
        time.sleep(0.01)
        bar.update(1)
        bar.set_postfix(loss="0.5")  # a postfix refresh must not add lines beyond the interval either
    bar.close()
    took = time.monotonic() - start
    lines = capfd.readouterr().err.splitlines()
    assert lines and all(LINE.match(line) for line in lines), lines
    counts = [int(LINE.match(line).group(1)) for line in lines]
    assert counts == sorted(counts) and len(set(counts)) == len(counts)
    assert len(lines) <= took / 0.05 + 1  # throttled: one line per interval at most
    assert "\r" not in "".join(lines)  # no bar drawing in a log file


def test_log_mode_without_a_total_counts_and_a_short_step_prints_nothing(monkeypatch, capfd):
    monkeypatch.setenv("GEODIV_PROGRESS", "log")
    monkeypatch.setenv("GEODIV_PROGRESS_INTERVAL", "0")
    capfd.readouterr()
    assert list(progress(iter(range(3)), desc="read scene/test", unit="img")) == [0, 1, 2]
    lines = capfd.readouterr().err.splitlines()
    assert re.search(r"\] read scene/test: 1 img, [\d.]+img/s, elapsed 00:00$", lines[0]), lines
    assert re.search(r"\] read scene/test: 3 img, ", lines[-1]), lines
    monkeypatch.setenv("GEODIV_PROGRESS_INTERVAL", "60")  # the default: steps shorter than a minute stay quiet
    assert list(progress(range(5), desc="features", unit="img")) == list(range(5))
    assert capfd.readouterr().err == ""


def test_modes_come_from_the_environment_and_bad_values_say_what_to_use(monkeypatch, capfd):
    monkeypatch.delenv("GEODIV_PROGRESS", raising=False)
    assert progress_mode() == "log"  # pytest's stderr is not a terminal: lines, not carriage returns
    for flag, mode in [("bar", "bar"), ("1", "bar"), ("log", "log"), ("0", "off"), ("no", "off")]:
        monkeypatch.setenv("GEODIV_PROGRESS", flag)
        assert progress_mode() == mode
    monkeypatch.setenv("GEODIV_PROGRESS", "loud")
    with pytest.raises(ConfigError, match="GEODIV_PROGRESS='loud': use bar, log or 0"):
        progress_mode()
    monkeypatch.setenv("GEODIV_PROGRESS", "log")
    monkeypatch.setenv("GEODIV_PROGRESS_INTERVAL", "soon")
    with pytest.raises(ConfigError, match="GEODIV_PROGRESS_INTERVAL='soon'"):
        progress(total=3)
    monkeypatch.setenv("GEODIV_PROGRESS_INTERVAL", "0")
    capfd.readouterr()
    bar = progress(total=3, desc="pretrain", disable=True)  # e.g. every DDP rank but the main one
    bar.update(3)
    bar.close()
    monkeypatch.setenv("GEODIV_PROGRESS", "0")
    for _ in progress(range(3), desc="off"):
        pass
    assert capfd.readouterr().err == ""
