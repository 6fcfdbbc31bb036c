"""How much of the scene task can any encoder get? A supervised ceiling beside the study's spectral baseline.

Issue 12 asks that a pretrained encoder beat per-band statistics on ``scene``. When it does not, either the encoder
learnt too little or the labels are not decidable from the patch (a 640 m patch holds a piece of a runway, not an
airport). This script measures the second: a small convolutional network trained *with labels* from scratch on
many more labelled patches than the study gives a probe (``--n-train``, default 200 per class), with flips and
quarter turns, and the study's spectral baseline (``geodiv.evaluate.baseline``, linear probe) on the very same
splits. Per-class test recall for both. Seeded and deterministic on CPU; it never looks at a pretraining region.

    PYTHONPATH=src python scripts/scene_ceiling_experiment.py --out /tmp/ceiling --n-train 4800
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class SmallCNN(nn.Module):
    """Four 3x3 conv blocks (stride 2 after the first) and global average pooling: about 0.24M parameters (13 bands in, 24 classes)."""

    def __init__(self, in_ch: int, n_classes: int, width: int = 48) -> None:
        super().__init__()
        chans = [in_ch, width, width, 2 * width, 4 * width]
        layers: list[nn.Module] = []
        for i in range(4):
            layers += [nn.Conv2d(chans[i], chans[i + 1], 3, stride=1 if i == 0 else 2, padding=1, bias=False),
                       nn.BatchNorm2d(chans[i + 1]), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(chans[-1], n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random horizontal flip and quarter turn per batch (structures have no preferred orientation)."""
    if torch.rand((), generator=gen) < 0.5:
        x = x.flip(-1)
    return torch.rot90(x, int(torch.randint(4, (), generator=gen)), dims=(-2, -1))


def train_supervised(model: nn.Module, x_tr, y_tr, x_va, y_va, epochs: int, seed: int,
                     verbose: bool = True) -> nn.Module:
    """Train ``model`` on (N, C, H, W) inputs with flips and quarter turns (``_augment``): AdamW, one-cycle
    schedule, batch 64, label smoothing 0.1; the epoch with the best validation accuracy is kept. Also the
    recipe of ``scene_pooling_experiment.py``'s conv head on token maps."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.05)
    steps = epochs * ((len(x_tr) + 63) // 64)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps, pct_start=0.1)
    best, best_state = -1.0, None
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(x_tr), generator=gen)
        t = time.perf_counter()
        for i in range(0, len(order), 64):
            idx = order[i:i + 64]
            loss = F.cross_entropy(model(_augment(x_tr[idx], gen)), y_tr[idx], label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        acc = float((predict(model, x_va) == y_va).float().mean())
        if verbose:
            print(f"epoch {epoch + 1}/{epochs}: val accuracy {acc:.3f} "
                  f"({len(x_tr) / (time.perf_counter() - t):.0f} samples/s)", flush=True)
        if acc > best:
            best, best_state = acc, {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    return model


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    model.eval()
    return torch.cat([model(x[i:i + 256]).argmax(1) for i in range(0, len(x), 256)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--n-train", type=int, default=4800)
    ap.add_argument("--n-val", type=int, default=480)
    ap.add_argument("--n-test", type=int, default=960)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--build-workers", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    from geodiv import evaluate
    from geodiv.data import load_arrays, read_manifest
    from geodiv.evaluate.inputs import normalize_images
    from geodiv.evaluate.metrics import compute_metrics
    from geodiv.evaluate.simearth_tasks import simearth_task

    task_dir = a.out / f"task-scene-{a.n_train}-{a.n_val}-{a.n_test}-{a.size}-s{a.seed}"
    task = simearth_task("scene", a.n_train, a.n_val, a.n_test, seed=a.seed + 1, size=a.size, out_dir=task_dir,
                         workers=a.build_workers)
    classes = list(task.classes)
    # every stored band (13), normalised as the study normalises its inputs (SatMAE's per-band scaling)
    bands = read_manifest(task_dir / "train")["bands"]
    splits = {}
    for split in ("train", "val", "test"):
        images, metas = load_arrays(task_dir / split)
        x = torch.from_numpy(normalize_images(images, bands, "satmae"))
        y = torch.tensor([int(m["label"]) for m in metas])
        splits[split] = (x, y)
    t = time.perf_counter()
    torch.manual_seed(a.seed)
    model = train_supervised(SmallCNN(splits["train"][0].shape[1], len(classes)), *splits["train"], *splits["val"],
                             a.epochs, a.seed)
    x_te, y_te = splits["test"]
    pred = predict(model, x_te).numpy()
    y = y_te.numpy()
    ci = compute_metrics("classification", y, pred, n_classes=len(classes), metrics=["accuracy"], n_boot=1000)
    acc = ci["accuracy"]
    results = {"supervised_cnn": {"accuracy": [round(v, 4) for v in (acc.value, acc.ci_low, acc.ci_high)],
                                  "per_class": _per_class(y, pred, classes)},
               "train_s": round(time.perf_counter() - t)}
    recs = evaluate.evaluate("spectral", task, "linear", seed=a.seed)
    results["spectral_baseline_linear"] = {r["metric"]: [round(r["value"], 4), round(r["ci_low"], 4),
                                                         round(r["ci_high"], 4)]
                                           for r in recs if r.get("region") in (None, "", "global", "all")}
    report = {"args": vars(a) | {"out": str(a.out)}, "results": results}
    print(json.dumps(report, indent=1))
    (a.out / f"ceiling-scene-{a.n_train}-{a.size}-s{a.seed}.json").write_text(json.dumps(report, indent=1))


def _per_class(y: np.ndarray, pred: np.ndarray, classes: list[str]) -> dict[str, float]:
    """Test recall of each class."""
    return {c: round(float((pred[y == k] == k).mean()), 3) for k, c in enumerate(classes) if (y == k).any()}


if __name__ == "__main__":
    main()
