"""Does the probe's pooling hide what a pretrained encoder knows about the patch centre?

The ``scene`` label is the structure at the patch centre, while the study's linear probe reads the mean of all
patch tokens (``pool: global``), background included. This script probes an existing checkpoint, zero pretraining
and the spectral baseline on an existing scene task folder with three readouts of the same frozen encoder:
``global`` (the study's), ``centre`` (mean of the central ``k x k`` tokens) and ``global+centre`` (both,
concatenated); the spectral baseline gets the same three (statistics of the whole patch, of the central
``k x patch`` pixels, both). Same linear probe, splits and bootstrap as the study. With ``--conv-head`` also a
fourth readout: a small convolutional head trained on each encoder's frozen token map (the spectral baseline's map
holds the statistics of each token's pixels), the same head and recipe for every encoder (the supervised
ceiling's, ``scene_ceiling_experiment.train_supervised``; run from ``scripts/``' parent as shown). ``--groups concat``
keeps a ViT's channel groups apart (their tokens side by side, G x D features) where the study averages them.
``--readouts`` picks the pooled readouts to probe; for a ViT two more read earlier layers: ``block:K`` (the mean
patch token after block K, 1-based, groups averaged, no norm) and ``all-blocks`` (those means of every block,
concatenated; MAE features are known to probe better below the last block). The spectral baseline has no blocks and
gets ``global`` in their place. A diagnostic for issue 12: it never looks at which pretraining region wins.

    PYTHONPATH=src python scripts/scene_pooling_experiment.py --ckpt RUN/checkpoint-29.pth --task TASK_FOLDER
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch
from torch import nn


def reads_blocks(readout: str) -> bool:
    """Whether a readout reads the blocks' own outputs (``block:K``, ``all-blocks``), which only a ViT has."""
    return readout.startswith("block:") or readout == "all-blocks"


class PooledReadout(nn.Module):
    """An encoder whose ``forward_features`` is the chosen readout of its patch tokens (``forward_tokens``)."""

    def __init__(self, encoder: nn.Module, readout: str, k: int, bands, img_size: int, groups: str = "mean") -> None:
        super().__init__()
        self.encoder, self.readout, self.k, self.groups = encoder, readout, k, groups
        self.bands, self.img_size = list(bands), img_size

    def extra_repr(self) -> str:  # part of the feature cache's id (evaluate.encoders.module_id)
        return f"readout={self.readout}, k={self.k}, groups={self.groups}"

    def _grouped(self) -> bool:
        """Whether the channel groups' tokens are concatenated (a ViT with ``--groups concat``)."""
        return self.groups == "concat" and hasattr(self.encoder, "num_groups")

    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, L, G*D) with ``concat`` (the groups side by side), else the encoder's own (N, G, L, D)."""
        tokens = self.encoder.forward_tokens(x)
        if not self._grouped():
            return tokens
        n, g, length, dim = tokens.shape
        return tokens.permute(0, 2, 1, 3).reshape(n, 1, length, g * dim)

    def forward_features(self, x: torch.Tensor, pool: str | None = None) -> torch.Tensor:
        if reads_blocks(self.readout):
            return self._block_means(x)
        if self._grouped():  # fc_norm of each group's mean token, concatenated: (N, G*D)
            blocks, grid = self.encoder._run_blocks(x)
            per_group = blocks[:, 1:].reshape(x.shape[0], self.encoder.num_groups, grid[0] * grid[1], -1)
            whole = self.encoder.fc_norm(per_group.mean(dim=2)).flatten(1)
        else:
            whole = self.encoder.forward_features(x, pool="global")  # the study's readout, exactly
        if hasattr(self.encoder, "_stats"):  # the spectral baseline: statistics of the central pixels
            side = x.shape[-1] // self.encoder.patch_size
            lo = (side - self.k) // 2 * self.encoder.patch_size
            hi = lo + self.k * self.encoder.patch_size
            centre = self.encoder._stats(x[..., lo:hi, lo:hi].flatten(2))
        else:
            tokens = self.forward_tokens(x).mean(dim=1)  # (N, L, D): groups averaged, or concatenated
            n, length, dim = tokens.shape
            side = int(round(length ** 0.5))
            lo = (side - self.k) // 2
            centre = tokens.reshape(n, side, side, dim)[:, lo:lo + self.k, lo:lo + self.k].mean(dim=(1, 2))
        if self.readout == "global":
            return whole
        if self.readout == "centre":
            return centre
        return torch.cat([whole, centre], dim=1)

    def _block_means(self, x: torch.Tensor) -> torch.Tensor:
        """Mean patch token after each block (cls left out), of one block (``block:K``) or all, concatenated."""
        means = []
        hooks = [block.register_forward_hook(lambda _m, _i, out: means.append(out[:, 1:].mean(dim=1)))
                 for block in self.encoder.blocks]
        try:
            self.encoder._run_blocks(x)
        finally:
            for hook in hooks:
                hook.remove()
        if self.readout == "all-blocks":
            return torch.cat(means, dim=1)
        return means[int(self.readout.split(":", 1)[1]) - 1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", required=True, type=Path)
    ap.add_argument("--task", required=True, type=Path, help="a scene task folder (task.json, train/val/test)")
    ap.add_argument("--k", type=int, default=4, help="side of the central token window")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--conv-head", action="store_true", help="also a conv head on the frozen token maps")
    ap.add_argument("--groups", choices=("mean", "concat"), default="mean",
                    help="a ViT's channel groups: averaged (the study's readout) or concatenated (G x D features)")
    ap.add_argument("--readouts", default="global,centre,global+centre", help="comma-separated readouts to probe")
    ap.add_argument("--profile", default="quick",
                    help="the study profile whose evaluation config (probe grid, bootstrap) to use: the checkpoint's")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    from geodiv import evaluate
    from geodiv.evaluate.baseline import spectral_encoder
    from geodiv.evaluate.config import EvalConfig
    from geodiv.evaluate.encoders import load_encoder
    from geodiv.evaluate.tasks.registry import load_task
    from geodiv.study.config import load_study_config
    from geodiv.study.plan import evaluation_config

    cfg = load_study_config(profile=a.profile)
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
        for readout in a.readouts.split(","):
            if hasattr(enc.module, "_stats") and reads_blocks(readout):
                continue  # the spectral baseline has no blocks: its `global` row stands for it
            module = PooledReadout(enc.module, readout, a.k, enc.bands, enc.img_size, a.groups).eval()
            recs = evaluate.evaluate(module, task, "linear", config=econf, seed=a.seed)
            acc = [r for r in recs if r["metric"] == "accuracy" and r.get("region") in (None, "", "global", "all")][0]
            results[f"{name}/{readout}"] = [round(acc["value"], 4), round(acc["ci_low"], 4), round(acc["ci_high"], 4)]
            print(name, readout, results[f"{name}/{readout}"], flush=True)
        if a.conv_head:
            results[f"{name}/conv-head"] = _conv_head(enc, task, ec, a.seed, a.groups)
            print(name, "conv-head", results[f"{name}/conv-head"], flush=True)
    print(json.dumps({"args": {k: str(v) for k, v in vars(a).items()}, "results": results}, indent=1))


def _conv_head(enc, task, ec, seed: int, groups: str = "mean") -> list[float]:
    """Test accuracy [95 % CI] of a two-layer conv head (3x3, 64 channels, global mean, linear) trained on the frozen
    token maps, standardised per channel on train, with the supervised ceiling's recipe
    (``scene_ceiling_experiment.train_supervised``: flips and quarter turns of the map, best validation epoch)."""
    import numpy as np
    from scene_ceiling_experiment import predict, train_supervised
    from torch import nn

    from geodiv.evaluate.feature_cache import FeatureStore
    from geodiv.evaluate.inputs import EvalTransform, plan_bands
    from geodiv.evaluate.metrics import compute_metrics

    if groups != "mean":  # the token map of the readout wrapper, under its own cache id
        module = PooledReadout(enc.module, "global", 1, enc.bands, enc.img_size, groups).eval()
        enc = dataclasses.replace(enc, module=module, checkpoint_id=f"{enc.checkpoint_id}-groups-{groups}")
    plan = plan_bands(task.bands, enc.bands)
    tf = EvalTransform(ec.features.normalize, enc.img_size, ec.features.crop_pct)
    store = FeatureStore(None)
    data = {}
    for split in ("train", "val", "test"):
        tokens = store.features(enc, task, split, plan, tf, kind="tokens").astype(np.float32)  # (N, L, D)
        n, length, dim = tokens.shape
        side = int(round(length ** 0.5))
        x = torch.from_numpy(tokens).reshape(n, side, side, dim).permute(0, 3, 1, 2).contiguous()
        data[split] = (x, torch.as_tensor(store.table(task, split).labels, dtype=torch.long))
    mean = data["train"][0].mean(dim=(0, 2, 3), keepdim=True)
    std = data["train"][0].std(dim=(0, 2, 3), keepdim=True) + 1e-6
    data = {k: ((x - mean) / std, y) for k, (x, y) in data.items()}
    n_classes, dim = len(task.classes), data["train"][0].shape[1]
    torch.manual_seed(seed)
    head = nn.Sequential(nn.Conv2d(dim, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
                         nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(64, n_classes))
    head = train_supervised(head, *data["train"], *data["val"], epochs=60, seed=seed, verbose=False)
    pred = predict(head, data["test"][0]).numpy()
    m = compute_metrics("classification", data["test"][1].numpy(), pred, n_classes=n_classes,
                        metrics=["accuracy"], n_boot=1000)["accuracy"]
    return [round(m.value, 4), round(m.ci_low, 4), round(m.ci_high, 4)]


if __name__ == "__main__":
    main()
