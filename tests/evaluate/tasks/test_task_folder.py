"""geodiv task folders: write_task -> task.json + shard folders, read back through load_task."""

from __future__ import annotations

import json

import numpy as np
import pytest

from geodiv.errors import DataError, InputError
from geodiv.evaluate.tasks.base import TaskSample
from geodiv.evaluate.tasks.registry import detect_format, load_task
from geodiv.evaluate.tasks.task_folder import write_task

PLACES = [(48.85, 2.35), (-23.55, -46.63), (35.68, 139.69), (40.71, -74.0)]


def _samples(n, kind, seed):
    rng = np.random.default_rng(seed)
    for i in range(n):
        lat, lon = PLACES[i % 4]
        img = rng.integers(0, 5000, (3, 6, 6)).astype(np.uint16)
        label = rng.integers(0, 2, (6, 6)).astype(np.uint8) if kind == "segmentation" else int(i % 3)
        yield TaskSample(key=f"k{seed}_{i}", image=img, label=label, lat=lat, lon=lon)


@pytest.mark.parametrize("kind,classes", [("classification", ["a", "b", "c"]), ("segmentation", ["x", "y"])])
def test_round_trip(tmp_path, kind, classes):
    written = {s: list(_samples(n, kind, seed)) for s, n, seed in (("train", 5, 0), ("val", 2, 1), ("test", 3, 2))}
    out = write_task(tmp_path / "task", name="toy", type=kind, classes=classes, bands=["B2", "B3", "B4"],
                     splits={k: iter(v) for k, v in written.items()}, shard_size=2)
    assert detect_format(out) == "geodiv"
    task = load_task(out)
    assert (task.name, task.type, task.classes, task.bands) == ("toy", kind, classes, ["B2", "B3", "B4"])
    assert [task.n(s) for s in task.splits()] == [5, 2, 3]
    for split, expected in written.items():
        got = list(task.iter_split(split))
        assert [g.key for g in got] == [e.key for e in expected]
        for g, e in zip(got, expected):
            np.testing.assert_array_equal(g.image, e.image)
            np.testing.assert_array_equal(g.label, e.label)
            assert (g.lat, g.lon) == (e.lat, e.lon)
    assert [s.continent for s in task.iter_split("train")][:4] == ["Europe", "South America", "Asia", "North America"]
    few = load_task(out, train_fraction=0.4, seed=0)
    assert few.n("train") == 2 and len(list(few.iter_split("train"))) == 2


def test_bad_task_json(tmp_path):
    out = write_task(tmp_path / "t", name="toy", type="classification", classes=["a", "b", "c"], bands=["B2", "B3", "B4"],
                     splits={"train": _samples(2, "classification", 0)})
    spec = json.loads((out / "task.json").read_text())
    spec["splits"]["test"] = "missing"
    (out / "task.json").write_text(json.dumps(spec))
    with pytest.raises(DataError, match=r"task\.json: split 'test' points at .*missing, which does not exist"):
        load_task(out)


def test_class_groups_round_trip_and_bad_groups_are_named(tmp_path):
    groups = {"look-alikes": ["a", "b"]}
    out = write_task(tmp_path / "g", name="toy", type="classification", classes=["a", "b", "c"],
                     bands=["B2", "B3", "B4"], splits={"train": _samples(3, "classification", 0)},
                     class_groups=groups)
    task = load_task(out)
    assert task.class_groups == groups and task.describe()["class_groups"] == groups
    spec = json.loads((out / "task.json").read_text())
    for bad, message in (({"g": ["a", "z"]}, "names 'z', which is not one of the task's classes"),
                         ({"g": ["a"]}, "has 1 class"),
                         ({"g": ["a", "b"], "h": ["b", "c"]}, "class 'b' is in groups 'g' and 'h'"),
                         (["a", "b"], "must map each group name to a list")):
        (out / "task.json").write_text(json.dumps({**spec, "class_groups": bad}))
        with pytest.raises(DataError, match=r"task\.json: .*" + message):
            load_task(out)
    (out / "task.json").write_text(json.dumps({**spec, "type": "segmentation", "class_groups": groups}))
    with pytest.raises(DataError, match="applies to classification tasks.*fix or remove 'class_groups'"):
        load_task(out)
    with pytest.raises(InputError, match="has 1 class"):  # the writer checks them too
        write_task(tmp_path / "w", name="toy", type="classification", classes=["a", "b"], bands=["B2", "B3", "B4"],
                   splits={"train": _samples(2, "classification", 0)}, class_groups={"g": ["a"]})
    assert not (tmp_path / "w").exists()  # before writing anything
    plain = write_task(tmp_path / "p", name="toy", type="classification", classes=["a", "b", "c"],
                       bands=["B2", "B3", "B4"], splits={"train": _samples(3, "classification", 0)})
    assert load_task(plain).class_groups is None and "class_groups" not in load_task(plain).describe()
