import pytest

from geodiv.train import logs
from geodiv.train.logs import MetricsLog, read_log


class FakeWriter:
    """Stands in for TensorBoard's SummaryWriter (not installed here): records what it is given."""

    instances: list["FakeWriter"] = []

    def __init__(self, log_dir, purge_step=None):
        self.log_dir, self.purge_step, self.scalars, self.closed = log_dir, purge_step, [], False
        FakeWriter.instances.append(self)

    def add_scalar(self, tag, value, step):
        self.scalars.append((tag, value, step))

    def flush(self):
        pass

    def close(self):
        self.closed = True


def _row(step, loss):
    return {"epoch": 0, "step": step, "lr": 0.1 * step, "loss": loss, "samples_per_s": 10.0}


def test_csv_is_whole_after_every_row_and_resume_drops_later_rows(tmp_path):
    log = MetricsLog(tmp_path, enabled=True, tensorboard=False)
    for step in (1, 2, 3):
        log.append(**_row(step, 1.0 / step))
        assert [r["step"] for r in read_log(tmp_path)] == list(range(1, step + 1))
    log.close()
    resumed = MetricsLog(tmp_path, enabled=True, tensorboard=False, resume_step=2)
    assert [r["step"] for r in read_log(tmp_path)] == [1, 2]
    resumed.append(**_row(3, 0.25))
    rows = read_log(tmp_path)
    assert [r["loss"] for r in rows] == [1.0, 0.5, 0.25]
    with pytest.raises(ValueError, match="lacks"):
        resumed.append(step=4)


def test_other_ranks_write_nothing(tmp_path):
    log = MetricsLog(tmp_path / "x", enabled=False, tensorboard=True)
    log.append(**_row(1, 1.0))
    assert not (tmp_path / "x").exists()


def test_tensorboard_scalars_when_installed(tmp_path, monkeypatch):
    FakeWriter.instances.clear()
    monkeypatch.setattr(logs, "tensorboard_writer_class", lambda: FakeWriter)
    log = MetricsLog(tmp_path, enabled=True, tensorboard=True, resume_step=5)
    log.append(**_row(6, 0.5))
    log.close()
    (writer,) = FakeWriter.instances
    assert writer.purge_step == 5 and writer.closed
    assert ("train/loss", 0.5, 6) in writer.scalars and ("train/lr", pytest.approx(0.6), 6) in writer.scalars
    FakeWriter.instances.clear()
    MetricsLog(tmp_path, enabled=True, tensorboard=False)
    assert FakeWriter.instances == []
