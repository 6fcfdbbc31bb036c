"""``run_study``: execute the plan step by step, skipping cached steps, then aggregate the results.

Each step calls the same public entry function as the corresponding CLI command (``build_dataset``,
``dataset_diversity``, ``pretrain``, ``simearth_task``/``load_task``, ``evaluate``), so the study is the CLI's
commands chained. Aggregates written at the end: ``results.csv``, ``diversity.csv`` and ``study.json``, which
``geodiv.report.write_report`` turns into the report.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from geodiv.atomic import HELD_ENV, atomic_open, folder_lock, write_json, write_text
from geodiv.diversity import HEADLINE_MEASURES, register_scorers
from geodiv.errors import ConfigError, DataError, InputError
from geodiv.machine import describe_machine
from geodiv.progress import log, progress_mode
from geodiv.study.cache import StepCache
from geodiv.study.config import StudyConfig, load_study_config
from geodiv.study.plan import (
    SPECTRAL_BASELINE,
    ZERO,
    Step,
    cached_steps,
    check_sections,
    dataset_config,
    format_plan,
    plan_study,
    pretrain_config,
)

#: Diversity measures the study aggregates into diversity.csv (and the report shows and correlates), in order.
DIVERSITY_COLUMNS = (*HEADLINE_MEASURES, "n_samples")


def run_study(
    config: str | os.PathLike[str] | None = None,
    profile: str | None = None,
    out: str | os.PathLike[str] = "study-out",
    dry_run: bool = False,
    study: StudyConfig | None = None,
    jobs: int = 1,
    workers: int = 1,
    scheduler: str | None = None,
) -> str | Path:
    """Run (or resume) a whole study into ``out``; with ``dry_run`` return the plan as text and run nothing.

    ``jobs`` > 1 runs independent steps at once (geodiv.study.concurrency), each with ``cores // jobs`` threads, so
    results equal a one-job run up to float summation order (``study.json`` records ``jobs``); ``workers`` /
    ``scheduler`` make the shards of each dataset and task in parallel (geodiv.data.parallel), byte-identical.
    """
    if not isinstance(jobs, int) or jobs < 1:
        raise ConfigError(f"--jobs must be an integer >= 1, got {jobs!r}")
    cfg = study if study is not None else load_study_config(config, profile)
    check_sections(cfg, str(config) if config is not None else f"profile {profile}" if profile else "<study config>")
    if jobs > 1 and cfg.launcher.nnodes > 1:
        raise ConfigError("--jobs runs steps side by side on one node; a launcher over several nodes needs every "
                          "node to start the same step at the same time: use --jobs 1 with launcher.nnodes > 1")
    out = Path(out).resolve()  # steps record paths relative to it (cache markers), so the folder can move
    cache = StepCache(out / "cache")
    steps = plan_study(cfg, out)
    _check_task_options(cfg)
    if dry_run:
        done = cached_steps(steps, cache)  # one read of each marker
        plan = format_plan(steps, done)
        if jobs == 1:
            return plan
        from geodiv.study import concurrency

        return plan + "\n" + concurrency.describe_wall_clock(steps, done, jobs, os.cpu_count() or 1)
    for s in steps:
        s.runtime.update(workers=workers, scheduler=scheduler)
    with folder_lock(out, "geodiv study"):  # one study per folder: a second run waits or stops
        _run_steps(cfg, steps, cache, out, jobs)
    return out


def _run_steps(cfg: StudyConfig, steps: list[Step], cache: StepCache, out: Path, jobs: int) -> None:
    start = time.perf_counter()
    if jobs > 1:
        _run_concurrent(cfg, steps, cache, out, jobs)
    else:
        _run_in_turn(cfg, steps, cache, out, start)
    aggregate(cfg, steps, out, time.perf_counter() - start, jobs)
    # Written last: a study that failed leaves no config that looks like a finished study's.
    write_text(out / "study-config.yaml", yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    log(f"study finished in {_fmt(time.perf_counter() - start)} -> {out}")


def _record_step(cache: StepCache, step: Step, took: float, out: Path) -> None:
    cache.put(step.kind, step.key, {"kind": step.kind, "name": step.name, "seconds": took,
                                    "outputs": step.outputs, "study_paths": _study_paths(step.outputs, out)})


def _run_in_turn(cfg: StudyConfig, steps: list[Step], cache: StepCache, out: Path, start: float) -> None:
    by_key = {s.key: s for s in steps}
    # Observed seconds per estimated second, per step kind: the ETA rescales the estimates of each kind by it.
    observed: dict[str, list[float]] = {}
    # Steps cached before the run, read once for the ETA (not once per step for every later step). The marker of
    # the step at hand is still read right before it runs: an equal earlier step may have just written it.
    cached_at_start = cached_steps(steps, cache)
    for i, step in enumerate(steps, 1):
        record = cache.get(step.kind, step.key)
        if record is not None:
            step.outputs.update(_recorded_outputs(record, out))
            continue
        pending = [s for j, s in enumerate(steps[i - 1:], i - 1) if j not in cached_at_start]
        log(f"[{i}/{len(steps)}] {step.kind} {step.name} (elapsed {_fmt(time.perf_counter() - start)}, "
            f"ETA {_fmt(_eta(pending, observed))})")
        t0 = time.perf_counter()
        outputs = _RUNNERS[step.kind](cfg, step, by_key, steps)
        took = time.perf_counter() - t0
        step.outputs.update(outputs)
        _record_step(cache, step, took, out)
        rate = f", {step.work / took:.0f} samples/s" if step.work and took > 0 else ""
        log(f"    done in {took:.1f}s{rate}")
        _observe(observed, step, took)


#: Step outputs that are paths; a cache marker also records them relative to the study folder ("study_paths").
PATH_OUTPUTS = ("dir", "json", "checkpoint", "reconstruction", "spec")


def _study_paths(outputs: dict[str, Any], out: Path) -> dict[str, str]:
    """The path outputs inside the study folder, relative to it (POSIX form)."""
    rel = {}
    for key in PATH_OUTPUTS:
        value = outputs.get(key)
        if isinstance(value, str) and Path(value).is_absolute() and Path(value).is_relative_to(out):
            rel[key] = Path(value).relative_to(out).as_posix()
    return rel


def _recorded_outputs(record: dict[str, Any], out: Path) -> dict[str, Any]:
    """A cached step's outputs, its paths inside the study resolved against the folder where the study is now."""
    outputs = dict(record.get("outputs", {}))
    for key, rel in (record.get("study_paths") or {}).items():
        outputs[key] = str(out / rel)
    return outputs


def _eta(pending: list[Step], observed: dict[str, list[float]]) -> float:
    """Seconds left: each step's estimate rescaled by what its own cost class took per estimated second so far.

    A class not seen yet keeps its built-in estimate: another class's ratio says little about it (the first step
    of a study also pays one-time start-up costs, and a slow kNN on segmentation says nothing of linear probes).
    """
    return sum(_expected_s(s, observed) for s in pending)


def _observe(observed: dict[str, list[float]], step: Step, took: float) -> None:
    real_est = observed.setdefault(step.cost_class, [0.0, 0.0])
    real_est[0] += took
    real_est[1] += step.estimate_s


def _expected_s(step: Step, observed: dict[str, list[float]], unseen: float = 1.0) -> float:
    """``step``'s estimate rescaled by the seconds its cost class took per estimated second so far (``observed``:
    class -> [seconds, estimated seconds]); ``unseen`` for a class not seen yet."""
    real, est = observed.get(step.cost_class, (0.0, 0.0))
    return step.estimate_s * (real / est if est > 0 else unseen)


def _fmt(seconds: float) -> str:
    seconds = max(0.0, seconds)
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


# ------------------------------------------------------------------------------------------- step kinds
def _run_dataset(cfg: StudyConfig, step: Step, by_key, steps) -> dict:
    from geodiv import data

    # A `diversity` strategy ranks candidates by the diversity stage's scorers; the data stage does not import
    # that later stage, so the study registers them.
    register_scorers()
    directory = Path(step.outputs["dir"])
    if "path" in step.inputs:
        data.read_manifest(directory)  # an existing dataset: check it is one
    else:
        data.build_dataset(dataset_config(cfg, step.name), directory, workers=step.runtime.get("workers", 1),
                           scheduler=step.runtime.get("scheduler"))
    return {"dir": str(directory)}


def _dataset_dir(steps: list[Step], name: str) -> Path:
    return Path(next(s for s in steps if s.kind == "dataset" and s.name == name).outputs["dir"])


def _run_diversity(cfg: StudyConfig, step: Step, by_key, steps) -> dict:
    from geodiv import diversity

    result = diversity.dataset_diversity(_dataset_dir(steps, step.name))
    write_json(step.outputs["json"], result)
    return {"json": step.outputs["json"]}


def _run_heldout(cfg: StudyConfig, step: Step, by_key, steps) -> dict:
    from geodiv import data

    exclude = [str(_dataset_dir(steps, d.name)) for d in cfg.datasets]
    data.build_dataset({**step.inputs["dataset"], "exclude": exclude}, Path(step.outputs["dir"]))
    return {"dir": step.outputs["dir"]}


def _run_pretrain(cfg: StudyConfig, step: Step, by_key, steps) -> dict:
    from geodiv import train
    from geodiv.train.heldout import read_heldout

    out_dir = Path(step.outputs["dir"])
    heldout = by_key[step.inputs["heldout"]].outputs["dir"] if "heldout" in step.inputs else None
    conf = pretrain_config(cfg, _dataset_dir(steps, step.outputs["dataset"]), out_dir, step.outputs["seed"], heldout)
    world = cfg.launcher.nproc_per_node * cfg.launcher.nnodes
    if world == 1:
        final = train.pretrain(train.PretrainConfig.model_validate(conf), resume=True)
    else:
        final = _torchrun_pretrain(cfg, conf, out_dir, step.runtime.get("port_offset", 0))
    return {"dir": str(out_dir), "checkpoint": str(final), "reconstruction": _newest_png(out_dir),
            "heldout": read_heldout(out_dir)}


def _torchrun_pretrain(cfg: StudyConfig, conf: dict[str, Any], out_dir: Path, port_offset: int = 0) -> Path:
    """Launch ``torchrun ... -m geodiv pretrain`` for several processes (GPUs or nodes) and wait for it."""
    from geodiv import train

    train.PretrainConfig.model_validate(conf)  # fail here, not in N processes
    config_path = out_dir / "pretrain.yaml"
    write_text(config_path, yaml.safe_dump(conf, sort_keys=False))
    launcher = cfg.launcher
    torchrun = shutil.which("torchrun") or "torchrun"
    cmd = [torchrun, f"--nnodes={launcher.nnodes}", f"--nproc_per_node={launcher.nproc_per_node}",
           f"--node_rank={launcher.node_rank}", f"--master_addr={launcher.master_addr}",
           f"--master_port={launcher.master_port + port_offset}",
           # torchrun's own per-run folder goes beside the model, not into a torchelastic_* folder left in /tmp
           f"--log-dir={out_dir / 'torchrun'}",
           "-m", "geodiv", "pretrain", str(config_path), "--resume"]
    log("launching: " + " ".join(cmd))
    proc = subprocess.run(cmd, check=False)
    if proc.returncode != 0:
        raise DataError(f"torchrun pretraining for {out_dir} failed with exit status {proc.returncode}; "
                        "rerun the study to resume from its last checkpoint")
    final = train.newest_checkpoint(out_dir)
    if final is None:
        raise DataError(f"torchrun pretraining wrote no checkpoint into {out_dir}")
    return final


def _newest_png(out_dir: Path) -> str | None:
    pngs = sorted(out_dir.rglob("*.png"), key=lambda p: p.stat().st_mtime)
    return str(pngs[-1]) if pngs else None


def _pretraining_locations(steps: list[Step]) -> tuple[np.ndarray, np.ndarray]:
    lats, lons = [], []
    for s in steps:
        if s.kind == "dataset":
            lat, lon, _ = dataset_locations(Path(s.outputs["dir"]))
            lats.append(lat)
            lons.append(lon)
    return np.concatenate(lats), np.concatenate(lons)


def dataset_locations(directory: Path) -> tuple[np.ndarray, np.ndarray, list[str | None]]:
    """Latitude, longitude and continent of every sample of a built dataset (its catalog, else its shards)."""
    from geodiv import data

    catalog = directory / "catalog.parquet"
    if catalog.is_file():
        frame = data.read_catalog(catalog, annotate=False)
        cont = frame["continent"].tolist() if "continent" in frame else [None] * len(frame)
        return frame["lat"].to_numpy(float), frame["lon"].to_numpy(float), cont
    lat, lon, cont = [], [], []
    for _key, _image, meta in data.iter_samples(directory, decode_image=False):  # metadata only
        lat.append(meta.get("lat", np.nan))
        lon.append(meta.get("lon", np.nan))
        cont.append(meta.get("continent"))
    return np.asarray(lat, float), np.asarray(lon, float), cont


def _run_task(cfg: StudyConfig, step: Step, by_key, steps) -> dict:
    from geodiv import simearth
    from geodiv.evaluate.simearth_tasks import simearth_task

    task = next(t for t in cfg.tasks if t.name == step.name)
    if task.name in simearth.TASKS:
        simearth_task(task.name, task.n_train, task.n_val, task.n_test, seed=cfg.data.seed + 1,
                      size=step.inputs["size"], exclude=_pretraining_locations(steps), out_dir=step.outputs["dir"],
                      workers=step.runtime.get("workers", 1), scheduler=step.runtime.get("scheduler"))
        return {"dir": step.outputs["dir"], "spec": step.outputs["dir"]}
    return {"dir": None, "spec": task.name}  # a path to a real task: loaded by evaluate


def _task_options(cfg: StudyConfig, name: str) -> dict:
    return next((dict(t.options) for t in cfg.tasks if t.name == name), {})


def _check_task_options(cfg: StudyConfig) -> None:
    """Load each real task that has options once, so a reader refuses a bad option before hours of pretraining."""
    from geodiv import simearth
    from geodiv.evaluate.tasks.base import TaskOptions, split_options
    from geodiv.evaluate.tasks.registry import load_task

    for task in cfg.tasks:
        if not task.options:
            continue
        if task.name not in simearth.TASKS:
            load_task(task.name, **task.options)
            continue
        _, extra = split_options(task.options)  # a SimEarth task is read back as a geodiv task folder
        if extra:
            raise InputError(
                f"study task {task.name!r}: option(s) {', '.join(sorted(extra))} do not apply to a SimEarth task "
                f"(set its sizes with n_train/n_val/n_test/size); its options are {', '.join(TaskOptions.model_fields)}"
            )


def _run_evaluate(cfg: StudyConfig, step: Step, by_key, steps) -> dict:
    from geodiv import evaluate

    model_key = step.inputs["model"]
    baseline = {ZERO: "random", SPECTRAL_BASELINE: "spectral"}
    dataset = step.outputs["dataset"]
    checkpoint = baseline[dataset] if dataset in baseline else by_key[model_key].outputs["checkpoint"]
    task_spec = by_key[step.inputs["task"]].outputs["spec"]
    records = evaluate.evaluate(
        checkpoint=checkpoint, task=task_spec, protocol=step.outputs["protocol"], by=step.inputs["by"],
        out=step.outputs["json"], config=step.inputs["config"], seed=step.outputs["seed"],
        task_options=_task_options(cfg, step.outputs["task"]),
    )
    return {"json": step.outputs["json"], "n_records": len(records)}


_RUNNERS = {
    "dataset": _run_dataset,
    "diversity": _run_diversity,
    "heldout": _run_heldout,
    "pretrain": _run_pretrain,
    "task": _run_task,
    "evaluate": _run_evaluate,
}


# ------------------------------------------------------------------------------------ concurrent steps
def _run_concurrent(cfg: StudyConfig, steps: list[Step], cache: StepCache, out: Path, jobs: int) -> None:
    """``--jobs N``: each step in its own process, N at a time, GPUs shared out (geodiv.study.concurrency)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from geodiv.data.parallel import die_with_parent
    from geodiv.study import concurrency

    gpus = concurrency.visible_gpus()
    launcher = cfg.launcher
    ddp = launcher.nproc_per_node if launcher.nproc_per_node * launcher.nnodes > 1 else 1
    done = set()
    for i, s in enumerate(steps):
        record = cache.get(s.kind, s.key)
        if record is not None:
            s.outputs.update(_recorded_outputs(record, out))
            done.add(i)
    threads = max(1, (os.cpu_count() or 1) // jobs)
    log(f"study: {len(steps) - len(done)} of {len(steps)} steps to run, {jobs} at a time"
        f"{f' on {len(gpus)} GPU(s)' if gpus else ''}")
    pools: dict[int, ProcessPoolExecutor] = {}
    ctx = multiprocessing.get_context("spawn")  # no inherited state (CUDA, threads, open files)
    # With GPUs each step gets a fresh process: CUDA_VISIBLE_DEVICES is fixed once CUDA starts. Without, `jobs`
    # processes serve every step, so each imports torch and geodiv once instead of once per step (seconds each, on
    # the quick study's ~100 short steps). Steps seed themselves and read their log prefix at call time.
    # Workers end with the study (die_with_parent): a study stopped by a signal leaves no step running on.
    pool_kw = {"mp_context": ctx, "initializer": die_with_parent, "initargs": (os.getpid(),)}
    shared = None if gpus else ProcessPoolExecutor(max_workers=jobs, **pool_kw)

    # The ETA: the steps left, scheduled as run_concurrently starts them, each taking its estimate rescaled by what
    # its cost class took so far in this run (before any, by the --jobs slowdown of concurrency.concurrent_step_factor).
    start, started, complete = time.perf_counter(), {}, set(done)
    observed: dict[str, list[float]] = {}
    unseen = concurrency.concurrent_step_factor(jobs, os.cpu_count() or 1)
    deps = concurrency.dependencies(steps)
    # Step processes report progress as log lines (prefixed with the step): two bars would draw over each other.
    step_progress = "0" if progress_mode() == "off" else "log"

    def eta() -> float:
        now = time.perf_counter()
        left = {j: _expected_s(steps[j], observed, unseen) - (now - t) for j, t in started.items() if j not in complete}
        return concurrency.makespan(steps, complete, lambda s: _expected_s(s, observed, unseen), jobs, left, deps)

    def submit(i: int, step: Step, devices: list[int]):
        started[i] = time.perf_counter()
        step.runtime["port_offset"] = devices[0] if devices else 0  # side-by-side torchruns on one node
        env = {**concurrency.device_env(devices), "GEODIV_PROGRESS": step_progress, "GEODIV_LOG_PREFIX": f"[{step.kind} {step.name}] ",
               HELD_ENV: os.path.realpath(out)}  # the study holds its folder's lock for its steps
        if shared is not None:
            return shared.submit(_step_process, cfg, i, steps, env, threads)
        pools[i] = ProcessPoolExecutor(max_workers=1, **pool_kw)
        return pools[i].submit(_step_process, cfg, i, steps, env, threads)

    def finished(i: int, step: Step, result: tuple[dict, float]) -> None:
        if i in pools:
            pools.pop(i).shutdown()
        outputs, took = result
        step.outputs.update(outputs)
        _record_step(cache, step, took, out)
        rate = f", {step.work / took:.0f} samples/s" if step.work and took > 0 else ""
        complete.add(i)
        _observe(observed, step, took)
        log(f"[{i + 1}/{len(steps)}] done {step.kind} {step.name} in {took:.1f}s{rate} "
            f"(elapsed {_fmt(time.perf_counter() - start)}, ETA {_fmt(eta())})")

    try:
        concurrency.run_concurrently(steps, done, submit, finished, jobs=jobs, gpus=gpus,
                                  demand=lambda s: concurrency.gpu_demand(s, len(gpus), ddp))
    finally:
        for pool in [*pools.values(), *([shared] if shared is not None else [])]:
            pool.shutdown(cancel_futures=True)


def _step_process(cfg: StudyConfig, i: int, steps: list[Step], env: dict[str, str], threads: int) -> tuple[dict, float]:
    """In a step's own process: its GPUs and log prefix set before anything touches CUDA; (outputs, seconds)."""
    os.environ.update(env)
    import torch

    torch.set_num_threads(threads)
    step = steps[i]
    t0 = time.perf_counter()
    outputs = _RUNNERS[step.kind](cfg, step, {s.key: s for s in steps}, steps)
    return outputs, time.perf_counter() - t0


# --------------------------------------------------------------------------------------------- aggregate
def aggregate(cfg: StudyConfig, steps: list[Step], out: Path, wall: float, jobs: int = 1) -> None:
    """Write results.csv, diversity.csv and study.json (what the report reads)."""
    rows = []
    for s in steps:
        if s.kind != "evaluate":
            continue
        for rec in json.loads(Path(s.outputs["json"]).read_text(encoding="utf-8")):
            rows.append({"dataset": s.outputs["dataset"], "seed": s.outputs["seed"], **rec,
                         "task": s.outputs["task"]})
    results = pd.DataFrame(rows)
    with atomic_open(out / "results.csv", "w", encoding="utf-8", newline="") as fh:
        results.to_csv(fh, index=False)
    div_rows = []
    for s in steps:
        if s.kind == "diversity":
            d = json.loads(Path(s.outputs["json"]).read_text(encoding="utf-8"))
            div_rows.append({"dataset": s.name, **{c: d.get(c) for c in DIVERSITY_COLUMNS}})
    with atomic_open(out / "diversity.csv", "w", encoding="utf-8", newline="") as fh:
        pd.DataFrame(div_rows).to_csv(fh, index=False)
    write_json(out / "study.json", study_meta(cfg, steps, out, wall, jobs))


def study_meta(cfg: StudyConfig, steps: list[Step], out: Path, wall: float, jobs: int = 1) -> dict:
    from geodiv.evaluate.metrics import METRICS_BY_TYPE
    from geodiv.evaluate.tasks.registry import load_task

    tasks = {}
    for s in steps:
        if s.kind == "task":
            t = load_task(s.outputs["spec"], **_task_options(cfg, s.name))
            tasks[s.name] = {"type": t.type, "metric": METRICS_BY_TYPE[t.type][0], "classes": t.classes}
    points = {}
    for s in steps:
        if s.kind == "dataset":
            lat, lon, cont = dataset_locations(Path(s.outputs["dir"]))
            points[s.name] = {"lat": np.round(lat, 4).tolist(), "lon": np.round(lon, 4).tolist(),
                              "continent": [c if isinstance(c, str) else None for c in cont]}
    recon, recon_losses = {}, {}
    for s in steps:
        if s.kind == "pretrain" and s.outputs.get("reconstruction") and s.outputs["seed"] == cfg.seeds[0]:
            recon[s.outputs["dataset"]] = os.path.relpath(s.outputs["reconstruction"], out)
        if s.kind == "pretrain" and s.outputs.get("heldout"):
            h = s.outputs["heldout"]
            recon_losses.setdefault(s.outputs["dataset"], []).append(
                {"seed": s.outputs["seed"], **{k: h[k] for k in ("n", "mae_loss", "mean_visible_loss")}})
    # Wall time by step kind over all runs of this study (each step's time is kept in its cache marker).
    cache = StepCache(out / "cache")
    timings = {}
    for s in steps:
        rec = cache.get(s.kind, s.key) or {}
        timings[s.kind] = timings.get(s.kind, 0.0) + float(rec.get("seconds", 0.0))
    timings["total (this run)"] = wall
    return {
        "name": cfg.name,
        "tasks": tasks,
        "protocols": list(cfg.evaluation.protocols),
        "main_protocol": cfg.evaluation.main_protocol,
        "seeds": list(cfg.seeds),
        "datasets": {d.name: {"region": d.region, "dir": os.path.relpath(_dataset_dir(steps, d.name), out)}
                     for d in cfg.datasets},
        "sample_points": points,
        "reconstructions": recon,
        "reconstruction_losses": recon_losses,
        "timings": timings,
        "jobs": jobs,  # of the run that wrote this; steps ran with cores // jobs threads (summation order)
        "python": sys.version.split()[0],
        # Of the run that wrote this, like "jobs": steps cached by an earlier run on another machine are not told
        # apart. CPU numbers repeat to the bit only on the same kind of CPU (geodiv.machine).
        "machine": describe_machine(),
    }
