"""geodiv study --jobs N: dependencies, concurrency limit and GPU assignment of the step scheduler."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from geodiv.errors import ConfigError
from geodiv.study.concurrency import dependencies, device_env, gpu_demand, makespan, run_concurrently
from geodiv.study.plan import Step, plan_study


def _step(kind: str, name: str, key: str, **inputs) -> Step:
    return Step(kind, name, key, 1.0, inputs)


def _plan() -> list[Step]:
    """Two datasets -> diversity, pretraining (two each), a task over both, evaluations of models on the task."""
    steps = [_step("dataset", "a", "A"), _step("dataset", "b", "B")]
    steps += [_step("diversity", d, f"div{d}", dataset=d.upper()) for d in "ab"]
    steps += [_step("pretrain", f"{d}{s}", f"P{d}{s}", dataset=d.upper()) for d in "ab" for s in (0, 1)]
    steps += [_step("task", "t", "T", exclude=["A", "B"])]
    steps += [_step("evaluate", f"{d}{s}", f"E{d}{s}", model=f"P{d}{s}", task="T", config={"k": "A"})
              for d in "ab" for s in (0, 1)]
    steps += [_step("evaluate", "zero", "EZ", model="zero-key", task="T")]
    return steps


def _run(steps, jobs, gpus, done=(), fail=None, seconds=0.03):
    """Run the fake steps on threads; return (start, end, devices) per step and the peak concurrency."""
    log: dict[int, tuple[float, float, list[int]]] = {}
    lock = threading.Lock()
    live = {"now": 0, "peak": 0}
    pool = ThreadPoolExecutor(max_workers=8)

    def work(i, devices):
        with lock:
            live["now"] += 1
            live["peak"] = max(live["peak"], live["now"])
        t0 = time.perf_counter()
        time.sleep(seconds)
        with lock:
            live["now"] -= 1
        if steps[i].key == fail:
            raise RuntimeError(f"step {fail} broke")
        return t0, time.perf_counter(), devices

    finished = []
    run_concurrently(steps, set(done), lambda i, s, d: pool.submit(work, i, d),
                     lambda i, s, r: (log.__setitem__(i, r), finished.append(i)), jobs=jobs, gpus=gpus,
                     demand=lambda s: gpu_demand(s, len(gpus)))
    pool.shutdown()
    return log, live["peak"], finished


def test_dependencies_come_from_the_keys_in_each_steps_inputs():
    steps = _plan()
    deps = dependencies(steps)
    pos = {s.key: i for i, s in enumerate(steps)}
    assert deps[pos["A"]] == set() and deps[pos["diva"]] == {pos["A"]} and deps[pos["Pb1"]] == {pos["B"]}
    assert deps[pos["T"]] == {pos["A"], pos["B"]}
    assert deps[pos["Ea0"]] == {pos["Pa0"], pos["T"]}  # a dict input ({"k": "A"}) is not a dependency
    assert deps[pos["EZ"]] == {pos["T"]}  # zero pretraining has no model step
    twice = [_step("dataset", "a", "A"), _step("dataset", "a-again", "A")]
    assert dependencies(twice) == {0: set(), 1: {0}}  # an equal step waits and is then a cache hit


def test_steps_start_after_their_dependencies_and_at_most_jobs_at_once():
    steps = _plan()
    log, peak, finished = _run(steps, jobs=3, gpus=[])
    assert sorted(finished) == list(range(len(steps))) and peak == 3
    for i, needs in dependencies(steps).items():
        assert all(log[j][1] <= log[i][0] for j in needs), steps[i].name
    # with one job the order is the plan's order
    _, peak, finished = _run(steps, jobs=1, gpus=[], seconds=0.0)
    assert peak == 1 and finished == list(range(len(steps)))


def test_pretrainings_and_evaluations_each_take_their_own_gpu():
    steps = _plan()
    log, peak, _ = _run(steps, jobs=8, gpus=[0, 1])
    on_gpu = [i for i, s in enumerate(steps) if s.kind in ("pretrain", "evaluate")]
    assert all(len(log[i][2]) == 1 for i in on_gpu)
    assert all(log[i][2] == [] for i, s in enumerate(steps) if s.kind in ("dataset", "diversity", "task"))
    for i in on_gpu:  # no two steps overlap in time on one GPU
        for j in on_gpu:
            if i < j and log[i][2] == log[j][2]:
                assert log[i][1] <= log[j][0] or log[j][1] <= log[i][0]
    pretrain = [i for i in on_gpu if steps[i].kind == "pretrain"]
    assert {log[i][2][0] for i in pretrain} == {0, 1}  # pretrainings of both datasets side by side
    assert gpu_demand(steps[4], 8, ddp_gpus=4) == 4 and gpu_demand(steps[4], 0, ddp_gpus=4) == 0


def test_cached_steps_are_skipped_and_a_failure_stops_new_steps():
    steps = _plan()
    pos = {s.key: i for i, s in enumerate(steps)}
    log, _, finished = _run(steps, jobs=2, gpus=[], done={pos["A"], pos["B"]})
    assert pos["A"] not in log and len(finished) == len(steps) - 2
    with pytest.raises(RuntimeError, match="step T broke"):
        _run(steps, jobs=2, gpus=[], fail="T")
    with pytest.raises(ConfigError, match="jobs must be >= 1"):
        _run(steps, jobs=0, gpus=[])


def test_steps_that_share_a_cache_entry_never_run_at_once():
    # three protocols of one model on one task share its features; the other model's steps fill the free slot
    steps = [Step("evaluate", f"{m} {p}", f"E{m}{p}", 1.0, {}, shares=f"features {m}")
             for m in "ab" for p in ("knn", "linear", "finetune")]
    log, peak, finished = _run(steps, jobs=2, gpus=[])
    assert peak == 2 and sorted(finished) == list(range(6))
    for i in range(6):
        for j in range(i + 1, 6):
            if steps[i].shares == steps[j].shares:
                assert log[i][1] <= log[j][0] or log[j][1] <= log[i][0], (steps[i].name, steps[j].name)
    # with jobs=6 only one step of each share runs at a time: two at once at most
    _, peak, _ = _run(steps, jobs=6, gpus=[])
    assert peak == 2


def test_makespan_schedules_the_steps_as_the_study_runs_them():
    """The dry run's and the ETA's wall clock: the same start rule as run_concurrently, on simulated time."""
    steps = _plan()  # 2 datasets, 2 diversity, 4 pretrainings, 1 task, 5 evaluations
    seconds = {"dataset": 10.0, "diversity": 1.0, "pretrain": 100.0, "task": 5.0, "evaluate": 20.0}
    cost = lambda s: seconds[s.kind]  # noqa: E731
    assert makespan(steps, set(), cost, jobs=1) == sum(cost(s) for s in steps) == 527.0
    # 2 jobs, in plan order: A, B end at 10 | diva, divb 11 | Pa0, Pa1 111 | Pb0, Pb1 211 | T 216 (alone: every
    # evaluation waits for it) | Ea0, Ea1 236 | Eb0, Eb1 256 | EZ 276
    assert makespan(steps, set(), cost, jobs=2) == 276.0
    assert makespan(steps, set(), cost, jobs=100) == 10 + 100 + 20  # the longest chain: dataset, pretrain, evaluate
    pos = {s.key: i for i, s in enumerate(steps)}
    done = {i for i, s in enumerate(steps) if s.kind != "evaluate"}
    assert makespan(steps, done, cost, jobs=5) == 20.0
    # a step already running needs only what it has left
    assert makespan(steps, done - {pos["Pa0"]}, cost, jobs=5, running={pos["Pa0"]: 30.0}) == 30.0 + 20.0
    # steps that share a cache entry run one after the other, whatever the jobs
    shared = [Step("evaluate", f"a {p}", f"Ea{p}", 1.0, {}, shares="features a") for p in ("knn", "linear")]
    assert makespan(shared, set(), lambda s: 5.0, jobs=4) == 10.0


def test_device_env_maps_indices_through_the_parents_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6")
    assert device_env([1, 2]) == {"CUDA_VISIBLE_DEVICES": "5,6"} and device_env([]) == {}
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert device_env([3]) == {"CUDA_VISIBLE_DEVICES": "3"}


def test_cli_study_refuses_zero_jobs(tmp_path, capsys):
    from geodiv.cli import main

    assert main(["study", "--profile", "quick", "--out", str(tmp_path / "s"), "--jobs", "0"]) == 2
    assert "--jobs must be an integer >= 1" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()  # nothing written


def test_concurrent_steps_refuse_a_study_over_several_nodes(tmp_path):
    # a study launched on several nodes needs every node to start the same step at the same time: --jobs > 1 is
    # refused before anything is written
    from geodiv.study import run_study

    from .conftest import micro_study

    with pytest.raises(ConfigError, match="one node"):
        run_study(study=micro_study(launcher={"nnodes": 2, "nproc_per_node": 1}), out=tmp_path / "m", jobs=2)
    assert not (tmp_path / "m").exists()


def test_the_real_plan_has_no_dependency_on_a_later_step(micro, tmp_path):
    steps = plan_study(micro, tmp_path)
    assert all(max(needs, default=-1) < i for i, needs in dependencies(steps).items())
    kinds = {steps[j].kind for i, s in enumerate(steps) if s.kind == "evaluate" for j in dependencies(steps)[i]}
    assert kinds == {"pretrain", "task"}
    # the evaluations of one model on one task share its frozen features, and nothing else shares
    evaluations = [s for s in steps if s.kind == "evaluate"]
    groups = {(s.inputs["model"], s.inputs["task"]) for s in evaluations}
    assert len({s.shares for s in evaluations}) == len(groups)
    assert all(s.shares == "" for s in steps if s.kind != "evaluate")


@pytest.mark.slow
def test_a_study_with_jobs_gives_the_results_of_one_job(tmp_path, capfd, monkeypatch):
    import re

    import pandas as pd

    from geodiv.study import run_study

    from .conftest import micro_study

    study = micro_study(
        datasets=[{"name": "europe", "region": "Europe", "strategy": {"kind": "one_hot", "continent": "Europe"}},
                  {"name": "africa", "region": "Africa", "strategy": {"kind": "one_hot", "continent": "Africa"}}],
        tasks=[{"name": "treecover", "n_train": 24, "n_val": 12, "n_test": 24, "protocols": ["knn"]}],
    )
    run_study(study=study, out=tmp_path / "one")
    capfd.readouterr()
    monkeypatch.setenv("GEODIV_PROGRESS", "bar")  # a terminal's choice: the step processes still write lines
    monkeypatch.setenv("GEODIV_PROGRESS_INTERVAL", "0")
    run_study(study=study, out=tmp_path / "two", jobs=2, workers=2)
    err = capfd.readouterr().err
    # inside a step, progress lines carry the step's prefix, the count and the ETA; no bar is drawn
    assert re.search(r"\] \[pretrain europe seed 0\] pretrain: \d+/\d+ step \(\d+%\), .*ETA \d\d:\d\d", err)
    assert "\r" not in err
    # every finished step says how long the study has run and how long the rest should take
    done = [line for line in err.splitlines() if "] done " in line]
    assert done and all(re.search(r"\(elapsed \d+m\d\ds, ETA \d+m\d\ds\)$", line) for line in done)
    assert done[-1].endswith("ETA 0m00s)")
    # paths differ; checkpoints agree up to float summation order (each step runs in a process of its own)
    one = pd.read_csv(tmp_path / "one" / "results.csv").drop(columns=["checkpoint", "checkpoint_id"])
    two = pd.read_csv(tmp_path / "two" / "results.csv").drop(columns=["checkpoint", "checkpoint_id"])
    pd.testing.assert_frame_equal(one, two, check_exact=False, rtol=1e-4, atol=1e-6)
    assert json.loads((tmp_path / "two" / "study.json").read_text())["jobs"] == 2
    assert len(list((tmp_path / "two" / "cache").glob("*.json"))) == len(list((tmp_path / "one" / "cache").glob("*.json")))
