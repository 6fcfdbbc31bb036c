"""Concurrent study steps (``geodiv study --jobs N``): independent steps run at once, in plan order.

A step waits for the steps whose keys appear in its inputs (a diversity or pretraining step for its dataset, a
task for every dataset it keeps away from, an evaluation for its model and task) and for an earlier step with
the same key (which leaves it a cache hit). Steps that share a cache entry (``Step.shares``: the evaluations of one
model on one task, which read its frozen features) do not run at once: the first extracts the features and the
others then read them, where side by side each would extract them again. On a node with GPUs each pretraining or
evaluation step takes whole GPUs while it runs: one by default (so N pretrainings of different datasets train side
by side, one GPU each), ``nproc_per_node`` for a DDP pretraining under torchrun; steps without a GPU use the CPU.
Steps run in worker processes (``geodiv.study.runner``: without GPUs N workers serve every step; with GPUs each
step gets a fresh process that sees only its GPUs, ``CUDA_VISIBLE_DEVICES``), and their log lines are prefixed
with the step.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Any

from geodiv.errors import ConfigError
from geodiv.progress import log
from geodiv.study.plan import Step

#: How a step's time grows when ``--jobs N`` leaves it ``cores // N`` threads instead of all cores: by
#: ``(cores / threads) ** THREADS_EXPONENT``. Measured on the reference machine (2026-11-28): the quick study's
#: steps took 1,269 s with ``--jobs 2`` (one thread per step) against 852 s with one job, 1.49x; the three-group
#: standard-cpu study's (configs/study/standard_cpu_three_groups.yaml) 10,686 s with ``--jobs 2`` against 7,121 s
#: estimated for one job (``plan``'s refitted rates), 1.50x. So 1.5 = 2 ** 0.585. Its wall clock, 89.3 min, was
#: half of its sum (the two jobs stayed busy).
THREADS_EXPONENT = 0.585
#: Step kinds that run on a GPU when the node has some.
GPU_KINDS = ("pretrain", "evaluate")


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v)


def dependencies(steps: list[Step]) -> dict[int, set[int]]:
    """For each step (by position), the positions of the steps it must wait for."""
    first: dict[str, int] = {}
    for i, s in enumerate(steps):
        first.setdefault(s.key, i)
    deps: dict[int, set[int]] = {}
    for i, s in enumerate(steps):
        needs = {first[v] for value in s.inputs.values() for v in _strings(value) if v in first}
        if first[s.key] != i:  # an equal earlier step: this one is then a cache hit
            needs.add(first[s.key])
        needs.discard(i)
        deps[i] = needs
    return deps


def gpu_demand(step: Step, n_gpus: int, ddp_gpus: int = 1) -> int:
    """GPUs a step holds while it runs: none without GPUs or for CPU kinds, ``ddp_gpus`` for a pretraining."""
    if n_gpus == 0 or step.kind not in GPU_KINDS:
        return 0
    return min(n_gpus, ddp_gpus if step.kind == "pretrain" else 1)


def startable(
    steps: list[Step], deps: dict[int, set[int]], pending: list[int], complete: set[int], running: list[int],
    jobs: int, free_gpus: int, demand: Callable[[Step], int],
) -> list[int]:
    """The pending steps to start now, in plan order: while a slot is free, each whose dependencies are complete,
    whose GPUs are free and whose cache entry no running (or just chosen) step shares. The one rule of
    ``run_concurrently`` and of ``makespan``."""
    busy = {steps[i].shares for i in running}
    chosen: list[int] = []
    for i in pending:
        if len(running) + len(chosen) >= jobs:
            break
        need, share = demand(steps[i]), steps[i].shares
        if not deps[i] <= complete or need > free_gpus or (share and share in busy):
            continue
        busy.add(share)
        free_gpus -= need
        chosen.append(i)
    return chosen


def makespan(
    steps: list[Step], done: set[int], seconds: Callable[[Step], float], jobs: int,
    running: dict[int, float] | None = None, deps: dict[int, set[int]] | None = None,
) -> float:
    """Wall-clock seconds until every step not in ``done`` has run, ``jobs`` at a time as ``run_concurrently``
    starts them (CPU steps), each taking ``seconds(step)``; ``running`` maps steps already started to the seconds
    they still need. For the dry run's estimate and the ETA of ``--jobs N`` (which passes ``deps``, the steps'
    :func:`dependencies`, computed once for the run)."""
    deps = dependencies(steps) if deps is None else deps
    ends = {i: max(0.0, left) for i, left in (running or {}).items()}
    complete = set(done)
    pending = [i for i in range(len(steps)) if i not in complete and i not in ends]
    now = 0.0
    while pending or ends:
        for i in startable(steps, deps, pending, complete, list(ends), jobs, 0, lambda step: 0):
            pending.remove(i)
            ends[i] = now + max(0.0, seconds(steps[i]))
        if not ends:
            raise ConfigError(f"study steps wait on each other: {[steps[i].name for i in pending][:5]}")
        first = min(ends, key=ends.__getitem__)
        now = ends.pop(first)
        complete.add(first)
    return now


def concurrent_step_factor(jobs: int, cores: int) -> float:
    """Time of a step run beside ``jobs - 1`` others on ``cores`` cores, per second of its one-job estimate: the
    measured slowdown of its ``cores // jobs`` threads, and with more jobs than cores their share of a core."""
    jobs, cores = max(1, jobs), max(1, cores)
    threads = max(1, cores // jobs)
    return (cores / threads) ** THREADS_EXPONENT * max(1.0, jobs / cores)


def describe_wall_clock(steps: list[Step], done: set[int], jobs: int, cores: int) -> str:
    """The dry run's line for ``--jobs N``: the wall clock of the steps not in ``done``, run as the study runs them."""
    factor = concurrent_step_factor(jobs, cores)
    wall = makespan(steps, done, lambda s: s.estimate_s * factor, jobs)
    return (f"with --jobs {jobs} on {cores} cores: about {wall / 60:.1f} min of wall clock (each step on "
            f"{max(1, cores // jobs)} thread(s), {factor:.2f}x its estimate, started as the study starts them)")


def run_concurrently(
    steps: list[Step],
    done: set[int],
    submit: Callable[[int, Step, list[int]], Future],
    finished: Callable[[int, Step, Any], None],
    *,
    jobs: int,
    gpus: list[int],
    demand: Callable[[Step], int],
) -> None:
    """Run the steps not in ``done`` with at most ``jobs`` at once, each after the steps it depends on.

    ``submit(i, step, devices)`` starts step ``i`` on the GPUs ``devices`` and returns a future of its result,
    handed to ``finished(i, step, result)`` (which caches it) in this thread. Ready steps start in plan order when
    a slot and their GPUs are free and no running step shares their cache entry. If a step fails, no new step
    starts; the running ones finish and are kept, then the first error is raised.
    """
    if jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {jobs}")
    deps = dependencies(steps)
    complete = set(done)
    pending = [i for i in range(len(steps)) if i not in complete]
    free = sorted(gpus)
    running: dict[Future, tuple[int, list[int]]] = {}
    error: BaseException | None = None
    while pending or running:
        if error is None:
            for i in startable(steps, deps, pending, complete, [i for i, _ in running.values()], jobs, len(free),
                               demand):
                need = demand(steps[i])
                devices, free = free[:need], free[need:]
                pending.remove(i)
                announce(i, len(steps), steps[i], devices, len(running) + 1)
                running[submit(i, steps[i], devices)] = (i, devices)
        if not running:
            if pending and error is None:
                raise ConfigError(f"study steps wait on each other: {[steps[i].name for i in pending][:5]}")
            break
        over, _ = wait(list(running), return_when=FIRST_COMPLETED)
        for future in over:
            i, devices = running.pop(future)
            free = sorted(free + devices)
            try:
                result = future.result()
            except BaseException as err:  # noqa: BLE001 - kept, raised once the running steps are over
                error = error or err
                continue
            finished(i, steps[i], result)
            complete.add(i)
    if error is not None:
        raise error


def visible_gpus() -> list[int]:
    """Indices (within ``CUDA_VISIBLE_DEVICES``) of this node's GPUs; empty without CUDA."""
    try:
        import torch

        return list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    except ImportError:  # pragma: no cover - torch is a hard dependency
        return []


def device_env(devices: list[int]) -> dict[str, str]:
    """The environment that restricts a step's process to ``devices`` (indices into the parent's GPUs)."""
    if not devices:
        return {}
    parent = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [x.strip() for x in parent.split(",")] if parent else [str(d) for d in range(max(devices) + 1)]
    return {"CUDA_VISIBLE_DEVICES": ",".join(ids[d] for d in devices)}


def announce(i: int, n: int, step: Step, devices: list[int], n_running: int) -> None:
    where = f" on GPU {','.join(map(str, devices))}" if devices else ""
    log(f"[{i + 1}/{n}] start {step.kind} {step.name}{where} ({n_running} running)")
