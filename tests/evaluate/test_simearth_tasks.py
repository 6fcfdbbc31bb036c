import numpy as np
import pytest

from geodiv.errors import DataError, InputError, LockedError
from geodiv.evaluate.simearth_tasks import TASK_CONTINENTS, far_from, simearth_task
from geodiv.evaluate.tasks.registry import load_task


def test_simearth_task_is_balanced_disjoint_and_cached(tmp_path):
    ex_lat, ex_lon = np.array([48.0, -10.0]), np.array([10.0, -60.0])
    kwargs = dict(n_train=6, n_val=6, n_test=6, size=16, out_dir=tmp_path / "t", exclude=(ex_lat, ex_lon),
                  min_km=50.0)
    task = simearth_task("treecover", **kwargs)
    assert task.type == "regression" and task.n("test") == 6
    samples = list(task.iter_split("test"))
    assert sorted(s.continent for s in samples) == sorted(TASK_CONTINENTS)  # one per continent
    lat = np.array([s.lat for s in samples])
    lon = np.array([s.lon for s in samples])
    assert far_from(lat, lon, ex_lat, ex_lon, 50.0).all()
    assert all(0.0 <= s.label <= 1.0 and s.image.shape == (13, 16, 16) for s in samples)
    stamp = (tmp_path / "t" / "task.json").stat().st_mtime_ns
    again = simearth_task("treecover", **kwargs)  # same arguments: the folder is reused
    assert (tmp_path / "t" / "task.json").stat().st_mtime_ns == stamp and again.n("train") == 6
    # A truncated task.json is called damaged, not an unknown format.
    text = (tmp_path / "t" / "task.json").read_text()
    (tmp_path / "t" / "task.json").write_text(text[: len(text) // 2])
    with pytest.raises(DataError, match="task.json: cannot read the task description.*damaged or truncated"):
        load_task(tmp_path / "t")


def test_a_task_folder_being_written_is_locked(tmp_path, lock_holder):
    holder = lock_holder(tmp_path / "t")
    with pytest.raises(LockedError, match=f"pid {holder.pid}"):
        simearth_task("treecover", n_train=2, n_val=2, n_test=2, size=16, out_dir=tmp_path / "t")


def test_far_from_uses_great_circle_distance():
    # 1 degree of longitude at the equator is ~111 km
    assert far_from(np.array([0.0]), np.array([1.0]), np.array([0.0]), np.array([0.0]), 100.0)[0]
    assert not far_from(np.array([0.0]), np.array([1.0]), np.array([0.0]), np.array([0.0]), 120.0)[0]


def test_unknown_simearth_task():
    with pytest.raises(InputError, match="unknown SimEarth task"):
        simearth_task("nope")


def test_unknown_option_of_a_named_simearth_task_is_a_clear_error():
    from geodiv.evaluate.tasks.registry import load_task

    with pytest.raises(InputError, match=r"unknown option\(s\) for the SimEarth task 'landcover': imagery \(known: n_train"):
        load_task("landcover", imagery="cells/")


def test_simearth_task_shards_are_byte_identical_with_workers(tmp_path):
    kwargs = dict(n_train=7, n_val=0, n_test=6, size=16, shard_size=2)
    simearth_task("foresttype", out_dir=tmp_path / "one", **kwargs)
    simearth_task("foresttype", out_dir=tmp_path / "two", workers=2, **kwargs)
    for split in ("train", "test"):
        one = sorted((tmp_path / "one" / split).glob("*.[jt][sa]*"))
        two = sorted((tmp_path / "two" / split).glob("*.[jt][sa]*"))
        assert [p.name for p in one] == [p.name for p in two] and len(one) > 3  # shards + manifest
        assert all(a.read_bytes() == b.read_bytes() for a, b in zip(one, two))


def test_scene_task_is_class_stratified_and_follows_prevalence(tmp_path):
    from geodiv.simearth import ARRANGEMENT_GROUPS, STRUCTURES
    from geodiv.simearth.structures import prevalence
    from geodiv.simearth.world import lookup

    n = len(STRUCTURES)
    ex_lat, ex_lon = np.array([48.0]), np.array([10.0])
    task = simearth_task("scene", n_train=2 * n, n_val=n, n_test=n, size=16, out_dir=tmp_path / "s",
                         exclude=(ex_lat, ex_lon), min_km=20.0)
    assert task.type == "classification" and list(task.classes) == list(STRUCTURES)
    # the look-alike groups travel with the task (group metrics)
    assert task.class_groups == {g: list(m) for g, m in ARRANGEMENT_GROUPS.items()}
    for split, per_class in (("train", 2), ("test", 1)):
        labels = [s.label for s in task.iter_split(split)]
        assert np.bincount(labels, minlength=n).tolist() == [per_class] * n  # stratified by class
    samples = [s for split in ("train", "val", "test") for s in task.iter_split(split)]
    lat = np.array([s.lat for s in samples])
    lon = np.array([s.lon for s in samples])
    assert far_from(lat, lon, ex_lat, ex_lon, 20.0).all()
    geo = lookup(lat, lon)
    w = prevalence(geo["fractions"], geo["climate"], geo["continent"], geo["coastal"])
    # Every sample sits where its class occurs; coastal classes on coastal cells.
    assert all(w[i, s.label] > 0 for i, s in enumerate(samples))
    coastal = {STRUCTURES.index(k) for k in ("port", "aquaculture_ponds", "salt_pans")}
    assert all(geo["coastal"][i] for i, s in enumerate(samples) if s.label in coastal)


def test_settlement_task_regresses_building_density(tmp_path):
    task = simearth_task("settlement", n_train=8, n_val=4, n_test=8, size=32, out_dir=tmp_path / "d")
    labels = np.array([s.label for s in task.iter_split("train")])
    assert task.type == "regression" and (labels > 0).all() and labels.std() > 0
