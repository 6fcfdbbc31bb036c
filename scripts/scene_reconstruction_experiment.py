"""Does the pretrained MAE predict a structure's masked pixels from the visible ones, class by class?

The study's held-out check (``geodiv.train.heldout``) compares the MAE's masked-patch loss with the loss of
predicting every masked patch as the mean of the visible ones, over uniform global patches. This script makes the
same comparison on a ``scene`` task's patches, per class: a ratio well below 1 for a class means the MAE reads that
structure's layout from the visible tokens (the runway continues, the grid repeats); a ratio near 1 means it
predicts little more than the patch's colour. Inputs are the probes' own (the task's split through the study's
evaluation transform); masks come from a fixed seed, the same for every class. A diagnostic for issue 12: only one
pretraining set is looked at, never which region wins.

    PYTHONPATH=src python scripts/scene_reconstruction_experiment.py --ckpt RUN/checkpoint-29.pth --task TASK_FOLDER
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", required=True, type=Path, help="an MAE checkpoint (checkpoint-*.pth)")
    ap.add_argument("--task", required=True, type=Path, help="a scene task folder (task.json, train/val/test)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--mask-ratio", type=float, default=0.75)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    from geodiv.evaluate.config import EvalConfig
    from geodiv.evaluate.encoders import load_encoder
    from geodiv.evaluate.feature_cache import FeatureStore
    from geodiv.evaluate.inputs import EvalTransform, plan_bands
    from geodiv.evaluate.tasks.registry import load_task
    from geodiv.models.checkpoint import load_pretrained
    from geodiv.study.config import load_study_config
    from geodiv.study.plan import evaluation_config
    from geodiv.train.heldout import heldout_losses
    from geodiv.train.pretrain import mask_noise

    model = load_pretrained(str(a.ckpt), kind="mae").eval()
    cfg = model.config
    bands = load_encoder(str(a.ckpt)).bands  # the bands the checkpoint records, in its input order
    task = load_task(a.task)
    ec = EvalConfig.model_validate(evaluation_config(load_study_config(profile="quick")))
    store = FeatureStore(None)
    imgs = torch.from_numpy(np.ascontiguousarray(
        store.inputs(task, a.split, plan_bands(task.bands, bands), EvalTransform(ec.features.normalize, cfg.img_size,
                                                                               ec.features.crop_pct))))
    labels = np.asarray(store.table(task, a.split).labels)
    noise = mask_noise(a.seed, 0, len(imgs), cfg.noise_length)
    results = {}
    for name, rows in [("all", np.arange(len(imgs)))] + [(c, np.flatnonzero(labels == i))
                                                         for i, c in enumerate(task.classes)]:
        if len(rows) == 0:
            continue
        r = heldout_losses(model, imgs[rows], noise[rows], mask_ratio=a.mask_ratio)
        results[name] = {"n": r["n"], "mae_loss": round(r["mae_loss"], 5),
                         "mean_visible_loss": round(r["mean_visible_loss"], 5),
                         "ratio": round(r["mae_loss"] / r["mean_visible_loss"], 3)}
        print(f"{name:24s} n={r['n']:4d}  MAE {r['mae_loss']:.5f}  mean of visible {r['mean_visible_loss']:.5f}  "
              f"ratio {results[name]['ratio']:.3f}", flush=True)
    print(json.dumps({"args": {k: str(v) for k, v in vars(a).items()}, "results": results}, indent=1))


if __name__ == "__main__":
    main()
