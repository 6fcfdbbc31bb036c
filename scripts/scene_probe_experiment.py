"""Can a small SatMAE pretrained on SimEarth beat zero pretraining and per-band statistics on a structure task?

One pretraining set (default: the study's ``global`` dataset), pretrained with the quick profile's recipe and the
overrides given here, then linear probing (the project's own probe, bootstrap 95 % intervals) of three encoders on
the task: the pretrained one, zero pretraining (same architecture, random init) and the study's spectral baseline
(``geodiv.evaluate.baseline``: per-band mean, std and 5/25/50/75/95th percentiles of the model's 10 bands, same
probe; results before 2026-11-27 used a 13-band variant of this script's own). Times every stage. Used to choose
the quick profile (docs/study.md, "Choosing the quick profile"); it never looks at which region wins.

    PYTHONPATH=src python scripts/scene_probe_experiment.py --out /tmp/exp --epochs 6 --patch-size 8

With ``--task settlement`` it also reports the R^2 of the built-up fraction alone (a linear fit on train); with
``--per-class`` (classification tasks) the test accuracy of each class (recall), from the very predictions scored.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import numpy as np
import torch


def _summary(records: list[dict]) -> dict[str, list[float]]:
    return {r["metric"]: [round(r["value"], 4), round(r["ci_low"], 4), round(r["ci_high"], 4)]
            for r in records if r.get("region") in (None, "", "global", "all")}


@contextlib.contextmanager
def _captured_predictions() -> Iterator[list[tuple[np.ndarray, np.ndarray]]]:
    """The (labels, predictions) pairs the evaluation scores (``runner.compute_metrics`` calls), in call order."""
    from geodiv.evaluate import runner

    seen: list[tuple[np.ndarray, np.ndarray]] = []
    real = runner.compute_metrics

    def record(task_type, y_true, y_pred, **kw):
        seen.append((np.asarray(y_true), np.asarray(y_pred)))
        return real(task_type, y_true, y_pred, **kw)

    with mock.patch.object(runner, "compute_metrics", record):
        yield seen


def _per_class(pairs: list[tuple[np.ndarray, np.ndarray]], classes: list[str]) -> dict[str, float]:
    """Recall of each class on the first (global) test region's predictions."""
    y, pred = pairs[0]
    return {name: round(float((pred[y == k] == k).mean()), 3) for k, name in enumerate(classes) if (y == k).any()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--dataset", default="global")
    ap.add_argument("--n-samples", type=int, default=768)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--patch-size", type=int, default=8)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--warmup", type=float, default=1)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--blr", type=float, default=1e-3)
    ap.add_argument("--mask-ratio", type=float, default=0.75)
    ap.add_argument("--mask-mode", default="independent", choices=["independent", "spatial"],
                    help="SatMAE's independent masking per group, or one spatial mask for every group")
    ap.add_argument("--norm-pix-loss", action="store_true",
                    help="MAE's per-patch standardised target (off in the paper's runs and the profiles)")
    ap.add_argument("--one-group", action="store_true",
                    help="all bands in one channel group (one token per place, as a plain ViT) instead of SatMAE's 3")
    ap.add_argument("--task", default="scene")
    ap.add_argument("--n-train", type=int, default=480)
    ap.add_argument("--n-val", type=int, default=96)
    ap.add_argument("--n-test", type=int, default=480)
    ap.add_argument("--task-size", type=int, default=None, help="task patch size (default: --size)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--num-workers", type=int, default=None, help="pretraining DataLoader workers (GPU runs)")
    ap.add_argument("--build-workers", type=int, default=1, help="processes that build the pretraining set")
    ap.add_argument("--gpu", action="store_true", help="pretrain on the GPU (device auto, bf16) instead of the "
                    "profile's CPU fp32")
    ap.add_argument("--no-pretrain", action="store_true", help="only zero pretraining and band statistics")
    ap.add_argument("--ckpt", type=Path, default=None, help="an existing checkpoint instead of pretraining here")
    ap.add_argument("--protocols", default="linear", help="comma-separated: knn, linear, finetune")
    ap.add_argument("--finetune-epochs", type=int, default=10)
    ap.add_argument("--finetune-blr", type=float, default=None)
    ap.add_argument("--per-class", action="store_true", help="print each class's test accuracy (classification)")
    ap.add_argument("--encoders", default="pretrained,zero_pretraining,spectral_baseline",
                    help="comma-separated subset of pretrained, zero_pretraining, spectral_baseline")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    from geodiv import data, evaluate, train
    from geodiv.evaluate.simearth_tasks import simearth_task
    from geodiv.study.config import load_study_config
    from geodiv.study.plan import dataset_config, evaluation_config, pretrain_config
    from geodiv.study.runner import dataset_locations

    raw = load_study_config(profile=a.profile).model_dump(mode="json")
    raw["data"].update(n_samples=a.n_samples, size=a.size, seed=a.seed)
    pre = raw["pretrain"]
    pre.setdefault("model", {}).update(preset=a.preset, patch_size=a.patch_size, mask_ratio=a.mask_ratio,
                        mask_mode=a.mask_mode, norm_pix_loss=a.norm_pix_loss)
    # the grouping is the flag's, never the profile's (the standard-cpu profile has one group since 2026-11-29; the
    # measurements in docs/study.md that name it without --one-group used SatMAE's three); the zero-pretraining
    # encoder follows (study.plan.encoder_overrides)
    pre["model"].pop("channel_groups", None)
    if a.one_group:
        from geodiv.bands import SATMAE_BANDS

        pre["model"]["channel_groups"] = [list(range(len(pre.get("data", {}).get("bands") or SATMAE_BANDS)))]
    pre["optim"].update(epochs=a.epochs, warmup_epochs=a.warmup, batch_size=a.batch, blr=a.blr)
    pre["optim"]["effective_batch"] = a.batch  # --batch is the effective batch (one process, no accumulation)
    pre["checkpoint_every"] = a.epochs
    if a.num_workers is not None:
        pre.setdefault("data", {})["num_workers"] = a.num_workers
    if a.gpu:
        pre.update(device="auto", precision="auto")
    from geodiv.study.config import StudyConfig

    cfg = StudyConfig.model_validate(raw)
    out = a.out
    out.mkdir(parents=True, exist_ok=True)
    times: dict[str, float] = {}

    t = time.perf_counter()
    ds_dir = out / f"data-{a.dataset}-{a.n_samples}-{a.size}-s{a.seed}"
    if not (ds_dir / "manifest.json").is_file():
        data.build_dataset(dataset_config(cfg, a.dataset), ds_dir, workers=a.build_workers)
    times["dataset_s"] = time.perf_counter() - t

    tag = f"{a.preset}-p{a.patch_size}-e{a.epochs}-b{a.batch}-lr{a.blr:g}-m{a.mask_ratio:g}" + (
        "-normpix" if a.norm_pix_loss else "") + ("-onegroup" if a.one_group else "") + ("" if a.mask_mode == "independent" else f"-{a.mask_mode}")
    tag_out = f"{tag}-{a.protocols.replace(',', '+')}-{a.encoders.replace(',', '+')}"
    ckpt = None
    if a.ckpt is not None:
        ckpt = a.ckpt
    elif not a.no_pretrain:
        t = time.perf_counter()
        conf = pretrain_config(cfg, ds_dir, out / f"model-{a.dataset}-{a.size}-{tag}-s{a.seed}", a.seed)
        ckpt = train.pretrain(train.PretrainConfig.model_validate(conf), resume=True)
        times["pretrain_s"] = time.perf_counter() - t

    t = time.perf_counter()
    lat, lon, _ = dataset_locations(ds_dir)
    task_size = a.task_size or a.size
    # the task keeps its locations away from this pretraining set's, so it belongs to the set (ds_dir's name)
    task_dir = out / f"task-{a.task}-{a.n_train}-{a.n_val}-{a.n_test}-{task_size}-{ds_dir.name}"
    task = simearth_task(a.task, a.n_train, a.n_val, a.n_test, seed=a.seed + 1, size=task_size,
                         exclude=(lat, lon), out_dir=task_dir,
                         workers=a.build_workers)
    times["task_s"] = time.perf_counter() - t

    econf = evaluation_config(cfg)
    econf["finetune"] = {**econf.get("finetune", {}), "epochs": a.finetune_epochs} | (
        {"blr": a.finetune_blr} if a.finetune_blr is not None else {})
    results: dict[str, dict] = {}
    # the study's own baselines: per-band statistics (geodiv.evaluate.baseline) and zero pretraining
    encoders = {"spectral_baseline": "spectral", "zero_pretraining": "random"}
    if ckpt is not None:
        encoders = {"pretrained": str(ckpt), **encoders}
    wanted = a.encoders.split(",")
    for name, enc in encoders.items():
        if name not in wanted:
            continue
        for protocol in a.protocols.split(","):
            if protocol == "finetune" and name == "spectral_baseline":
                continue  # nothing to fine-tune: the study's spectral baseline trains its head on fixed features
            t = time.perf_counter()
            with _captured_predictions() as pairs:
                recs = evaluate.evaluate(enc, task, protocol, config=econf, seed=a.seed)
            times[f"{protocol}_{name}_s"] = time.perf_counter() - t
            results[f"{protocol}/{name}"] = _summary(recs)
            if a.per_class and task.classes:
                results[f"{protocol}/{name}/per_class"] = _per_class(pairs, list(task.classes))
            print(protocol, name, results[f"{protocol}/{name}"], flush=True)
    if a.task == "settlement":
        results["builtup_fraction_only_r2"] = _builtup_r2(task_dir)
    report = {"args": vars(a) | {"out": str(a.out)}, "results": results,
              "times": {k: round(v, 1) for k, v in times.items()}}
    print(json.dumps(report, indent=1, default=str))
    # one file per run: the seed, the test size and a given checkpoint's folder are in the name, so runs that differ
    # only in those no longer overwrite each other's result
    source = f"-ckpt-{a.ckpt.parent.name}" if a.ckpt is not None else ""
    name = f"result-{a.task}-{tag_out}-{a.size}-{a.n_samples}-{a.n_train}-{a.n_test}-s{a.seed}{source}.json"
    (out / name).write_text(json.dumps(report, indent=1, default=str))


def _builtup_r2(task_dir: Path) -> float:
    """R^2 on test of a least-squares line from the built-up fraction (patch metadata) to the label."""
    from geodiv.data import iter_samples

    def xy(split):
        pairs = [(m["built_up"], m["label"]) for _k, _img, m in iter_samples(task_dir / split, decode_image=False)]
        x, y = np.array(pairs, float).T
        return x, y

    x, y = xy("train")
    slope, icpt = np.polyfit(x, y, 1)
    xt, yt = xy("test")
    pred = slope * xt + icpt
    return round(float(1 - ((yt - pred) ** 2).sum() / ((yt - yt.mean()) ** 2).sum()), 4)


if __name__ == "__main__":
    main()
