"""Does the probe's pooling hide what a pretrained encoder knows about the patch centre?

The ``scene`` label is the structure at the patch centre, while the study's linear probe reads the mean of all
patch tokens (``pool: global``), background included. This script probes an existing checkpoint, zero pretraining
and the spectral baseline on an existing scene task folder with three readouts of the same frozen encoder:
``global`` (the study's), ``centre`` (mean of the central ``k x k`` tokens) and ``global+centre`` (both,
concatenated); the spectral baseline gets the same three (statistics of the whole patch, of the central
``k x patch`` pixels, both). Same linear probe, splits and bootstrap as the study. A diagnostic for issue 12: it
never looks at which pretraining region wins.

    PYTHONPATH=src python scripts/scene_pooling_experiment.py --ckpt RUN/checkpoint-29.pth --task TASK_FOLDER
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch import nn


class PooledReadout(nn.Module):
    """An encoder whose ``forward_features`` is the chosen readout of its patch tokens (``forward_tokens``)."""

    def __init__(self, encoder: nn.Module, readout: str, k: int, bands, img_size: int) -> None:
        super().__init__()
        self.encoder, self.readout, self.k = encoder, readout, k
        self.bands, self.img_size = list(bands), img_size

    def extra_repr(self) -> str:  # part of the feature cache's id (evaluate.encoders.module_id)
        return f"readout={self.readout}, k={self.k}"

    def forward_features(self, x: torch.Tensor, pool: str | None = None) -> torch.Tensor:
        whole = self.encoder.forward_features(x, pool="global")  # the study's readout, exactly
        if hasattr(self.encoder, "_stats"):  # the spectral baseline: statistics of the central pixels
            side = x.shape[-1] // self.encoder.patch_size
            lo = (side - self.k) // 2 * self.encoder.patch_size
            hi = lo + self.k * self.encoder.patch_size
            centre = self.encoder._stats(x[..., lo:hi, lo:hi].flatten(2))
        else:
            tokens = self.encoder.forward_tokens(x).mean(dim=1)  # (N, L, D), mean over channel groups
            n, length, dim = tokens.shape
            side = int(round(length ** 0.5))
            lo = (side - self.k) // 2
            centre = tokens.reshape(n, side, side, dim)[:, lo:lo + self.k, lo:lo + self.k].mean(dim=(1, 2))
        if self.readout == "global":
            return whole
        if self.readout == "centre":
            return centre
        return torch.cat([whole, centre], dim=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", required=True, type=Path)
    ap.add_argument("--task", required=True, type=Path, help="a scene task folder (task.json, train/val/test)")
    ap.add_argument("--k", type=int, default=4, help="side of the central token window")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    from geodiv import evaluate
    from geodiv.evaluate.baseline import spectral_encoder
    from geodiv.evaluate.config import EvalConfig
    from geodiv.evaluate.encoders import load_encoder
    from geodiv.evaluate.tasks.registry import load_task
    from geodiv.study.config import load_study_config
    from geodiv.study.plan import evaluation_config

    cfg = load_study_config(profile="quick")
    econf = evaluation_config(cfg)
    task = load_task(a.task)
    ec = EvalConfig.model_validate(econf)
    random_init = {"random_preset": ec.random_init.preset, "random_overrides": ec.random_init.overrides,
                   "random_bands": ec.random_init.bands}
    encoders = {"pretrained": load_encoder(str(a.ckpt)),
                "zero_pretraining": load_encoder("random", seed=a.seed, **random_init),
                "spectral_baseline": spectral_encoder(scheme=ec.features.normalize, **random_init)}
    results: dict[str, dict] = {}
    for name, enc in encoders.items():
        for readout in ("global", "centre", "global+centre"):
            module = PooledReadout(enc.module, readout, a.k, enc.bands, enc.img_size).eval()
            recs = evaluate.evaluate(module, task, "linear", config=econf, seed=a.seed)
            acc = [r for r in recs if r["metric"] == "accuracy" and r.get("region") in (None, "", "global", "all")][0]
            results[f"{name}/{readout}"] = [round(acc["value"], 4), round(acc["ci_low"], 4), round(acc["ci_high"], 4)]
            print(name, readout, results[f"{name}/{readout}"], flush=True)
    print(json.dumps({"args": {k: str(v) for k, v in vars(a).items()}, "results": results}, indent=1))


if __name__ == "__main__":
    main()
