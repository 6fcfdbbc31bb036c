"""The restricted unpickler builds plain data and refuses anything that could run code."""

from __future__ import annotations

import datetime
import os
import pickle

import numpy as np
import pytest

from geodiv.errors import DataError, UnsafeCheckpointError
from geodiv.evaluate.tasks._unpickle import PickledRecord, pickle_bytes_from_attr, safe_loads, to_plain


class _Exploit:
    """Unpickling this calls os.system (the classic pickle attack)."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


class _Plain:
    pass


class _EvalExploit:
    def __reduce__(self):
        return (eval, ("__import__('os').getcwd()",))


def test_plain_data_round_trips():
    data = {
        "label": 3,
        "names": ["a", "b"],
        "t": (1.5, None, True),
        "arr": np.arange(6, dtype=np.int16).reshape(2, 3),
        "scalar": np.float64(2.5),
        "date": datetime.date(2018, 6, 1),
        "when": datetime.datetime(2018, 6, 1, 10, 30),
        "s": {1, 2},
    }
    for protocol in (2, 4, 5):
        out = safe_loads(pickle.dumps(data, protocol=protocol), what="test")
        np.testing.assert_array_equal(out["arr"], data["arr"])
        assert out["arr"].dtype == np.int16
        assert out["scalar"] == 2.5 and out["date"] == data["date"] and out["when"] == data["when"]
        assert out["label"] == 3 and out["names"] == ["a", "b"] and out["t"] == (1.5, None, True) and out["s"] == {1, 2}


def test_os_system_is_refused_and_never_runs(tmp_path):
    target = tmp_path / "pwned"
    payload = pickle.dumps({"label": _Exploit(str(target))})
    with pytest.raises(UnsafeCheckpointError, match=r"sample\.hdf5.*(posix|os|nt)\.system"):
        safe_loads(payload, what="sample.hdf5")
    assert not target.exists()


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_eval_is_refused(protocol):
    with pytest.raises(UnsafeCheckpointError, match="builtins.eval"):
        safe_loads(pickle.dumps(_EvalExploit(), protocol=protocol), what="x")


def test_private_names_in_record_modules_are_refused():
    # A record module is allowed for class records only, not for private helpers that might be callable.
    payload = b"cgeobench\n_setup\n(tR."  # protocol 0: GLOBAL geobench._setup, call it with ()
    with pytest.raises(UnsafeCheckpointError, match="geobench._setup"):
        safe_loads(payload, what="x")


def test_instances_become_inert_records():
    from affine import Affine

    out = safe_loads(pickle.dumps({"transform": Affine(10, 0, 5, 0, -10, 3)}, protocol=4), what="x")
    record = out["transform"]
    assert isinstance(record, PickledRecord)
    assert record.type_path == "affine.Affine"
    assert record._args == (10.0, 0.0, 5.0, 0.0, -10.0, 3.0)
    plain = to_plain(out)
    assert plain["transform"]["__class__"] == "affine.Affine"
    assert plain["transform"]["__args__"] == [10.0, 0.0, 5.0, 0.0, -10.0, 3.0]


def test_classes_outside_the_allow_list_are_refused():
    with pytest.raises(UnsafeCheckpointError, match=r"test_task_unpickle\._Plain"):
        safe_loads(pickle.dumps(_Plain(), protocol=4), what="x")


def test_corrupt_pickle_is_a_data_error():
    with pytest.raises(DataError, match="corrupt"):
        safe_loads(pickle.dumps({"a": 1})[:-3], what="f.hdf5")


def test_geobench_attribute_is_a_bytes_literal():
    raw = pickle.dumps({"label": 1})
    assert pickle_bytes_from_attr(str(raw), what="x") == raw
    assert pickle_bytes_from_attr(raw, what="x") == raw
    with pytest.raises(DataError, match="not a bytes literal"):
        pickle_bytes_from_attr("__import__('os')", what="x")
