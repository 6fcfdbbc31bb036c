"""Full fine-tuning of the encoder with a task head (SatMAE's fine-tuning recipe, scaled to small tasks).

AdamW with layer-wise learning-rate decay (block i of n gets ``layer_decay ** (n + 1 - (i + 1))`` of the rate;
embeddings ``layer_decay ** (n + 1)``, the head 1), stochastic depth in the encoder, per-iteration linear warmup then
half-cosine to ``min_lr``, no weight decay on biases, norms and embeddings. Training augmentation: random resized
crop (scale 0.2-1, aspect 3/4-4/3, bicubic) and horizontal flip, optionally quarter turns, optionally mixup/cutmix
for single-label classification. After every epoch the model is scored on the validation split (the task's headline
metric) and the best epoch's weights are kept.

The head starts as a linear probe on the frozen features (``head_init: probe``, LP-FT): with SatMAE's near-zero
head init, the rate ``blr x batch / 256`` and the few steps a small task gives, the head never left the majority
class (every quick-study fine-tuning predicted one class; docs/evaluation.md has the measurement).

Heads: a linear layer on the pooled features (classification, multi-label, regression), and for segmentation a
light decoder on the patch tokens: group-averaged tokens as a (D, g, g) map, a 1x1 conv to ``decoder_channels``,
two (x2 bilinear upsample, 3x3 conv, BatchNorm, GELU) stages, a 1x1 conv to the classes, and a bilinear upsample
to the input size.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from geodiv.errors import InputError
from geodiv.evaluate.config import FinetuneConfig
from geodiv.evaluate.metrics import METRICS_BY_TYPE, as_prediction, compute_metrics
from geodiv.models.features import extract_features
from geodiv.progress import log, progress
from geodiv.train.schedule import scaled_lr, warmup_cosine


class SegmentationDecoder(nn.Module):
    def __init__(self, dim: int, channels: int, n_classes: int):
        super().__init__()
        self.proj = nn.Conv2d(dim, channels, 1)
        self.stages = nn.ModuleList(
            nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.GELU())
            for _ in range(2)
        )
        self.classifier = nn.Conv2d(channels, n_classes, 1)

    def forward(self, tokens: torch.Tensor, out_hw: tuple[int, int]) -> torch.Tensor:
        t = tokens.mean(dim=1)  # (N, L, D), groups averaged
        n, length, dim = t.shape
        g = int(round(length**0.5))
        x = self.proj(t.transpose(1, 2).reshape(n, dim, g, g))
        for stage in self.stages:
            x = stage(F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False))
        return F.interpolate(self.classifier(x), size=out_hw, mode="bilinear", align_corners=False)


class FinetuneModel(nn.Module):
    """Encoder + head; ``forward(x)`` gives logits (N, K) / values (N,) / pixel logits (N, K, S, S)."""

    def __init__(self, encoder: nn.Module, task_type: str, n_outputs: int, pool: str, decoder_channels: int):
        super().__init__()
        self.encoder = encoder
        self.task_type = task_type
        self.pool = pool
        dim = int(encoder.embed_dim)
        if task_type == "segmentation":
            self.head: nn.Module = SegmentationDecoder(dim, decoder_channels, n_outputs)
        else:
            self.head = nn.Linear(dim, n_outputs)
            nn.init.trunc_normal_(self.head.weight, std=2e-5)  # SatMAE's head init
            nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.task_type == "segmentation":
            return self.head(self.encoder.forward_tokens(x), x.shape[-2:])
        out = self.head(self.encoder.forward_features(x, pool=self.pool))
        return out[:, 0] if self.task_type == "regression" else out


# ----------------------------------------------------------------------------------- optimisation
def finetune_param_groups(model: FinetuneModel, weight_decay: float, layer_decay: float) -> list[dict]:
    """The encoder's groups as SatMAE makes them (``geodiv.models.param_groups``: layer-wise ``lr_scale``, no
    decay for biases, norms and embeddings), plus the new head at the full rate."""
    from geodiv.models import param_groups as encoder_groups

    groups = encoder_groups(model.encoder, weight_decay=weight_decay, layer_decay=layer_decay)
    head = list(model.head.named_parameters(prefix="head"))
    for wd, keep in ((weight_decay, lambda p: p.ndim > 1), (0.0, lambda p: p.ndim <= 1)):
        chosen = [(n, p) for n, p in head if keep(p)]
        if chosen:
            groups.append({"params": [p for _, p in chosen], "param_names": [n for n, _ in chosen],
                           "weight_decay": wd, "lr_scale": 1.0})
    return groups


# ------------------------------------------------------------------------------------ augmentation
def random_resized_crop_grid(
    n: int, size: int, scale: tuple[float, float], hflip: bool, gen: torch.Generator, quarter_turns: bool = False
) -> torch.Tensor:
    """Sampling grids (n, S, S, 2) of random resized crops (aspect 3/4..4/3) with optional horizontal flips and
    optional random quarter turns (with the flips: the eight symmetries of the square; an overhead image has no
    up). The quarter turns are drawn last, so grids without them are the same as before they existed."""
    area = torch.empty(n).uniform_(scale[0], scale[1], generator=gen)
    log_ratio = torch.empty(n).uniform_(math.log(3 / 4), math.log(4 / 3), generator=gen)
    ratio = torch.exp(log_ratio)
    w = torch.sqrt(area * ratio).clamp(max=1.0)
    h = torch.sqrt(area / ratio).clamp(max=1.0)
    cx = (torch.rand(n, generator=gen) * 2 - 1) * (1 - w)
    cy = (torch.rand(n, generator=gen) * 2 - 1) * (1 - h)
    flip = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0) if hflip else torch.ones(n)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = w * flip
    theta[:, 0, 2] = cx
    theta[:, 1, 1] = h
    theta[:, 1, 2] = cy
    if quarter_turns:
        # rotation matrices by 0, 90, 180 and 270 degrees; theta @ turn: crop and flip, then turn the result
        turns = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[0.0, -1.0], [1.0, 0.0]],
                              [[-1.0, 0.0], [0.0, -1.0]], [[0.0, 1.0], [-1.0, 0.0]]])
        theta[:, :, :2] = theta[:, :, :2] @ turns[torch.randint(0, 4, (n,), generator=gen)]
    return F.affine_grid(theta, [n, 1, size, size], align_corners=False)


def mix_batch(
    x: torch.Tensor, y: torch.Tensor, mixup: float, cutmix: float, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup or cutmix (one chosen per batch, each with probability 1/2 when both are on); y are soft targets."""
    use_cutmix = cutmix > 0 and (mixup <= 0 or torch.rand(1, generator=gen).item() < 0.5)
    alpha = cutmix if use_cutmix else mixup
    # The mixing weight comes from ``gen`` too (torch's Beta sampler takes no generator, so numpy's, seeded from
    # ``gen``): the global generator would make two fine-tunes with one seed differ.
    lam = 1.0
    if alpha > 0:
        lam = float(np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,), generator=gen))).beta(alpha, alpha))
    perm = torch.randperm(x.shape[0], generator=gen)
    if use_cutmix:
        s = x.shape[-1]
        cut = int(s * math.sqrt(1 - lam))
        cy, cx = (int(v) for v in torch.randint(0, s, (2,), generator=gen))
        y0, y1 = max(cy - cut // 2, 0), min(cy + cut // 2, s)
        x0, x1 = max(cx - cut // 2, 0), min(cx + cut // 2, s)
        x = x.clone()
        x[..., y0:y1, x0:x1] = x[perm][..., y0:y1, x0:x1]
        lam = 1 - (y1 - y0) * (x1 - x0) / (s * s)
    else:
        x = lam * x + (1 - lam) * x[perm]
    return x, lam * y + (1 - lam) * y[perm]


# ---------------------------------------------------------------------------------------- training
@dataclass
class FinetuneResult:
    model: FinetuneModel
    best_epoch: int
    best_val: float | None
    history: list[dict]
    target_mean: float = 0.0
    target_std: float = 1.0


def _targets(task_type: str, labels: np.ndarray, n_classes: int | None) -> torch.Tensor:
    if task_type == "classification":
        return torch.from_numpy(labels.astype(np.int64))
    if task_type == "segmentation":
        t = torch.from_numpy(labels.astype(np.int64))
        return torch.where((t >= 0) & (t < (n_classes or 0)), t, torch.full_like(t, -100))
    return torch.from_numpy(labels.astype(np.float32))


@torch.no_grad()
def predict(result: FinetuneResult, inputs: np.ndarray, *, batch_size: int, out_hw=None, device=None) -> np.ndarray:
    """Scores: class probabilities (N, K) / label probabilities / values / predicted masks at ``out_hw``
    (computed on ``device``, default where the model was fine-tuned)."""
    model = result.model.to(device).eval() if device is not None else result.model.eval()
    device = next(model.head.parameters()).device
    outs = []
    for start in range(0, len(inputs), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(inputs[start : start + batch_size])).to(device)
        z = model(x)
        if model.task_type == "classification":
            outs.append(torch.softmax(z, 1).cpu().numpy())
        elif model.task_type == "multilabel":
            outs.append(torch.sigmoid(z).cpu().numpy())
        elif model.task_type == "regression":
            outs.append((z * result.target_std + result.target_mean).cpu().numpy())
        else:
            if out_hw is not None and tuple(z.shape[-2:]) != tuple(out_hw):
                z = F.interpolate(z, size=out_hw, mode="bilinear", align_corners=False)
            outs.append(z.argmax(1).cpu().numpy().astype(np.int16))
    return np.concatenate(outs) if outs else np.zeros((0,))


def finetune(
    encoder: nn.Module,
    train_inputs: np.ndarray,
    train_labels: np.ndarray,
    val_inputs: np.ndarray | None,
    val_labels: np.ndarray | None,
    *,
    task_type: str,
    n_classes: int | None,
    config: FinetuneConfig,
    pool: str = "global",
    seed: int = 0,
    val_inputs_hw: tuple[int, int] | None = None,
    probe_features: tuple[np.ndarray, np.ndarray | None] | None = None,
) -> FinetuneResult:
    """Fine-tune a copy of ``encoder`` with a new head; returns the epoch that scored best on validation.

    ``train_inputs`` are normalised images resized to the model size (augmented here); ``val_inputs`` are
    evaluation inputs. Without a validation set the last epoch is kept. ``probe_features``: the frozen encoder's
    pooled features of the training and validation images as evaluation inputs (the linear protocol's, cached),
    for the probe that initialises the head (default: computed here from ``train_inputs`` and ``val_inputs``).
    """
    if len(train_inputs) != len(train_labels):
        raise InputError(f"fine-tuning: {len(train_inputs)} training images but {len(train_labels)} labels")
    if len(train_inputs) == 0:
        raise InputError("fine-tuning: the training set is empty")
    device = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
    gen = torch.Generator().manual_seed(seed)
    n_out = 1 if task_type == "regression" else int(n_classes or 0)
    model = _new_model(encoder, task_type, n_out, pool, config, seed, gen, device)
    y_all, mean, std = _standardised_targets(task_type, train_labels, n_classes)
    if config.head_init == "probe" and task_type in ("classification", "regression"):
        _probe_init(model, train_inputs, train_labels, val_inputs, val_labels, probe_features, config.batch_size,
                    task_type=task_type, n_classes=n_classes, target_mean=mean, target_std=std, seed=seed)
    x_all = torch.from_numpy(np.ascontiguousarray(train_inputs, dtype=np.float32))
    size = x_all.shape[-1]
    if task_type == "segmentation" and tuple(y_all.shape[-2:]) != (size, size):
        y_all = F.interpolate(y_all[:, None].float(), size=(size, size), mode="nearest")[:, 0].long()
    batch = min(config.batch_size, len(x_all))
    steps_per_epoch = max(1, len(x_all) // batch)  # drop the last partial batch (BatchNorm in the decoder)
    total = config.epochs * steps_per_epoch
    warmup = config.warmup_epochs * steps_per_epoch
    base_lr = scaled_lr(config.blr, batch)
    opt = torch.optim.AdamW(finetune_param_groups(model, config.weight_decay, config.layer_decay), lr=base_lr)
    loss_fn = _loss_fn(task_type, config.label_smoothing)
    headline = METRICS_BY_TYPE[task_type][0]
    best_state, best_val, best_epoch, history = None, None, config.epochs - 1, []
    bar = progress(total=config.epochs * steps_per_epoch, desc="fine-tune", unit="step")
    for epoch in range(config.epochs):
        running = _train_epoch(model, opt, loss_fn, x_all, y_all, batch=batch, steps=steps_per_epoch,
                               first_step=epoch * steps_per_epoch, total=total, warmup=warmup, base_lr=base_lr,
                               task_type=task_type, n_out=n_out, config=config, gen=gen, device=device, bar=bar)
        record = {"epoch": epoch, "train_loss": running / steps_per_epoch}
        if val_inputs is not None and val_labels is not None and len(val_labels):
            res = FinetuneResult(model, epoch, None, history, mean, std)
            value = _validation_score(res, val_inputs, val_labels, task_type, n_classes, headline, config.batch_size,
                                      val_inputs_hw, device)
            record[f"val_{headline}"] = value
            if value is not None and (best_val is None or value > best_val):
                best_val, best_epoch = value, epoch
                best_state = copy.deepcopy(model.state_dict())
        history.append(record)
        log(f"fine-tune epoch {epoch + 1}/{config.epochs}: " + ", ".join(f"{k}={v}" for k, v in record.items()
                                                                       if k != "epoch"))
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return FinetuneResult(model, best_epoch, best_val, history, mean, std)


def _new_model(encoder: nn.Module, task_type: str, n_out: int, pool: str, config: FinetuneConfig, seed: int,
               gen: torch.Generator, device: str) -> FinetuneModel:
    """A copy of ``encoder`` with a new head (initialised from ``seed``), stochastic depth set, on ``device``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = FinetuneModel(copy.deepcopy(encoder), task_type, n_out, pool, config.decoder_channels)
    _set_drop_path(model.encoder, config.drop_path, gen)
    model.to(device)
    return model


def _standardised_targets(task_type: str, labels: np.ndarray,
                          n_classes: int | None) -> tuple[torch.Tensor, float, float]:
    """Training targets, and the mean and std that standardise regression targets (0 and 1 otherwise)."""
    y_all = _targets(task_type, np.asarray(labels), n_classes)
    mean, std = 0.0, 1.0
    if task_type == "regression":
        mean, std = float(y_all.mean()), float(y_all.std().clamp_min(1e-8))
        y_all = (y_all - mean) / std
    return y_all, mean, std


def _train_epoch(model: FinetuneModel, opt: torch.optim.Optimizer, loss_fn: Callable, x_all: torch.Tensor,
                 y_all: torch.Tensor, *, batch: int, steps: int, first_step: int, total: int, warmup: int,
                 base_lr: float, task_type: str, n_out: int, config: FinetuneConfig, gen: torch.Generator,
                 device: str, bar: Any) -> float:
    """One epoch over a fresh permutation: ``steps`` augmented batches, each at its step's learning rate;
    returns the sum of the batch losses."""
    model.train()
    order = torch.randperm(len(x_all), generator=gen)
    # Summed on the device in float64 (the same sum as Python floats): one host synchronisation per epoch, not per
    # step, which on a GPU would stall the queue every step.
    running = torch.zeros((), dtype=torch.float64, device=device)
    for b in range(steps):
        x, y = _augmented_batch(x_all, y_all, order[b * batch : (b + 1) * batch], task_type, n_out, config, gen)
        lr = warmup_cosine(first_step + b, total, warmup, base_lr, config.min_lr)
        for g in opt.param_groups:
            g["lr"] = lr * g["lr_scale"]
        loss = loss_fn(model(x.to(device)), y.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        running += loss.detach().double()
        bar.update(1)
    return float(running)


def _probe_init(model: FinetuneModel, train_inputs: np.ndarray, train_labels: np.ndarray,
                val_inputs: np.ndarray | None, val_labels: np.ndarray | None,
                probe_features: tuple[np.ndarray, np.ndarray | None] | None, batch_size: int, **probe: Any) -> None:
    """The head initialised from a linear probe on the frozen encoder's pooled features (computed here unless
    ``probe_features`` gives them)."""
    if probe_features is None:
        has_val = val_inputs is not None and val_labels is not None and len(val_labels)
        probe_features = (_frozen_features(model, train_inputs, batch_size),
                          _frozen_features(model, val_inputs, batch_size) if has_val else None)
    init_head_from_probe(model, probe_features[0], train_labels, probe_features[1], val_labels, **probe)


def _loss_fn(task_type: str, label_smoothing: float) -> Callable:
    if task_type == "classification":
        return nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    if task_type == "multilabel":
        return nn.BCEWithLogitsLoss()
    if task_type == "regression":
        return nn.MSELoss()
    return nn.CrossEntropyLoss(ignore_index=-100)


def _augmented_batch(x_all: torch.Tensor, y_all: torch.Tensor, idx: torch.Tensor, task_type: str, n_out: int,
                     config: FinetuneConfig, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``idx`` after a random resized crop, flip and quarter turn (masks follow them), then mixup/cutmix for
    classification; every draw from ``gen``, in this order."""
    size = x_all.shape[-1]
    grid = random_resized_crop_grid(len(idx), size, config.rrc_scale, config.hflip, gen, config.quarter_turns)
    x = F.grid_sample(x_all[idx], grid, mode="bicubic", padding_mode="border", align_corners=False)
    y = y_all[idx]
    if task_type == "segmentation":
        y = F.grid_sample(y[:, None].float(), grid, mode="nearest", align_corners=False)[:, 0].long()
    if task_type == "classification" and (config.mixup > 0 or config.cutmix > 0):
        soft = F.one_hot(y, n_out).float()
        soft = soft * (1 - config.label_smoothing) + config.label_smoothing / n_out
        x, y = mix_batch(x, soft, config.mixup, config.cutmix, gen)
    return x, y


def _validation_score(res: FinetuneResult, val_inputs: np.ndarray, val_labels: np.ndarray, task_type: str,
                      n_classes: int | None, headline: str, batch_size: int, out_hw: tuple[int, int] | None,
                      device: str) -> float | None:
    """The headline metric of the model on the validation set (no bootstrap)."""
    scores = predict(res, val_inputs, batch_size=batch_size, out_hw=out_hw, device=device)
    return compute_metrics(
        task_type, val_labels, as_prediction(task_type, scores), n_classes=n_classes, metrics=[headline], n_boot=0,
    )[headline].value


def _frozen_features(model: FinetuneModel, inputs: np.ndarray, batch_size: int) -> np.ndarray:
    device = next(model.head.parameters()).device
    return extract_features(model.encoder, inputs, pool=model.pool, device=device, batch_size=batch_size, bf16=False)


def init_head_from_probe(
    model: FinetuneModel, train_features: np.ndarray, train_labels: np.ndarray, val_features: np.ndarray | None,
    val_labels: np.ndarray | None, *, task_type: str, n_classes: int | None, target_mean: float = 0.0,
    target_std: float = 1.0, seed: int = 0,
) -> None:
    """Set the linear head to a linear probe (``fit_linear_probe``, its default grid chosen on validation, not
    refitted on it: validation picks the epoch) fitted on the frozen encoder's pooled features of the un-augmented
    training images: fine-tuning then starts from what linear probing reaches instead of from a near-zero head,
    which on a small task and a short schedule never leaves the majority class (docs/evaluation.md). The probe is
    affine in the features (standardisation + linear model), so its weights are read off its outputs at 0 and at
    the unit vectors."""
    from geodiv.evaluate.linear import fit_linear_probe

    has_val = val_features is not None and val_labels is not None and len(val_labels)
    probe = fit_linear_probe(np.asarray(train_features, dtype=np.float64), np.asarray(train_labels),
                             np.asarray(val_features, dtype=np.float64) if has_val else None,
                             np.asarray(val_labels) if has_val else None, task_type=task_type, n_classes=n_classes,
                             refit_on_train_val=False, seed=seed)
    dim = int(model.head.in_features)
    basis = np.vstack([np.zeros((1, dim)), np.eye(dim)])
    out = probe.logits(basis) if task_type == "classification" else probe.scores(basis)[:, None]
    bias, weight = out[0], (out[1:] - out[0]).T  # (K,), (K, D)
    if task_type == "classification":
        unseen = bias < -1e8  # classes absent from the fitting set: far below the others, no slope
        if unseen.any() and not unseen.all():
            bias = np.where(unseen, bias[~unseen].min() - 10.0, bias)
    else:  # the head predicts the standardised target
        bias, weight = (bias - target_mean) / target_std, weight / target_std
    with torch.no_grad():
        model.head.weight.copy_(torch.from_numpy(weight).to(model.head.weight))
        model.head.bias.copy_(torch.from_numpy(bias).to(model.head.bias))


def _set_drop_path(encoder: nn.Module, rate: float, generator: torch.Generator) -> None:
    """Stochastic depth rising linearly over the blocks (0 at the first, ``rate`` at the last, SatMAE's schedule),
    drawn from ``generator`` so that fine-tuning is reproducible without global RNG state."""
    from geodiv.models.blocks import DropPath

    paths = [m for m in encoder.modules() if isinstance(m, DropPath)]
    for i, m in enumerate(paths):
        m.p = rate * i / max(1, len(paths) - 1)
    if hasattr(encoder, "set_drop_path_generator"):
        encoder.set_drop_path_generator(generator)
