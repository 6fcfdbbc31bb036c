"""The ``geodiv`` command line: parse arguments, call one stage entry function, print its result.

No logic lives here: every command calls the same public function that the study runner calls.
Imports are lazy so that ``geodiv where`` does not pay for torch.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from geodiv.errors import GeodivError, InputError, os_error_message


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=2, allow_nan=False, default=str))


# ----------------------------------------------------------------------------------------------- geo
def _cmd_where(a: argparse.Namespace) -> int:
    from geodiv import geo

    if a.biome_column and not a.biome_layer:
        raise GeodivError("--biome-column names a column of --biome-layer; give the layer too")
    layer = {"path": a.biome_layer, "column": a.biome_column} if a.biome_layer else None
    if a.csv:
        if not a.out:
            raise GeodivError("geodiv where --csv IN.csv needs --out OUT.csv")
        n = geo.annotate_csv(a.csv, a.out, biome_layer=layer)
        print(f"annotated {n} rows -> {a.out}")
        return 0
    if a.lat is None or a.lon is None:
        raise GeodivError("geodiv where needs LAT LON, or --csv IN.csv --out OUT.csv")
    info = geo.where(a.lat, a.lon, biome_layer=layer)
    if a.json:
        _print_json(info)
    else:
        for key in ("continent", "landcover", "climate", "biome"):
            print(f"{key:10s} {info[key] if info[key] is not None else '-'}")
    return 0


# ------------------------------------------------------------------------------------------ simearth
def _cmd_simearth_check(a: argparse.Namespace) -> int:
    from geodiv import simearth

    report = simearth.realism_check(seed=a.seed)
    if a.json:
        _print_json(report)
    else:
        print(simearth.format_realism_check(report))
    return 0


def _cmd_simearth_sample(a: argparse.Namespace) -> int:
    from geodiv import simearth

    out = Path(a.out)
    if a.lat is not None or a.lon is not None:
        if a.lat is None or a.lon is None:
            raise GeodivError("give both --lat and --lon (or --region and --n for a preview grid)")
        simearth.write_patch_npz(a.lat, a.lon, seed=a.seed, out=out, size=a.size)
    else:
        simearth.write_preview(region=a.region or "global", n=a.n, seed=a.seed, out=out, size=a.size)
    print(f"wrote {out}")
    return 0


# ---------------------------------------------------------------------------------------------- data
def _cmd_build(a: argparse.Namespace) -> int:
    from geodiv import data, diversity
    from geodiv.config import parse_override

    diversity.register_scorers()  # the scorers of the ``diversity`` strategy
    overrides = dict(parse_override(s) for s in a.set or [])
    manifest = data.build_dataset(a.config, a.out, only=a.only, overrides=overrides, workers=a.workers,
                                  scheduler=a.scheduler)
    for name, m in manifest.get("datasets", {}).items():
        print(f"  {name}: {m['n_samples']} samples in {len(m['shards'])} shards")
    print(f"built {manifest['n_samples']} samples in {len(manifest['shards'])} shards -> {a.out}")
    return 0


def _cmd_inspect(a: argparse.Namespace) -> int:
    from geodiv import data

    summary = data.inspect_dataset(a.dir, out=a.out)
    if a.json:
        _print_json(summary)
    else:
        print(data.format_inspection(summary))
    return 0


def _cmd_stac_build(a: argparse.Namespace) -> int:
    from geodiv.data.sources import stac

    manifest = stac.stac_build(a.config, out=a.out, workers=a.workers, scheduler=a.scheduler)
    print(f"built {manifest['n_samples']} samples from STAC -> {manifest['root']}")
    return 0


# ----------------------------------------------------------------------------------------- diversity
def _cmd_landscape(a: argparse.Namespace) -> int:
    from geodiv import diversity

    summary = diversity.landscape_summary(a.region, n=a.n, seed=a.seed, window=a.window)
    if a.json:
        _print_json(summary)
    else:
        q = summary["quantiles"]
        print(
            f"{summary['region']}: landscape entropy {summary['landscape_entropy']:.3f} +- {summary['std']:.3f} bits"
            f" (median {q['q50']:.3f}; n={summary['n']}, window {summary['window']} cells = {summary['window_km']} km)"
        )
    return 0


def _cmd_diversity(a: argparse.Namespace) -> int:
    from geodiv import diversity

    result = diversity.dataset_diversity(a.dir)
    if a.json:
        _print_json(result)
    else:
        print(diversity.format_diversity(result))
    return 0


# -------------------------------------------------------------------------------------------- models
def _cmd_features(a: argparse.Namespace) -> int:
    from geodiv import models

    shape = models.features_from_file(
        a.checkpoint, a.input, a.out, pool=a.pool, batch_size=a.batch_size, device=a.device
    )
    print(f"wrote features {tuple(shape)} -> {a.out}")
    return 0


# --------------------------------------------------------------------------------------------- train
def _cmd_pretrain(a: argparse.Namespace) -> int:
    from geodiv import train
    from geodiv.config import parse_override

    overrides = dict(parse_override(s) for s in a.set or [])
    ckpt = train.pretrain_from_file(a.config, resume=a.resume, overrides=overrides)
    if ckpt is not None and train.is_main_process():  # under torchrun, one line rather than one per process
        print(f"final checkpoint: {ckpt}")
    return 0


# ------------------------------------------------------------------------------------------ evaluate
def _cmd_evaluate(a: argparse.Namespace) -> int:
    from geodiv import evaluate
    from geodiv.config import parse_override

    if a.baseline is not None and a.checkpoint is not None:
        raise InputError("give either --checkpoint or --baseline, not both")
    records = evaluate.evaluate(
        checkpoint=a.baseline if a.baseline is not None else a.checkpoint,
        task=a.task,
        protocol=a.protocol,
        by=a.by,
        out=a.out,
        config=a.config,
        seed=a.seed,
        task_options=dict(parse_override(s) for s in a.task_option or []),
    )
    print(evaluate.format_records(records))
    print(f"wrote {len(records)} records -> {a.out} (and {Path(a.out).with_suffix('.csv')})")
    return 0


# --------------------------------------------------------------------------------------- study/report
def _cmd_study(a: argparse.Namespace) -> int:
    from geodiv import report, study

    result = study.run_study(config=a.config, profile=a.profile, out=a.out, dry_run=a.dry_run, jobs=a.jobs,
                             workers=a.workers, scheduler=a.scheduler)
    if a.dry_run:
        print(result)
        return 0
    index = report.write_report(a.out)
    print(report.format_summary(a.out))
    print(f"report: {index}")
    return 0


def _cmd_report(a: argparse.Namespace) -> int:
    from geodiv import report

    path = report.write_report(a.dir)
    print(f"report: {path}")
    return 0


# -------------------------------------------------------------------------------------------- parser
def _parallel_args(s: argparse.ArgumentParser) -> None:
    s.add_argument("--workers", type=int, default=1, help="processes that make shards in parallel (default 1)")
    s.add_argument("--scheduler", help="build on Dask: 'local' (a local cluster of --workers processes) or "
                                       "tcp://HOST:8786 (an existing cluster; output on a shared file system)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="geodiv", description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = p.add_subparsers(dest="command", required=True)
    _add_world_commands(sub)
    _add_data_commands(sub)
    _add_model_commands(sub)
    _add_study_commands(sub)
    return p


def _add_world_commands(sub: argparse._SubParsersAction) -> None:
    """``where`` and ``simearth``: the world, real and simulated."""
    s = sub.add_parser("where", help="continent, land cover, climate and biome of a location")
    s.add_argument("lat", nargs="?", type=float)
    s.add_argument("lon", nargs="?", type=float)
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.add_argument("--csv", help="annotate a table with lat/lon columns")
    s.add_argument("--out", help="output CSV for --csv")
    s.add_argument("--biome-layer", help="user biome layer (vector file with a biome column, or a raster)")
    s.add_argument("--biome-column", help="biome column of a vector --biome-layer (default: BIOME_NAME or biome)")
    s.set_defaults(func=_cmd_where)

    s = sub.add_parser("simearth", help="the embedded simulated world")
    ssub = s.add_subparsers(dest="simearth_command", required=True)
    c = ssub.add_parser("check", help="SimEarth statistics next to real Sentinel-2 statistics")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=_cmd_simearth_check)
    c = ssub.add_parser("sample", help="render a preview grid (PNG) or write one patch (NPZ)")
    c.add_argument("--region", help="continent name, 'global', bbox:minlon,minlat,maxlon,maxlat, or polygon file")
    c.add_argument("--n", type=int, default=16)
    c.add_argument("--lat", type=float)
    c.add_argument("--lon", type=float)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--size", type=int, default=96)
    c.add_argument("--out", required=True)
    c.set_defaults(func=_cmd_simearth_sample)


def _add_data_commands(sub: argparse._SubParsersAction) -> None:
    """``build``, ``inspect``, ``data``, ``landscape``, ``diversity``: datasets and their diversity."""
    s = sub.add_parser("build", help="build a pretraining dataset (WebDataset shards + manifest)")
    s.add_argument("config", help="DATASET.yaml (one dataset, or a suite with datasets: {name: ...})")
    s.add_argument("--out", required=True, help="output folder (a suite builds into OUT/NAME)")
    s.add_argument("--only", help="build only this dataset of a suite")
    s.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a field of every dataset (n=1000)")
    _wait_lock_flag(s)
    _parallel_args(s)
    s.set_defaults(func=_cmd_build)

    s = sub.add_parser("inspect", help="counts, map and example grid of a dataset")
    s.add_argument("dir")
    s.add_argument("--out", help="folder for the PNGs (default: DIR/inspect)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_cmd_inspect)

    s = sub.add_parser("data", help="data utilities")
    dsub = s.add_subparsers(dest="data_command", required=True)
    c = dsub.add_parser("stac-build", help="build shards from a STAC API or static catalog")
    c.add_argument("config")
    c.add_argument("--out", help="output folder (overrides the config's)")
    _parallel_args(c)
    c.set_defaults(func=_cmd_stac_build)

    s = sub.add_parser("landscape", help="landscape entropy of locations sampled in a region")
    s.add_argument("--region", required=True)
    s.add_argument("--n", type=int, default=1000)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--window", type=int, default=7, help="window size in 0.05-degree cells (odd)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_cmd_landscape)

    s = sub.add_parser("diversity", help="diversity measures of a built dataset")
    s.add_argument("dir")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_cmd_diversity)


def _add_model_commands(sub: argparse._SubParsersAction) -> None:
    """``features``, ``pretrain``, ``evaluate``: models."""
    s = sub.add_parser("features", help="pooled encoder features of normalised inputs")
    s.add_argument("--checkpoint", required=True)
    s.add_argument("--input", required=True, help="N x C x H x W float32 .npy")
    s.add_argument("--out", required=True)
    s.add_argument("--pool", choices=["global", "cls"], default="global")
    s.add_argument("--batch-size", type=int, default=64)
    s.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    s.set_defaults(func=_cmd_features)

    s = sub.add_parser("pretrain", help="pretrain SatMAE (run under torchrun for several processes)")
    s.add_argument("config")
    s.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in the output folder")
    s.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field")
    _wait_lock_flag(s)
    s.set_defaults(func=_cmd_pretrain)

    s = sub.add_parser("evaluate", help="evaluate a checkpoint on a downstream task")
    s.add_argument("--checkpoint", help="checkpoint path, or 'random' for zero pretraining")
    s.add_argument("--baseline", choices=["spectral"],
                   help="evaluate a baseline instead of a checkpoint: per-band statistics of the inputs")
    s.add_argument("--task", required=True, help="SimEarth task name or a task folder/manifest")
    s.add_argument("--task-option", action="append", metavar="KEY=VALUE",
                   help="an option of the task's reader (value parsed as YAML), e.g. imagery=shards/ or "
                        "band_order=eurosat; repeat for several (docs/tasks.md lists each reader's options)")
    s.add_argument("--protocol", choices=["knn", "linear", "finetune"], required=True)
    s.add_argument("--by", choices=["continent"], default=None)
    s.add_argument("--out", required=True)
    s.add_argument("--config", help="evaluation config YAML")
    s.add_argument("--seed", type=int, default=0)
    _wait_lock_flag(s)
    s.set_defaults(func=_cmd_evaluate)


def _add_study_commands(sub: argparse._SubParsersAction) -> None:
    """``study`` and ``report``."""
    s = sub.add_parser("study", help="run the whole study and write the report")
    s.add_argument("config", nargs="?")
    # The shipped profiles are the YAML files in geodiv/study/profiles (listed without importing the study stage).
    profiles = sorted(p.stem for p in (Path(__file__).parent / "study" / "profiles").glob("*.yaml"))
    s.add_argument("--profile", choices=profiles, help="a shipped study profile (docs/study.md, 'Profiles')")
    s.add_argument("--out", required=True)
    s.add_argument("--dry-run", action="store_true", help="print the plan with estimated cost")
    _wait_lock_flag(s)
    s.add_argument("--jobs", type=int, default=1,
                   help="run up to N independent steps at once (one GPU each where there are GPUs)")
    _parallel_args(s)
    s.set_defaults(func=_cmd_study)

    s = sub.add_parser("report", help="(re)write the report of a study folder")
    s.add_argument("dir")
    s.set_defaults(func=_cmd_report)


def _wait_lock_flag(s: argparse.ArgumentParser) -> None:
    s.add_argument("--wait-lock", action="store_true",
                   help="if another run holds the output folder, wait for it instead of stopping")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # accepted anywhere on the line
    args = build_parser().parse_args([a for a in argv if a != "--debug"])
    args.debug = debug
    if getattr(args, "wait_lock", False):
        from geodiv.atomic import WAIT_ENV

        os.environ[WAIT_ENV] = "1"  # read by every folder lock of this run (and torchrun's processes)
    try:
        return int(args.func(args) or 0)
    except GeodivError as err:
        if args.debug:
            raise
        print(f"geodiv {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # permissions, read-only or full disks, paths that are files or folders
        if args.debug:
            raise
        print(f"geodiv {args.command}: error: {os_error_message(err)} (--debug shows the traceback)",
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
