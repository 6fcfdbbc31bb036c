"""The plan of a study: an ordered list of steps, each keyed by a hash of its inputs, with a cost estimate.

Keys are computed from the configuration alone (a step's key includes the keys of the steps it consumes), so
the whole plan, with what is cached and what is left, is known before anything runs (``--dry-run``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geodiv.bands import S2_BANDS
from geodiv.evaluate.config import DEFAULT_C_GRID, LinearConfig
from geodiv.models.presets import MODEL_SIZES
from geodiv.study.cache import StepCache, step_key
from geodiv.study.config import PAPER_CONTINENTS, StudyConfig, TaskSection

ZERO = "zero-pretraining"
#: Dataset name of the spectral-statistics baseline's rows (``geodiv.evaluate.baseline``).
SPECTRAL_BASELINE = "spectral-baseline"
#: Rows that are baselines, not pretraining datasets (no diversity, left out of correlations).
BASELINES = (ZERO, SPECTRAL_BASELINE)

#: Single-process CPU costs per unit on the reference 2-core machine (idle), for --dry-run estimates and the first
#: ETA; the runner then rescales each cost class by the times it observes. Units count "96-px samples": a sample of
#: size s counts (s / 96)^2. Where each number comes from (docs/study.md, "Estimates and the ETA"; the pretraining
#: and evaluation rates were refitted on 2026-11-28 from a quick study run with one job, every step timed):
#: - SimEarth builds (datasets, held-out set): 173 patches/s (BENCHMARKS.md, data: build_dataset from SimEarth
#:   96 px), plus 2.3 s per build (catalog and candidates: BENCHMARKS.md's quick study spent 40.8 s on its 10 dataset
#:   and task builds of 6,776 patches at 64 px, of which 17.4 s at the simulator's rate). A task patch costs 2.2 of
#:   them (its labels; `scene` and `settlement` draw a structure at every patch centre): the quick study's four tasks
#:   took 36 s against 16.5 s at the dataset rate.
SIM_PATCHES_PER_S = 173.0
SIM_SETUP_S = 2.3
TASK_PATCH_COST = 2.2
#: - Pretraining (tiny): 32 sample-steps/s plus 0.026 s per optimiser step: the quick recipe (3 epochs of 768
#:   samples at 64 px) took 49.7 s at batch 4 and 36.6 s at batch 32 in one process with 2 threads, and 47 s per set
#:   inside the one-job quick study. Check: the three-group standard-cpu study's pretrainings (26 epochs of 2,048
#:   at batch 32, beside another job) took 1,118-1,224 s; this gives 782 s x the 1.5 slowdown of `concurrency` =
#:   1,174 s.
TRAIN_SAMPLES_PER_S_TINY = 32.0
TRAIN_STEP_S = 0.026
#: - Evaluation, from the same one-job run (36 first frozen-feature steps, 36 later ones, 9 fine-tunings): the first
#:   frozen-feature protocol of a model and task (features, heads, metrics): 49 samples/s; a later one, reading the
#:   cached features: 0.34 of that (the linear probe's C grid and its per-continent heads); fine-tuning: 20
#:   sample-steps/s (every token and the whole encoder's backward pass), plus one feature pass for the probe
#:   initialisation of the head; a segmentation linear probe: 3,300 (patch token x grid value) fits/s on its
#:   global head's train + val tokens (its continent heads fitting as many again; `_probe_token_rows`), fitted to
#:   the three-group standard-cpu study's nine (the quick profile has none): 414 s with `--jobs 2`, i.e. 276 s
#:   before the 1.5 slowdown of `concurrency`, where 12,800/s (timed under load and rescaled) had given 83 s.
FORWARD_SAMPLES_PER_S_TINY = 49.0
LATER_PROTOCOL_SHARE = 0.34
LINEAR_TOKEN_FITS_PER_S = 3_300.0
FINETUNE_SAMPLES_PER_S_TINY = 20.0
#: Cost of a preset relative to tiny (FLOPs per sample, satmae.md: tiny 3.02, base 132 GFLOP per step).
PRESET_COST = {"tiny": 1.0, "small": 3.6, "base": 44.0, "large": 150.0}
#: Tokens per pixel of the models the rates above were measured on: SatMAE's three channel groups at patch 8. A
#: model's cost scales with its tokens per sample: tiny at 64 px with one group at patch 4 (256 tokens) pretrained at
#: 40 samples/s alone on the reference machine, against 56 for three groups at patch 8 (192 tokens): 1.40x the time
#: for 1.33x the tokens (docs/study.md, "Pretraining seeds and a larger `scene` test set").
REFERENCE_TOKENS_PER_PIXEL = 3 / 8**2
#: Similarity FLOP/s of the kNN search (float32 matmul on one CPU core): kNN on segmentation compares every test
#: patch token with every train/val patch token, so its cost grows with the product of the two, not linearly.
KNN_FLOPS_PER_S = 2e10


@dataclass
class Step:
    kind: str  # dataset | diversity | heldout | pretrain | task | evaluate
    name: str
    key: str
    estimate_s: float
    inputs: dict[str, Any]
    outputs: dict[str, Any] = field(default_factory=dict)
    run: Callable[[], dict] | None = None
    #: samples the step processes (sample-steps for pretraining), for the throughput in the progress log
    work: int = 0
    #: steps whose cost grows the same way share a cost model: the runner calibrates each from its first step
    #: (``kind``, or ``evaluate/PROTOCOL[/segmentation]``)
    cost_class: str = ""
    #: how the step runs, not what it makes (shard workers, Dask scheduler); never part of the key
    runtime: dict[str, Any] = field(default_factory=dict)
    #: steps with the same non-empty value fill and read one cache entry (the frozen features of one model on one
    #: task): ``--jobs N`` never runs two of them at once, so a later one reads what the first wrote instead of
    #: computing it again beside it
    shares: str = ""

    def __post_init__(self) -> None:
        self.cost_class = self.cost_class or self.kind


def _pixels(size: int) -> float:
    return (size / 96.0) ** 2


def _build_estimate(n: int, size: int) -> float:
    """Seconds of a SimEarth build of ``n`` patches of ``size`` px in one process (datasets, held-out set, tasks)."""
    return SIM_SETUP_S + n * _pixels(size) / SIM_PATCHES_PER_S


def dataset_config(cfg: StudyConfig, name: str) -> dict[str, Any]:
    """The geodiv.data DatasetConfig mapping of a study dataset (equal sizes across datasets)."""
    ds = next(d for d in cfg.datasets if d.name == name)
    out = {
        "name": name,
        "n": cfg.data.n_samples,
        "size": cfg.data.size,
        "bands": list(S2_BANDS),
        "seed": cfg.data.seed,
        "shard_size": cfg.data.shard_size,
        "strategy": ds.strategy,
        "source": {"kind": "simearth", "world_seed": cfg.data.seed},
    }
    out.update(cfg.data.options)
    return out


def pretrain_config(
    cfg: StudyConfig, dataset_dir: Path, out_dir: Path, seed: int, heldout_dir: Path | None = None
) -> dict[str, Any]:
    """The geodiv.train PretrainConfig mapping of one (dataset, seed) pretraining (with the study's held-out set,
    when it has one, for the end-of-pretraining reconstruction check)."""
    conf = {k: v for k, v in cfg.pretrain.items()}
    data = dict(conf.get("data", {}))
    data["dirs"] = [str(dataset_dir)]
    data.setdefault("img_size", cfg.data.size)
    conf["data"] = data
    conf["out_dir"] = str(out_dir)
    conf["seed"] = seed
    if heldout_dir is not None:
        conf["heldout"] = {**conf.get("heldout", {}), "dirs": [str(heldout_dir)]}
    return conf


#: Samples of the study's held-out set (the end-of-pretraining reconstruction check, docs/study.md).
HELDOUT_N = 256


def heldout_config(cfg: StudyConfig) -> dict[str, Any] | None:
    """The held-out set every pretraining is checked on: uniform over the globe, away from all pretraining samples
    (the runner adds the exclusion), the datasets' size, bands and source. None when the study pretrains on
    existing dataset folders or sets ``pretrain.heldout`` itself."""
    if "heldout" in cfg.pretrain or any(ds.path is not None for ds in cfg.datasets):
        return None
    out = {
        "name": "heldout",
        "n": min(HELDOUT_N, cfg.data.n_samples),
        "size": cfg.data.size,
        "bands": list(S2_BANDS),
        "seed": cfg.data.seed + 2,
        "shard_size": cfg.data.shard_size,
        "strategy": {"kind": "global"},
        "source": {"kind": "simearth", "world_seed": cfg.data.seed},
    }
    out.update({k: v for k, v in cfg.data.options.items() if k not in ("n", "seed", "strategy", "exclude")})
    return out


def encoder_overrides(cfg: StudyConfig) -> tuple[str, dict[str, Any], list[str] | None]:
    """Preset, build_encoder overrides and bands of the pretrained models, for the zero-pretraining baseline."""
    from geodiv.train import PretrainConfig

    probe = PretrainConfig.model_validate(pretrain_config(cfg, Path("."), Path("."), 0))
    overrides = {
        "img_size": probe.data.img_size,
        "patch_size": probe.model.patch_size,
        "in_chans": len(probe.data.bands),
        "channel_groups": probe.resolved_groups(),
        **{k: v for k, v in probe.model.overrides.items() if not k.startswith("decoder")},
    }
    return probe.model.preset, overrides, list(probe.data.bands)


def evaluation_config(cfg: StudyConfig) -> dict[str, Any]:
    conf = {k: v for k, v in cfg.evaluation.options.items()}
    preset, overrides, bands = encoder_overrides(cfg)
    conf.setdefault("random_init", {"preset": preset, "overrides": overrides, "bands": bands})
    return conf


def check_sections(cfg: StudyConfig, source: str = "<study config>") -> None:
    """Validate what the study hands to other stages (each dataset, the pretraining and the evaluation config) as
    those stages would, before anything runs: a bad value stops with the message the stage's own config gives."""
    from geodiv.config import validate_config
    from geodiv.data.build import DatasetConfig
    from geodiv.evaluate.config import EvalConfig
    from geodiv.train import PretrainConfig

    for ds in cfg.datasets:
        if ds.path is None:
            validate_config(DatasetConfig, dataset_config(cfg, ds.name), f"{source} (dataset {ds.name})")
    validate_config(PretrainConfig, pretrain_config(cfg, Path("."), Path("."), cfg.seeds[0]), f"{source} (pretrain:)")
    validate_config(EvalConfig, evaluation_config(cfg), f"{source} (evaluation.options:)")


def _task_type(task: TaskSection) -> str | None:
    """The type of a SimEarth task (known before it is built); None for a task given by path."""
    from geodiv.simearth import TASK_SPECS

    return TASK_SPECS.get(task.name, {}).get("type")


def _task_size(cfg: StudyConfig, task: TaskSection) -> int:
    return task.size or cfg.data.size


def plan_study(cfg: StudyConfig, out: Path) -> list[Step]:
    """All steps of the study in execution order (the runner attaches the callables)."""
    steps, dataset_keys, heldout_key = _data_steps(cfg, out)
    pretrain_steps, model_keys = _pretrain_steps(cfg, out, dataset_keys, heldout_key)
    task_steps, task_keys = _task_steps(cfg, out, dataset_keys)
    return steps + pretrain_steps + task_steps + _evaluation_steps(cfg, out, model_keys, task_keys)


def _model_preset(cfg: StudyConfig) -> tuple[str, float, dict[str, Any]]:
    """The pretrained model's size preset, its cost relative to the measured speeds (the preset's, times its tokens
    per pixel, channel groups / patch area, over the reference models') and its resolved encoder settings
    (``encoder_overrides``: patch size, channel groups, width where overridden)."""
    preset, overrides, _ = encoder_overrides(cfg)
    tokens_per_pixel = len(overrides["channel_groups"]) / overrides["patch_size"] ** 2
    return preset, PRESET_COST.get(preset, 1.0) * tokens_per_pixel / REFERENCE_TOKENS_PER_PIXEL, overrides


def _data_steps(cfg: StudyConfig, out: Path) -> tuple[list[Step], dict[str, str], str | None]:
    """Each dataset (built or given), its diversity, and the held-out set: the steps, each dataset's key and the
    held-out set's key (None without one)."""
    steps: list[Step] = []
    dataset_keys: dict[str, str] = {}
    for ds in cfg.datasets:
        if ds.path is not None:
            inputs = {"path": str(Path(ds.path).resolve())}
            est = 0.0
        else:
            inputs = dataset_config(cfg, ds.name)
            est = _build_estimate(cfg.data.n_samples, cfg.data.size)
        key = step_key("dataset", inputs)
        dataset_keys[ds.name] = key
        directory = Path(ds.path) if ds.path is not None else out / "datasets" / f"{ds.name}-{key[:8]}"
        steps.append(Step("dataset", ds.name, key, est, inputs, {"dir": str(directory)},
                          work=0 if ds.path is not None else cfg.data.n_samples))
    for ds in cfg.datasets:
        inputs = {"dataset": dataset_keys[ds.name]}
        steps.append(Step("diversity", ds.name, step_key("diversity", inputs), cfg.data.n_samples / 1500.0,
                          inputs, {"json": str(out / "diversity" / f"{ds.name}.json")}))
    heldout = heldout_config(cfg)
    heldout_key = None
    if heldout is not None:
        inputs = {"dataset": heldout, "exclude": sorted(dataset_keys.values())}
        heldout_key = step_key("heldout", inputs)
        steps.append(Step("heldout", "heldout", heldout_key, _build_estimate(heldout["n"], cfg.data.size),
                          inputs, {"dir": str(out / "datasets" / f"heldout-{heldout_key[:8]}")}, work=heldout["n"]))
    return steps, dataset_keys, heldout_key


def _pretrain_steps(cfg: StudyConfig, out: Path, dataset_keys: dict[str, str],
                    heldout_key: str | None) -> tuple[list[Step], dict[tuple[str, int], str]]:
    """One pretraining per dataset and seed: the steps and each (dataset, seed)'s model key."""
    steps: list[Step] = []
    _, cost, _ = _model_preset(cfg)
    model_keys: dict[tuple[str, int], str] = {}
    epochs = int(cfg.pretrain.get("optim", {}).get("epochs", 50))
    batch = int(cfg.pretrain.get("optim", {}).get("batch_size", 64))
    for ds in cfg.datasets:
        for seed in cfg.seeds:
            conf = pretrain_config(cfg, Path("D"), Path("O"), seed, Path("H") if heldout_key else None)
            inputs = {"dataset": dataset_keys[ds.name], "pretrain": conf, "launcher": cfg.launcher.model_dump()}
            if heldout_key is not None:
                inputs["heldout"] = heldout_key
            key = step_key("pretrain", inputs)
            model_keys[(ds.name, seed)] = key
            est = epochs * (cfg.data.n_samples * cost * _pixels(cfg.data.size) / TRAIN_SAMPLES_PER_S_TINY
                            + math.ceil(cfg.data.n_samples / batch) * TRAIN_STEP_S)
            steps.append(Step("pretrain", f"{ds.name} seed {seed}", key, est, inputs,
                              {"dir": str(out / "models" / f"{ds.name}-s{seed}-{key[:8]}"), "dataset": ds.name,
                               "seed": seed}, work=epochs * cfg.data.n_samples))
    return steps, model_keys


def _task_steps(cfg: StudyConfig, out: Path, dataset_keys: dict[str, str]) -> tuple[list[Step], dict[str, str]]:
    """Each downstream task's data (its locations kept off every dataset's): the steps and each task's key."""
    steps: list[Step] = []
    task_keys: dict[str, str] = {}
    exclude = sorted(dataset_keys.values())
    for task in cfg.tasks:
        # options enter the key only when given, so studies without them keep their cached steps; the protocols
        # say how the task is scored, not what it holds, so adding one keeps the task (and its other evaluations)
        dump = task.model_dump(exclude={"protocols"} | (set() if task.options else {"options"}))
        inputs = {"task": dump, "size": _task_size(cfg, task), "world_seed": cfg.data.seed,
                  "exclude": exclude}
        key = step_key("task", inputs)
        task_keys[task.name] = key
        n = task.n_train + task.n_val + task.n_test
        steps.append(Step("task", task.name, key, TASK_PATCH_COST * _build_estimate(n, _task_size(cfg, task)), inputs,
                          {"dir": str(out / "tasks" / f"{task.name}-{key[:8]}")}, work=n))
    return steps, task_keys


def _probe_token_rows(cfg: StudyConfig, task: TaskSection, tokens: int) -> float:
    """The patch tokens a segmentation linear step fits its heads on: the global head's train and validation
    tokens, each split capped at ``linear.max_tokens``, plus, with ``by_region``, one head per continent on a sixth
    of them (capped alike). LINEAR_TOKEN_FITS_PER_S was measured on steps whose continent heads together fitted as
    many tokens as the uncapped global head, hence the factor 2 where it is used."""
    cap = cfg.evaluation.options.get("linear", {}).get("max_tokens", LinearConfig().max_tokens)

    def capped(n: float) -> float:
        return n if cap is None else min(n, cap)

    splits = (task.n_train * tokens, task.n_val * tokens)
    rows = sum(capped(n) for n in splits)
    if cfg.evaluation.by_region:
        regions = len(PAPER_CONTINENTS)
        rows += regions * sum(capped(n / regions) for n in splits)
    return rows


def _evaluation_steps(cfg: StudyConfig, out: Path, model_keys: dict[tuple[str, int], str],
                      task_keys: dict[str, str]) -> list[Step]:
    """Every model (and baseline) on every task under each of its protocols."""
    steps: list[Step] = []
    preset, cost, encoder = _model_preset(cfg)
    eval_conf = evaluation_config(cfg)
    patch = int(encoder["patch_size"])
    width = int(encoder.get("embed_dim", MODEL_SIZES.get(preset, MODEL_SIZES["base"])["embed_dim"]))
    models = [(ds.name, seed, model_keys[(ds.name, seed)]) for ds in cfg.datasets for seed in cfg.seeds]
    if cfg.evaluation.zero_pretraining:
        models += [(ZERO, seed, step_key("zero", {"seed": seed, "config": eval_conf})) for seed in cfg.seeds]
    if cfg.evaluation.spectral_baseline:
        models += [(SPECTRAL_BASELINE, seed, step_key("spectral", {"seed": seed, "config": eval_conf})) for seed in cfg.seeds]
    c_grid = cfg.evaluation.options.get("linear", {}).get("c_grid", DEFAULT_C_GRID)
    for task in cfg.tasks:
        protocols = [p for p in cfg.evaluation.protocols if task.protocols is None or p in task.protocols]
        n = task.n_train + task.n_val + task.n_test
        ft_epochs = int(cfg.evaluation.options.get("finetune", {}).get("epochs", 30))
        for dataset, seed, mkey in models:
            extracts = True  # the first frozen-feature protocol of a model and task extracts the features, the
            for protocol in protocols:  # others read them from the feature cache: two cost classes
                inputs = {"model": mkey, "task": task_keys[task.name], "protocol": protocol, "seed": seed,
                          "by": "continent" if cfg.evaluation.by_region else None, "config": eval_conf}
                features = extracts and protocol != "finetune"
                units = n * cost * _pixels(_task_size(cfg, task))  # 96-px samples through the encoder
                if protocol == "finetune":
                    est = (ft_epochs * task.n_train * cost * _pixels(_task_size(cfg, task)) / FINETUNE_SAMPLES_PER_S_TINY
                           + units / FORWARD_SAMPLES_PER_S_TINY)
                else:
                    est = units / FORWARD_SAMPLES_PER_S_TINY * (1.0 if features else LATER_PROTOCOL_SHARE)
                    extracts = False
                seg = _task_type(task) == "segmentation"
                tokens = (_task_size(cfg, task) // patch) ** 2
                if seg and protocol == "knn":
                    est += 2.0 * (task.n_train + task.n_val) * tokens * task.n_test * tokens * width / KNN_FLOPS_PER_S
                if seg and protocol == "linear":
                    est += _probe_token_rows(cfg, task, tokens) * (len(c_grid) + 1) / (2 * LINEAR_TOKEN_FITS_PER_S)
                key = step_key("evaluate", inputs)
                steps.append(Step("evaluate", f"{dataset} s{seed} / {task.name} / {protocol}", key, est, inputs,
                                  {"json": str(out / "evaluations" / f"{dataset}-s{seed}__{task.name}__{protocol}-{key[:8]}.json"),
                                   "dataset": dataset, "seed": seed, "task": task.name, "protocol": protocol},
                                  work=n, cost_class=f"evaluate/{protocol}" + ("/segmentation" if seg else "")
                                  + ("+features" if features else ""),
                                  shares=f"features {mkey} {task_keys[task.name]}"))
    return steps


def cached_steps(steps: list[Step], cache: StepCache) -> set[int]:
    """The indices of the steps whose cache marker is written (done in an earlier run)."""
    return {i for i, s in enumerate(steps) if cache.get(s.kind, s.key) is not None}


def format_plan(steps: list[Step], done: set[int]) -> str:
    """The plan as a table: step kind, name, cached or not (``done``: :func:`cached_steps`), estimated seconds;
    totals at the end."""
    lines = [f"{'#':>4}  {'step':9s}  {'name':48s}  {'status':7s}  {'est. s':>8s}"]
    todo = 0.0
    n_done = 0
    for i, s in enumerate(steps):
        cached = i in done
        n_done += cached
        todo += 0.0 if cached else s.estimate_s
        lines.append(f"{i + 1:4d}  {s.kind:9s}  {s.name[:48]:48s}  {'cached' if cached else 'to do':7s}  "
                     f"{s.estimate_s:8.1f}")
    lines.append(f"{len(steps)} steps, {n_done} cached; estimated {todo / 60:.1f} min of work left "
                 "(single-process CPU estimate; GPUs are far faster for pretraining)")
    return "\n".join(lines)
