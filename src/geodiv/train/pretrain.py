"""The pretraining loop: SatMAE's recipe on ``geodiv.models``' MAE, fed by ``geodiv.data.ShardStream``.

One code path for 1 CPU process, N GPUs and N nodes: under ``torchrun`` each process joins the process group,
streams its own share of the shards, and DDP averages the gradients. Only rank 0 logs and writes checkpoints.

Determinism: the model is initialised from ``seed``; the masking noise of micro-step ``k`` comes from a generator
seeded by ``(seed, k)`` and is drawn for the *global* micro-batch, of which every rank takes its own rows, so
N processes with batch B mask exactly as 1 process with batch N*B does; the learning rate is a pure function of
the step; data order comes from the stream's seeded shuffles and a saved position. A run stopped and resumed on
CPU therefore ends with bit-identical weights to one that never stopped.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import math
import os
import re
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from geodiv.atomic import folder_lock
from geodiv.bands import S2_BANDS
from geodiv.errors import ConfigError, DataError
from geodiv.models import build_mae, load_checkpoint, param_groups, save_checkpoint
from geodiv.progress import log, progress
from geodiv.train.batches import BatchSource, capture_rng, restore_rng
from geodiv.train.config import PretrainConfig, load_pretrain_config
from geodiv.train.distributed import (
    DistEnv,
    barrier,
    init_distributed,
    mean_across_ranks,
    shutdown_distributed,
)
from geodiv.train.logs import MetricsLog
from geodiv.train.schedule import lr_at, scaled_lr

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)\.pth$")
#: Key of geodiv's extra resume state inside a SatMAE-layout checkpoint (SatMAE's loaders ignore it).
RESUME_KEY = "geodiv"


# ------------------------------------------------------------------------------------ public entry points
def pretrain(config: PretrainConfig, resume: bool = False) -> Path:
    """Pretrain the MAE described by ``config``; returns the path of the final checkpoint.

    With ``resume=True`` training continues from the newest ``checkpoint-*.pth`` in ``config.out_dir``
    (or starts fresh when there is none). Under ``torchrun`` every process calls this; all return the path.
    """
    env = init_distributed(config.device)
    try:
        # The main process holds the output folder's lock: a second run into it waits or stops.
        lock = folder_lock(config.out_dir, "geodiv pretrain") if env.is_main else contextlib.nullcontext()
        with lock:
            return _Trainer(config, env).run(resume)
    finally:
        shutdown_distributed(env)


def pretrain_from_file(
    path: str | os.PathLike[str], resume: bool = False, overrides: dict[str, Any] | None = None
) -> Path:
    """``geodiv pretrain CONFIG.yaml [--resume] [--set key=value ...]``."""
    return pretrain(load_pretrain_config(path, overrides), resume=resume)


def newest_checkpoint(out_dir: str | os.PathLike[str]) -> Path | None:
    """The ``checkpoint-EPOCH.pth`` with the highest epoch in ``out_dir``, or None."""
    out_dir = Path(out_dir)
    found = [(int(m.group(1)), p) for p in out_dir.glob("checkpoint-*.pth") if (m := CHECKPOINT_RE.match(p.name))]
    return max(found)[1] if found else None


# ------------------------------------------------------------------------------------------- helpers
def resolve_precision(precision: str, device: torch.device) -> str:
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError("precision fp16 needs a CUDA device (GradScaler); use fp32 or bf16 on CPU")
    return precision


#: Salts that keep the noise streams apart: training micro-steps, the fixed visualisation batch, the held-out check.
_TRAIN_NOISE, _VIS_NOISE, _HELDOUT_NOISE = 0x6D61736B, 0x76697331, 0x686F6C64


def mask_noise(seed: int, micro_step: int, global_batch: int, n_noise: int, salt: int = _TRAIN_NOISE) -> torch.Tensor:
    """Masking noise (global_batch x n_noise) for micro-step ``micro_step``; identical on every rank.

    Each rank takes its own rows of it, so the masks of a global batch do not depend on how it is split.
    """
    key = np.random.SeedSequence([seed, micro_step, salt]).generate_state(1, np.uint64)[0]
    gen = torch.Generator().manual_seed(int(key >> np.uint64(1)))
    return torch.rand(global_batch, n_noise, generator=gen)


# ------------------------------------------------------------------------------- adapters to the stages
def build_model(config: PretrainConfig) -> nn.Module:
    """The MAE of ``config``, initialised from ``config.seed`` (``build_mae`` leaves the global RNG alone)."""
    kwargs: dict[str, Any] = {
        "img_size": config.data.img_size,
        "patch_size": config.model.patch_size,
        "in_chans": len(config.data.bands),
        "channel_groups": config.resolved_groups(),
        "norm_pix_loss": config.model.norm_pix_loss,
        "mask_mode": config.model.mask_mode,
        "reference_loss_order": config.model.reference_loss_order,
        "seed": config.seed,
    }
    kwargs.update(config.model.overrides)
    return build_mae(config.model.preset, **kwargs)


def dataset_size(config: PretrainConfig) -> int:
    from geodiv import data

    return sum(int(data.read_manifest(d)["n_samples"]) for d in config.data.dirs)


def resolve_transform_on(transform_on: str, device: torch.device) -> str:
    """``auto``: on the device where it is a GPU (the workers then only read and select bands, and hand over half
    the bytes; measured in docs/scaling.md), in the workers on a CPU (where the per-sample kernel is faster)."""
    if transform_on == "auto":
        return "device" if device.type == "cuda" else "workers"
    return transform_on


def make_loader_factory(
    config: PretrainConfig, env: DistEnv
) -> tuple[Callable[[int, int], Iterable[Any]], nn.Module | None]:
    """``(first_pass, batches_done) -> DataLoader`` over this rank's share of the shards, endless: pass after
    pass in the same workers (``BatchSource`` makes one for the whole run, and one more per resume); and the module
    that finishes each batch on the device (``None`` when the workers deliver model inputs).

    ``ShardStream`` splits the shards over (rank, worker) from the process group, gives every rank the same number
    of samples per pass (so no rank waits on another at the end of a pass), seeds shard order, shuffle buffer and
    crops by ``(seed, pass, worker)``, and skips already used batches without decoding them.
    """
    from geodiv import data

    dcfg = config.data
    stream = data.ShardStream(
        [str(d) for d in dcfg.dirs],
        bands=list(dcfg.bands),
        normalize=dcfg.normalize,
        augment=dcfg.augment,
        size=dcfg.img_size,
        crop_scale=tuple(dcfg.crop_scale),
        shuffle_buffer=dcfg.shuffle_buffer,
        seed=config.seed,
        epochs=None,
        whole_batches=True,  # each worker's passes in whole batches: no batch mixes two passes, none is dropped
        transform_on=resolve_transform_on(dcfg.transform_on, env.device),
    )
    batch_transform = stream.batch_transform().to(env.device) if stream.transform_on == "device" else None
    _warn_about_passes(stream, config, env)

    if dcfg.num_workers > 0 and env.world_size == 1:
        # Once here, not in every worker (the workers copy the verified set). Under DDP each rank would hash every
        # shard (ranks x the dataset before the first step, at paper scale minutes): there each worker hashes the
        # shards it reads, once, the first time it reads them.
        stream.verify_shards()

    def make(first_pass: int, batches_done: int) -> Iterable[torch.Tensor]:
        run_stream = copy.copy(stream)  # a resume makes a second loader; the template stays at pass 0
        run_stream.load_state_dict(
            {"epoch": first_pass, "batches_done": batches_done, "batch_size": config.optim.batch_size}
        )
        return torch.utils.data.DataLoader(
            run_stream,
            batch_size=config.optim.batch_size,
            num_workers=dcfg.num_workers,
            drop_last=True,
            pin_memory=env.device.type == "cuda",
            # the workers' base seed from a generator of its own: making the loader must not move the global RNG
            # that checkpoints capture (the stream itself is seeded by (seed, pass, worker))
            generator=torch.Generator().manual_seed(config.seed),
        )

    return make, batch_transform


def _warn_about_passes(stream: Any, config: PretrainConfig, env: DistEnv) -> None:
    """Say so when the split of the shards over processes and DataLoader workers wastes work: fewer shards than
    workers in all (every worker then reads every shard and keeps every k-th sample), or workers that leave much of
    each pass unused (each makes whole batches of its own share)."""
    if not env.is_main:  # the main process speaks for all (the split is the same arithmetic on every rank)
        return
    workers = config.data.num_workers
    readers = env.world_size * max(1, workers)
    if len(stream.shards) < readers:
        log(f"{len(stream.shards)} shards for {readers} readers ({env.world_size} process(es) x {max(1, workers)} "
            f"DataLoader worker(s)): every reader reads every shard and keeps every {readers}th sample. Write at "
            f"least {readers} shards (a smaller shard_size) or use fewer data.num_workers")
    probe = copy.copy(stream)  # the loaders' template keeps its state
    probe.load_state_dict({"epoch": 0, "batches_done": 0, "batch_size": config.optim.batch_size})
    used = probe.samples_per_epoch(workers)
    share = stream.n_samples // env.world_size
    if used < 0.9 * share:
        who = (f"each of the {workers} DataLoader workers makes whole batches of {config.optim.batch_size} from its "
               "own share" if workers else f"a pass makes whole batches of {config.optim.batch_size}")
        log(f"each pass uses {used} of this process's {share} samples: {who}, and the rest waits for a later pass "
            f"(other samples each time). Use {'fewer data.num_workers or ' if workers else ''}a smaller batch_size "
            "to use more of each pass (docs/training.md, \"Epochs\")")


def visual_batch(config: PretrainConfig, n: int, dirs: list[Path] | None = None) -> torch.Tensor:
    """The first ``n`` samples of the data (or of ``dirs``), unshuffled and centre-cropped: the same pictures at
    every checkpoint."""
    from geodiv import data

    dcfg = config.data
    stream = data.ShardStream(
        [str(d) for d in (dirs or dcfg.dirs)], bands=list(dcfg.bands), normalize=dcfg.normalize, augment="eval",
        size=dcfg.img_size, shuffle=False, seed=config.seed, epochs=1,
    )
    samples = [x for _, x in zip(range(n), stream)]
    if not samples:
        raise DataError(f"no samples in {', '.join(str(d) for d in (dirs or dcfg.dirs))}; give dataset folders "
                        "that hold samples")
    return torch.stack(samples)


# -------------------------------------------------------------------------------------------- trainer
class _Trainer:
    def __init__(self, config: PretrainConfig, env: DistEnv) -> None:
        self.config = config
        self.env = env
        self.device = env.device
        self.precision = resolve_precision(config.precision, env.device)
        optim = config.optim
        per_micro = optim.batch_size * env.world_size
        if optim.effective_batch is not None:
            if optim.effective_batch % per_micro:
                raise ConfigError(
                    f"optim.effective_batch {optim.effective_batch} is not a multiple of batch_size x processes "
                    f"= {optim.batch_size} x {env.world_size}; change batch_size or the number of processes"
                )
            self.accum = optim.effective_batch // per_micro
        else:
            self.accum = optim.accum_iter
        self.effective_batch = per_micro * self.accum
        self.lr = optim.lr if optim.lr is not None else scaled_lr(optim.blr, self.effective_batch)
        n_samples = dataset_size(config)
        self.steps_per_epoch = n_samples // self.effective_batch
        if self.steps_per_epoch < 1:
            raise ConfigError(
                f"the dataset ({n_samples} samples in {', '.join(map(str, config.data.dirs))}) is smaller than one "
                f"effective batch ({self.effective_batch} = batch_size x accumulation x processes); lower them"
            )
        self.total_steps = self.steps_per_epoch * optim.epochs
        if config.max_steps is not None:
            self.total_steps = min(self.total_steps, config.max_steps)

    # ---------------------------------------------------------------------------------- setup
    def _setup(self, resume_state: dict[str, Any] | None) -> None:
        cfg, env = self.config, self.env
        self.model = build_model(cfg).to(self.device)
        self.n_noise = self.model.config.noise_length
        # AdamW groups: decay on weight matrices and kernels; none on norms, biases, tokens and position tables.
        # Fused AdamW (torch >= 2.4 on CPU and CUDA): one kernel over all parameters instead of one per tensor.
        self.optimizer = torch.optim.AdamW(
            param_groups(self.model, cfg.optim.weight_decay), lr=self.lr, betas=tuple(cfg.optim.betas),
            fused=self.device.type in ("cpu", "cuda"),
        )
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        if resume_state is not None:
            self.model.load_state_dict(resume_state["model"])
            self.optimizer.load_state_dict(resume_state["optimizer"])
            if resume_state.get("scaler"):
                self.scaler.load_state_dict(resume_state["scaler"])
        self.ddp: nn.Module | None = None
        wrapped: nn.Module = self.model
        if env.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
            wrapped = self.ddp
        self.forward_module = torch.compile(wrapped) if cfg.compile else wrapped
        # Shapes independent of the masking: one graph for torch.compile, no host synchronisation on a GPU
        # (measured faster there; the removed-token path is faster on CPU; docs/training.md).
        self.static_shapes = cfg.compile or self.device.type != "cpu"
        self._vis_batch: torch.Tensor | None = None

    # ---------------------------------------------------------------------------------- state
    def _resume_state(self, resume: bool) -> tuple[dict[str, Any] | None, Path | None]:
        if not resume:
            return None, None
        path = newest_checkpoint(self.config.out_dir)
        if path is None:
            if self.env.is_main:
                log(f"--resume: no checkpoint in {self.config.out_dir}; starting from scratch")
            return None, None
        ckpt = load_checkpoint(path)
        state = ckpt.get(RESUME_KEY)
        if not isinstance(state, dict):
            raise DataError(f"{path} has no geodiv resume state (key {RESUME_KEY!r}); it cannot be resumed from")
        if state["effective_batch"] != self.effective_batch or state["steps_per_epoch"] != self.steps_per_epoch:
            raise ConfigError(
                f"cannot resume from {path}: it was trained with effective batch {state['effective_batch']} and "
                f"{state['steps_per_epoch']} steps/epoch, this run has {self.effective_batch} and "
                f"{self.steps_per_epoch}; resume with the same batch settings and data"
            )
        return ckpt, path

    def _args_namespace(self) -> argparse.Namespace:
        """SatMAE's ``args`` (plain values), plus geodiv's config, bands and groups."""
        cfg = self.config
        bands = list(cfg.data.bands)
        groups = cfg.resolved_groups()
        return argparse.Namespace(
            model=f"mae_vit_{cfg.model.preset}_group_channel",
            model_type="group_c",
            input_size=cfg.data.img_size,
            patch_size=cfg.model.patch_size,
            mask_ratio=cfg.model.mask_ratio,
            spatial_mask=cfg.model.mask_mode == "spatial",
            norm_pix_loss=cfg.model.norm_pix_loss,
            epochs=cfg.optim.epochs,
            warmup_epochs=cfg.optim.warmup_epochs,
            batch_size=cfg.optim.batch_size,
            accum_iter=self.accum,
            blr=cfg.optim.blr,
            lr=self.lr,
            min_lr=cfg.optim.min_lr,
            weight_decay=cfg.optim.weight_decay,
            seed=cfg.seed,
            output_dir=str(cfg.out_dir),
            world_size=self.env.world_size,
            grouped_bands=groups,
            dropped_bands=[i for i, b in enumerate(S2_BANDS) if b not in bands],
            bands=bands,
            geodiv_config=cfg.model_dump(mode="json"),
        )

    def _save(self, epoch: int, global_step: int, source: BatchSource) -> Path:
        positions = self._gather_positions(source)
        path = Path(self.config.out_dir) / f"checkpoint-{epoch}.pth"
        if self.env.is_main:
            resume_state = {
                "global_step": global_step,
                "steps_per_epoch": self.steps_per_epoch,
                "effective_batch": self.effective_batch,
                "world_size": self.env.world_size,
                "data_positions": positions,
                "rng": capture_rng(),
            }
            save_checkpoint(
                path,
                model=self.model,
                optimizer=self.optimizer,
                epoch=epoch,
                scaler=self.scaler if self.scaler.is_enabled() else None,
                args=self._args_namespace(),
                extra={RESUME_KEY: resume_state},
            )
        barrier(self.env)
        return path

    def _gather_positions(self, source: BatchSource) -> list[list[int]]:
        mine = list(source.position())
        if not self.env.distributed:
            return [mine]
        gathered: list[Any] = [None] * self.env.world_size
        torch.distributed.all_gather_object(gathered, mine)
        return [list(p) for p in gathered]

    # ---------------------------------------------------------------------------------- loop
    def run(self, resume: bool) -> Path:
        cfg, env = self.config, self.env
        resume_state, resume_path = self._resume_state(resume)
        self._setup(resume_state)
        global_step = 0
        position = (0, 0)
        if resume_state is not None:
            state = resume_state[RESUME_KEY]
            global_step = int(state["global_step"])
            positions = state["data_positions"]
            if len(positions) == env.world_size:
                position = tuple(positions[env.rank])
            else:
                # Another process count splits the shards differently; the exact stream cannot be replayed,
                # so every rank starts a pass that no rank has used yet.
                position = (max(BatchSource.fresh_pass(p) for p in positions), 0)
                if env.is_main:
                    log(f"resuming on {env.world_size} processes from a run on {len(positions)}: the data order "
                        "restarts at a fresh pass (weights, optimiser and schedule continue exactly)")
            restore_rng(state["rng"])
            if env.is_main:
                log(f"resumed from {resume_path} at step {global_step}")
        make_loader, self.batch_transform = make_loader_factory(cfg, env)
        source = BatchSource(make_loader, position)
        metrics = MetricsLog(
            cfg.out_dir, enabled=env.is_main, tensorboard=cfg.log.tensorboard,
            resume_step=global_step if resume_state is not None else None,
        )
        if env.is_main:
            Path(cfg.out_dir).mkdir(parents=True, exist_ok=True)
            log(f"pretraining {cfg.model.preset} on {env.world_size} process(es), {self.device}, {self.precision}: "
                f"effective batch {self.effective_batch} ({cfg.optim.batch_size} x accum {self.accum} x "
                f"{env.world_size}), lr {self.lr:.3g}, {self.steps_per_epoch} steps/epoch, "
                f"{self.total_steps} steps in all")
        final: Path | None = None
        if resume_state is not None and global_step >= self.total_steps:
            final = resume_path
        try:
            final = self._loop(global_step, source, metrics) or final
        finally:
            source.close()
            metrics.close()
        assert final is not None
        if env.is_main and cfg.heldout.dirs:  # also when a finished run is resumed: the check is deterministic
            self._heldout()
        return final

    def _loop(self, global_step: int, source: BatchSource, metrics: MetricsLog) -> Path | None:
        cfg, env = self.config, self.env
        autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)
        rows = slice(env.rank * cfg.optim.batch_size, (env.rank + 1) * cfg.optim.batch_size)
        self.model.train()
        final: Path | None = None
        loss_sum = torch.zeros((), device=self.device)
        loss_count = 0
        window_start, window_samples = time.perf_counter(), 0
        bar = progress(total=self.total_steps, desc="pretrain", unit="step",
                       disable=None if (env.is_main and cfg.log.progress) else True)
        bar.update(global_step)
        while global_step < self.total_steps:
            epoch = global_step // self.steps_per_epoch
            lr = lr_at(global_step, steps_per_epoch=self.steps_per_epoch, lr=self.lr, min_lr=cfg.optim.min_lr,
                       warmup_epochs=cfg.optim.warmup_epochs, epochs=cfg.optim.epochs)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            self._optimizer_step(global_step, source, rows, autocast_dtype, loss_sum)
            loss_count += self.accum
            global_step += 1
            window_samples += self.effective_batch
            bar.update(1)
            epoch_done = global_step % self.steps_per_epoch == 0
            last = global_step >= self.total_steps
            if global_step % cfg.log.every_steps == 0 or epoch_done or last:
                loss_value = mean_across_ranks(float(loss_sum) / max(loss_count, 1), env)
                if not math.isfinite(loss_value):
                    raise FloatingPointError(
                        f"loss is {loss_value} at step {global_step}; lower blr, use fp32/bf16, or check the data"
                    )
                if self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)
                elapsed = time.perf_counter() - window_start
                rate = window_samples / elapsed if elapsed > 0 else float("nan")
                metrics.append(epoch=epoch, step=global_step, lr=lr, loss=loss_value, samples_per_s=rate)
                bar.set_postfix(loss=f"{loss_value:.4f}", samples_s=f"{rate:.1f}", epoch=epoch)
                loss_sum.zero_()
                loss_count = 0
                window_start, window_samples = time.perf_counter(), 0
            if last or (epoch_done and ((epoch + 1) % cfg.checkpoint_every == 0)):
                final = self._save(epoch, global_step, source)
                if env.is_main and cfg.log.visualize:
                    self._visualize(epoch)
                window_start = time.perf_counter()  # throughput counts training, not checkpoint writing
        bar.close()
        return final

    def _optimizer_step(self, global_step: int, source: BatchSource, rows: slice, autocast_dtype: torch.dtype | None,
                        loss_sum: torch.Tensor) -> None:
        """Step ``global_step``: ``accum`` micro-batches (gradients synchronised on the last), then the update;
        each micro-batch's loss is added to ``loss_sum`` in place."""
        cfg = self.config
        micro_global = cfg.optim.batch_size * self.env.world_size
        for micro in range(self.accum):
            batch = next(source)
            if self.batch_transform is None:
                imgs = batch.to(self.device, non_blocking=True)
            else:  # stored pixels and crops: normalise, crop and resize here
                pixels, crops = (t.to(self.device, non_blocking=True) for t in batch)
                imgs = self.batch_transform(pixels, crops)
            noise = mask_noise(cfg.seed, global_step * self.accum + micro, micro_global, self.n_noise)[rows]
            if self.device.type == "cuda":
                noise = noise.pin_memory()  # from pageable memory the copy may wait for the GPU's queue
            noise = noise.to(self.device, non_blocking=True)
            sync = micro == self.accum - 1 or self.ddp is None
            with contextlib.nullcontext() if sync else self.ddp.no_sync():
                with torch.autocast(self.device.type, dtype=autocast_dtype or torch.bfloat16,
                                    enabled=autocast_dtype is not None):
                    # return_pred=False: the decoder computes only what the loss reads (masked tokens);
                    # under torch.compile, shapes that do not depend on the masking (one graph).
                    loss, _, _ = self.forward_module(imgs, mask_ratio=cfg.model.mask_ratio, noise=noise,
                                                     return_pred=False, static_shapes=self.static_shapes)
                self.scaler.scale(loss / self.accum).backward()
            loss_sum += loss.detach().float()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)

    def _visualize(self, epoch: int) -> None:
        from geodiv.train.visualize import mask_to_image, save_reconstruction_png

        cfg = self.config
        if self._vis_batch is None:
            self._vis_batch = visual_batch(cfg, cfg.log.n_visualize)
        imgs = self._vis_batch
        noise = mask_noise(cfg.seed, 0, imgs.shape[0], self.n_noise, salt=_VIS_NOISE)
        self.model.eval()
        with torch.no_grad():
            _, pred, mask = self.model(imgs.to(self.device), mask_ratio=cfg.model.mask_ratio,
                                       noise=noise.to(self.device))
            recon = self.model.reconstruct(pred.float(), self.model.grid_of(imgs)).cpu()
        self.model.train()
        pixel_mask = mask_to_image(mask.float().cpu(), cfg.resolved_groups(), imgs.shape[1], cfg.model.patch_size)
        save_reconstruction_png(
            Path(cfg.out_dir) / f"reconstruction-{epoch}.png", imgs, recon, pixel_mask, list(cfg.data.bands),
            title=f"epoch {epoch}",
        )

    def _heldout(self) -> None:
        """``heldout.json``: masked-patch loss on held-out samples next to the mean-of-visible-patches loss."""
        from geodiv.train.heldout import heldout_losses, write_heldout

        cfg = self.config
        imgs = visual_batch(cfg, cfg.heldout.n, dirs=list(cfg.heldout.dirs))
        noise = mask_noise(cfg.seed, 0, imgs.shape[0], self.n_noise, salt=_HELDOUT_NOISE)
        result = heldout_losses(self.model, imgs, noise, mask_ratio=cfg.model.mask_ratio,
                                batch_size=cfg.heldout.batch_size)
        result.update(epoch=(self.total_steps - 1) // self.steps_per_epoch, step=self.total_steps,
                      mask_ratio=cfg.model.mask_ratio,
                      dirs=[str(d) for d in cfg.heldout.dirs])
        write_heldout(cfg.out_dir, result)
        log(f"held-out reconstruction ({result['n']} samples): MAE loss {result['mae_loss']:.4f}, predicting the "
            f"mean of the visible patches {result['mean_visible_loss']:.4f}")


__all__ = [
    "mask_noise",
    "newest_checkpoint",
    "pretrain",
    "pretrain_from_file",
]
