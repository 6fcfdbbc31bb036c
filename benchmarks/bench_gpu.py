"""SatMAE training step on one GPU: samples/s and model FLOPs utilisation (MFU), bf16 autocast.

Run only where CUDA is available (``run`` returns no rows elsewhere); ``benchmarks/gpu_session.sh`` is the one
script a lent GPU machine runs, and it writes the rows to ``benchmarks/results/gpu.json``, which ``run_all``
renders into BENCHMARKS.md with the command and the card.

What is measured, per configuration, on random images with fresh masking noise each step:
- ``geodiv``: ``SatMAE.forward(imgs, 0.75, return_pred=False)`` (the training path) + backward + fused AdamW;
- ``geodiv, static shapes``: ``static_shapes=True`` (every patch embedded, every token through the decoder, as
  SatMAE computes; no host synchronisation, one graph for ``torch.compile``);
- ``reference form``: the same weights run through SatMAE's sequence of operations (explicit softmax
  attention, per-group conv, gather unshuffle; ``benchmarks.bench_models.ReferenceFormMAE``) with the default
  (foreach) AdamW, as SatMAE's ``main_pretrain.py`` builds it;
- optionally (``GEODIV_BENCH_COMPILE=1``) the static-shape path under ``torch.compile`` (default mode).
All under ``torch.autocast("cuda", torch.bfloat16)``, fp32 master weights, as ``geodiv pretrain`` runs.

MFU = model FLOPs per step / step time / the card's dense bf16 peak. Model FLOPs are counted with
``torch.utils.flop_counter`` on the reference form (the full model: every token through the decoder, forward and
backward), so the removed-token shortcuts of the training path raise its MFU only through time, as MFU counts.
The FLOPs geodiv's path actually executes are reported too ("hardware FLOP/s").
"""

from __future__ import annotations

import contextlib
import os
import sys
import time

import torch

from geodiv.models import build_mae, param_groups

#: Dense (no sparsity) bf16 tensor-core peaks, FLOP/s, from NVIDIA's data sheets.
PEAK_BF16 = {"H100 PCIe": 756e12, "H100 NVL": 835e12, "H100": 989.4e12, "H200": 989.4e12, "A100": 312e12}


def peak_bf16(name: str) -> tuple[float | None, str]:
    for key, value in PEAK_BF16.items():  # most specific first
        if key in name:
            return value, key
    return None, "unknown card"


def _optimizer(model: torch.nn.Module, fused: bool) -> torch.optim.Optimizer:
    kwargs = {"fused": True} if fused else {}
    return torch.optim.AdamW(param_groups(model, 0.05), lr=1e-4, betas=(0.9, 0.95), **kwargs)


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _time_steps(step, imgs: torch.Tensor, noises: list[torch.Tensor], warmup: int) -> tuple[float, float]:
    """(median seconds per step over the timed steps, seconds of the warm-up steps)."""
    t0 = time.perf_counter()
    for noise in noises[:warmup]:
        step(imgs, noise)
    _sync(imgs.device)
    warm = time.perf_counter() - t0
    times = []
    for noise in noises[warmup:]:
        t0 = time.perf_counter()
        step(imgs, noise)
        _sync(imgs.device)
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2], warm


def _count_flops(fn) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops()


def measure(preset: str = "base", batch: int = 256, steps: int = 12, warmup: int = 3,
            compile_model: bool = False, device: str = "cuda", skip: tuple[str, ...] = (),
            profile: bool = False, sdpa: str | None = None, img_size: int = 96) -> list[dict]:
    """Rows for each configuration (``skip`` leaves out labels; without the reference form the rows have no
    baseline). ``profile`` prints the top GPU kernels of one step of the last configuration. ``sdpa`` pins the
    attention backend of geodiv's configurations (``flash``, ``cudnn``, ``efficient`` or ``math``; default: torch
    chooses, cuDNN on an H100 with torch 2.11) to compare them for the decoder's 32-wide heads. Zero-padding
    those heads to width 64 was measured slower on an H100 (docs/scaling.md) and is not offered."""
    from benchmarks.bench_models import ReferenceFormMAE

    dev = torch.device(device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU"
    peak, peak_name = peak_bf16(name)
    torch.manual_seed(0)
    fast = build_mae(preset, img_size=img_size, patch_size=8).to(dev)
    ref_model = build_mae(preset, img_size=img_size, patch_size=8).to(dev)
    ref = ReferenceFormMAE(ref_model)
    n_tok = fast.num_groups * fast.config.grid**2
    imgs = torch.rand(batch, fast.config.in_chans, img_size, img_size, device=dev)
    noises = [torch.rand(batch, n_tok, device=dev) for _ in range(warmup + steps)]
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16)

    def backend():
        if sdpa is None:
            return contextlib.nullcontext()
        from torch.nn.attention import SDPBackend, sdpa_kernel

        names = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION,
                 "efficient": SDPBackend.EFFICIENT_ATTENTION, "math": SDPBackend.MATH}
        return sdpa_kernel(names[sdpa])

    def step_of(loss_fn, opt):
        def step(x, z):
            opt.zero_grad(set_to_none=True)
            with autocast, backend():
                loss = loss_fn(x, z)
            loss.backward()
            opt.step()
        return step

    def fast_loss(x, z):
        return fast(x, 0.75, z, return_pred=False)[0]

    def static_loss(x, z):
        return fast(x, 0.75, z, return_pred=False, static_shapes=True)[0]

    def ref_loss(x, z):
        return ref(x, 0.75, z)

    # FLOPs are linear in the batch: count on a slice of it (the reference form's attention matrices are big).
    part = min(batch, 32)
    with autocast:
        model_flops = _count_flops(lambda: ref_loss(imgs[:part], noises[0][:part]).backward()) * batch // part
        geodiv_flops = _count_flops(lambda: fast_loss(imgs[:part], noises[0][:part]).backward()) * batch // part
    fast.zero_grad(set_to_none=True)
    ref.zero_grad(set_to_none=True)

    configs = [
        ("geodiv (training path)", step_of(fast_loss, _optimizer(fast, fused=True)), geodiv_flops),
        ("geodiv, static shapes", step_of(static_loss, _optimizer(fast, fused=True)), model_flops),
        ("reference form", step_of(ref_loss, _optimizer(ref, fused=False)), model_flops),
    ]
    if compile_model:
        compiled = torch.compile(fast)
        configs.append(("geodiv, static shapes, torch.compile",
                        step_of(lambda x, z: compiled(x, 0.75, z, return_pred=False, static_shapes=True)[0],
                                _optimizer(fast, True)),
                        model_flops))
    configs = [c for c in configs if c[0] not in skip]
    results = {}
    for label, step, _ in configs:
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        timed = _time_steps(step, imgs, noises, warmup)
        print(f"# {label}: {batch / timed[0]:.0f} samples/s, warm-up {timed[1]:.1f} s", file=sys.stderr, flush=True)
        results[label] = (*timed, torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else 0.0)
    if profile:
        from torch.profiler import ProfilerActivity
        from torch.profiler import profile as torch_profile

        with torch_profile(activities=[ProfilerActivity.CUDA]) as prof:
            configs[-1][1](imgs, noises[-1])
            _sync(dev)
        print(prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=20, max_name_column_width=70),
              file=sys.stderr, flush=True)
    base_time = results["reference form"][0] if "reference form" in results else None
    rows = []
    for label, _, executed in configs:
        sec, warm, mem = results[label]
        mfu = model_flops / sec / peak if peak else None
        note = (f"{name}, torch {torch.__version__}; {preset}, {img_size} px, patch 8, 10 bands in 3 groups, mask 0.75, "
                + (f"SDPA backend {sdpa}, " if sdpa else "") +
                f"batch {batch}, bf16 autocast, median of {steps} steps after {warmup} warm-up ({warm:.1f} s); "
                f"{model_flops / batch / 1e9:.1f} model GFLOP/sample/step; peak {mem:.1f} GiB; "
                f"hardware {executed / sec / 1e12:.0f} TFLOP/s executed")
        ratio = base_time / sec if base_time else None
        rows.append({"benchmark": f"gpu: {preset} MAE train step, {label}", "value": batch / sec,
                     "unit": "samples/s", "baseline": batch / base_time if base_time else None, "ratio": ratio,
                     "target": "-", "note": note})
        rows.append({"benchmark": f"gpu: {preset} MAE MFU, {label}",
                     "value": None if mfu is None else 100 * mfu, "unit": f"% of {peak_name} bf16 dense peak",
                     "baseline": 100 * model_flops / base_time / peak if peak and base_time else None,
                     "ratio": ratio, "target": ">= 40% (H100)", "note": note})
    return rows


def build_pipeline_dataset(out: str, n: int = 16384, size: int = 64, workers: int | None = None) -> str:
    """A SimEarth dataset (global, balanced, 13 bands) for the input-pipeline rows, built with ``workers``
    processes (default: every core); reused when it exists."""
    from geodiv.data import build_dataset

    if not os.path.isfile(os.path.join(out, "manifest.json")):
        t = time.perf_counter()
        build_dataset({"name": "pipeline", "n": n, "size": size, "shard_size": 256, "seed": 0,
                       "strategy": {"kind": "global", "mode": "balanced"}}, out, workers=workers or os.cpu_count())
        print(f"# built {n} samples at {size} px in {time.perf_counter() - t:.1f} s", file=sys.stderr, flush=True)
    return out


def pipeline_config(root: str, out: str, *, batch: int, workers: int, epochs: int, preset: str = "tiny",
                    size: int = 64, compile_model: bool = False, transform_on: str = "auto"):
    """The ``geodiv pretrain`` config of the input-pipeline rows (``measure_loader`` uses its data section)."""
    from geodiv.data import read_manifest
    from geodiv.train import PretrainConfig

    steps_per_epoch = int(read_manifest(root)["n_samples"]) // batch
    return PretrainConfig.model_validate({
        "data": {"dirs": [root], "img_size": size, "num_workers": workers, "shuffle_buffer": 1000,
                 "transform_on": transform_on},
        "model": {"preset": preset, "patch_size": 8},
        "optim": {"epochs": epochs, "warmup_epochs": 1, "batch_size": batch, "blr": 1.5e-4},
        "compile": compile_model, "checkpoint_every": epochs, "out_dir": out,
        "log": {"every_steps": max(1, steps_per_epoch // 4), "visualize": False, "tensorboard": False,
                "progress": False},
    })


def measure_loader(root: str, *, batch: int = 1024, workers: int = 8, epochs: int = 4, size: int = 64,
                   transform_on: str = "device") -> dict:
    """The input pipeline alone, as ``geodiv pretrain`` runs it (its loader factory and one endless loader, pinned
    batches copied to the GPU and, for ``transform_on="device"``, finished there), with no model: the rate a
    training step could be fed at. One row."""
    from geodiv.data import read_manifest
    from geodiv.train.batches import BatchSource
    from geodiv.train.distributed import DistEnv

    pretrain_module = sys.modules["geodiv.train.pretrain"]
    dev = torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    n = int(read_manifest(root)["n_samples"])
    cfg = pipeline_config(root, "/tmp/unused", batch=batch, workers=workers, epochs=epochs, size=size,
                          transform_on=transform_on)
    env = DistEnv(rank=0, world_size=1, local_rank=0, device=dev)
    make, finish = pretrain_module.make_loader_factory(cfg, env)
    source = BatchSource(make, (0, 0))
    steps = epochs * (n // batch)
    first = next(source)  # the first loader's start-up is outside the timing, as in measure_pipeline
    t = time.perf_counter()
    for _ in range(steps - 1):
        item = next(source)
        x = (item.to(dev, non_blocking=True) if finish is None
             else finish(*(part.to(dev, non_blocking=True) for part in item)))
    _sync(dev)
    seconds = time.perf_counter() - t
    source.close()
    del first
    name = torch.cuda.get_device_name(0) if dev.type == "cuda" else "CPU"
    return {"benchmark": f"gpu: input pipeline alone, {size} px, batch {batch}, {workers} workers, transforms on "
                         f"{'the workers' if finish is None else 'the GPU' if dev.type == 'cuda' else 'the device'}",
            "value": round((steps - 1) * batch / seconds), "unit": "samples/s", "baseline": None, "ratio": None,
            "target": "-", "note": f"{name}, torch {torch.__version__}; {n} SimEarth samples, {epochs} passes, "
                                   f"{steps - 1} batches after the first, no model; output {tuple(x.shape)}"}


class LoaderPerPass:
    """The baseline of ``measure_pipeline(per_pass=True)``: ``geodiv pretrain``'s loader as it was before one
    endless loader served the whole run: a DataLoader per pass, the next pass's started when a pass starts
    (``BatchSource(lookahead=True)`` of 2026-11-27). Same batches within each pass; kept here only to measure
    against."""

    def __init__(self, make_endless, position=(0, 0)) -> None:
        def make(pass_index: int, batches_done: int):
            loader = make_endless(pass_index, batches_done)
            loader.dataset.epochs = 1  # this pass only
            return loader

        self.make = make
        self.pass_index, self.in_pass = int(position[0]), int(position[1])
        self._it = self._next = None

    def position(self) -> tuple[int, int]:
        return self.pass_index, self.in_pass

    def __next__(self):
        while True:
            if self._it is None:
                ahead = self._next if self.in_pass == 0 else None
                self._it = ahead if ahead is not None else iter(self.make(self.pass_index, self.in_pass))
                self._next = iter(self.make(self.pass_index + 1, 0))
            batch = next(self._it, None)
            if batch is not None:
                self.in_pass += 1
                return batch
            self.pass_index, self.in_pass, self._it = self.pass_index + 1, 0, None

    def close(self) -> None:
        self._it = self._next = None


def measure_pipeline(root: str, out: str, *, batch: int = 256, workers: int = 6, epochs: int = 4,
                     preset: str = "tiny", size: int = 64, compile_model: bool = False,
                     per_pass: bool = False, profile: bool = False, transform_on: str = "auto") -> dict:
    """``geodiv pretrain`` end to end from shards (DataLoader workers, pass after pass): one row.

    ``per_pass``: a DataLoader per pass, as before one endless loader served the whole run (``LoaderPerPass``),
    the baseline measured in the same run. The rate is total samples / total time of the logged windows (every
    pass boundary included; model building, the first loader's start and the final checkpoint are outside them),
    and the median window for the steady rate.
    ``profile``: print the host-side (CPU) and GPU top operators of 20 steps (torch profiler).
    """
    import shutil
    import statistics

    from geodiv.data import read_manifest
    from geodiv.train import pretrain
    from geodiv.train.logs import read_log

    pretrain_module = sys.modules["geodiv.train.pretrain"]  # the package's name ``pretrain`` is the function

    n = int(read_manifest(root)["n_samples"])
    cfg = pipeline_config(root, out, batch=batch, workers=workers, epochs=epochs, preset=preset, size=size,
                          compile_model=compile_model, transform_on=transform_on)
    shutil.rmtree(out, ignore_errors=True)
    original_source = pretrain_module.BatchSource
    if per_pass:
        pretrain_module.BatchSource = LoaderPerPass
    try:
        t = time.perf_counter()
        if profile:
            from torch.profiler import ProfilerActivity, schedule
            from torch.profiler import profile as torch_profile

            with torch_profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA],
                               schedule=schedule(wait=10, warmup=5, active=20, repeat=1)) as prof:
                hook = _StepHook(prof)
                try:
                    pretrain(cfg)
                finally:
                    hook.remove()
            for key in ("self_cpu_time_total", "self_cuda_time_total"):
                print(prof.key_averages().table(sort_by=key, row_limit=15, max_name_column_width=60),
                      file=sys.stderr, flush=True)
        else:
            pretrain(cfg)
        wall = time.perf_counter() - t
    finally:
        pretrain_module.BatchSource = original_source
    logged = read_log(out)
    steps = [r["step"] for r in logged]
    rates = [r["samples_per_s"] for r in logged]
    done = [b - a for a, b in zip([0] + steps[:-1], steps)]
    seconds = sum(d * batch / r for d, r in zip(done, rates))
    overall = sum(done) * batch / seconds
    cuda = torch.cuda.is_available()
    on = pretrain_module.resolve_transform_on(transform_on, torch.device("cuda" if cuda else "cpu"))
    where = "the workers" if on == "workers" else "the GPU" if cuda else "the device"
    label = (f"gpu: {preset} {size} px pretrain from shards, batch {batch}, {workers} workers, transforms on {where}"
             + (", torch.compile" if compile_model else "") + (", a DataLoader per pass (before)" if per_pass else ""))
    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    return {"benchmark": label, "value": round(overall), "unit": "samples/s", "baseline": None, "ratio": None,
            "target": ">= 20,000 (tiny, 64 px, H100)" if preset == "tiny" else "-",
            "note": f"{dev}, torch {torch.__version__}; {n} SimEarth samples (13 bands stored, 10 read), "
                    f"{epochs} passes, {sum(done)} steps; median window {statistics.median(rates):.0f} samples/s; "
                    f"wall {wall:.1f} s with model building and the last checkpoint"}


class _StepHook:
    """Calls ``prof.step()`` after each optimiser step (wraps AdamW.step for the duration)."""

    def __init__(self, prof) -> None:
        self.original = torch.optim.AdamW.step
        original = self.original

        def step(opt, *args, **kwargs):
            out = original(opt, *args, **kwargs)
            prof.step()
            return out

        torch.optim.AdamW.step = step  # type: ignore[method-assign]

    def remove(self) -> None:
        torch.optim.AdamW.step = self.original  # type: ignore[method-assign]


RESULTS = os.path.join(os.path.dirname(__file__), "results", "gpu.json")


def recorded() -> tuple[str, list[dict]]:
    """The rows last measured on a lent GPU (``benchmarks/results/gpu.json``), for BENCHMARKS.md on machines
    without one, with a line saying where, when and how they were measured."""
    import json

    with open(RESULTS, encoding="utf-8") as fh:
        doc = json.load(fh)
    commands = []
    for line in doc["commands"]:  # "COMMAND  (what it measured)"
        command, _, what = line.partition("  (")
        commands.append(f"`{command}`" + (f" ({what}" if what else ""))
    header = (f"Recorded on {doc['device']}, {doc['date']} (no GPU here, so not rerun); commands: "
              + "; ".join(commands) + f". Profile: {doc['profile']}")
    return header, doc["rows"]


def run(quick: bool = False) -> list[dict]:
    if not torch.cuda.is_available():
        return []
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    rows = measure("base", batch=64 if quick else 256, steps=4 if quick else 12, warmup=2 if quick else 3,
                   compile_model=os.environ.get("GEODIV_BENCH_COMPILE") == "1")
    return rows


if __name__ == "__main__":
    import argparse
    import json

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--batch", type=int, help="batch size (default 256; 64 with --quick)")
    parser.add_argument("--compile", action="store_true", help="also the torch.compile configuration")
    parser.add_argument("--skip", default="", help="comma-separated configuration labels to leave out")
    parser.add_argument("--profile", action="store_true", help="print the top GPU kernels of the last one")
    parser.add_argument("--sdpa", choices=["flash", "cudnn", "efficient", "math"], help="pin the attention backend")
    parser.add_argument("--img-size", type=int, default=96, help="input size in pixels")
    parser.add_argument("--pipeline", metavar="DATASET", help="instead: pretrain tiny end to end from this dataset "
                        "folder (built there first if missing), one row")
    parser.add_argument("--workers", type=int, default=6, help="--pipeline: DataLoader workers")
    parser.add_argument("--epochs", type=int, default=4, help="--pipeline: passes over the data")
    parser.add_argument("--per-pass", action="store_true",
                        help="--pipeline: a DataLoader per pass, as before one loader served the whole run")
    parser.add_argument("--transform-on", choices=["auto", "workers", "device"], default="auto",
                        help="--pipeline: where samples are normalised, cropped and resized (data.transform_on)")
    parser.add_argument("--loader-only", action="store_true", help="--pipeline: the input pipeline alone, no model")
    parser.add_argument("--preset", help="model preset (default: base for the train-step rows, tiny with --pipeline)")
    args = parser.parse_args()
    if args.pipeline:
        build_pipeline_dataset(args.pipeline)
        if args.loader_only:
            rows = [measure_loader(args.pipeline, batch=args.batch or 256, workers=args.workers, epochs=args.epochs,
                                   transform_on="workers" if args.transform_on == "workers" else "device")]
        else:
            rows = [measure_pipeline(args.pipeline, args.pipeline.rstrip("/") + "-run", batch=args.batch or 256,
                                     workers=args.workers, epochs=args.epochs, preset=args.preset or "tiny",
                                     compile_model=args.compile, per_pass=args.per_pass, profile=args.profile,
                                     transform_on=args.transform_on)]
    elif args.batch is None and not args.skip and not args.profile and not args.sdpa and args.img_size == 96 \
            and args.preset in (None, "base"):
        os.environ.setdefault("GEODIV_BENCH_COMPILE", "1" if args.compile else "0")
        rows = run(quick=args.quick)
    else:
        rows = measure(args.preset or "base", batch=args.batch or (64 if args.quick else 256),
                       steps=4 if args.quick else 12, warmup=2 if args.quick else 3, compile_model=args.compile,
                       skip=tuple(filter(None, args.skip.split(","))), profile=args.profile, sdpa=args.sdpa,
                       img_size=args.img_size)
    for row in rows:
        print(json.dumps(row), flush=True)
