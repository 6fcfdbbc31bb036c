"""Run every benchmark and write BENCHMARKS.md: one table per benchmark file, with the machine and the command.

    python -m benchmarks.run_all            # full sizes (minutes)
    python -m benchmarks.run_all --quick    # small sizes, to check the benchmarks themselves run
    python -m benchmarks.run_all --only geo,data

Each ``benchmarks/bench_<name>.py`` exposes ``run(quick) -> list[row]``; a row holds the measured value, its unit,
the baseline measured in the same run (if any), their ratio and the target. Speed targets live here, never in
tests. The quick study's wall time by step is taken from a study folder's ``study.json`` when ``--study DIR`` is
given (``make study`` leaves one in ``study-out``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ["geo", "simearth", "data", "diversity", "models", "evaluate", "scale", "gpu"]


def machine() -> str:
    import numpy as np
    import torch

    from geodiv.machine import cpu_model

    cpu = cpu_model()
    mem = ""
    try:
        kb = int(next(ln for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal")).split()[1])
        mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        pass
    return (f"{cpu}, {os.cpu_count()} cores{mem}; Python {platform.python_version()}, numpy {np.__version__}, "
            f"torch {torch.__version__} ({torch.get_num_threads()} threads)")


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
    return str(v)


def table(rows: list[dict]) -> str:
    lines = ["| benchmark | value | unit | baseline | ratio | target | note |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append("| " + " | ".join([
            str(r.get("benchmark", "")), _fmt(r.get("value")), str(r.get("unit", "")), _fmt(r.get("baseline")),
            _fmt(r.get("ratio")), str(r.get("target", "")), str(r.get("note", "")).replace("|", "/"),
        ]) + " |")
    return "\n".join(lines)


def study_section(study_dir: Path) -> list[str]:
    """BENCHMARKS.md's section on a finished quick study: its wall time by step kind, from ``study.json``, with how
    many steps ran at once (``jobs``; absent in studies run before it was kept)."""
    from geodiv.report.html import timings_table

    meta = json.loads((study_dir / "study.json").read_text(encoding="utf-8"))
    jobs = f"--jobs {meta['jobs']}" if meta.get("jobs") else "jobs not recorded"
    return ["## quick study: wall time by step", "",
            f"From `{study_dir}/study.json` ({jobs}). Each step kind's own wall times are summed; under `--jobs N`"
            " steps overlap, so the kinds add up to more than the run's total.", "",
            *timings_table(meta.get("timings", {})), ""]


def _merge_sections(text: str, sections: dict[str, list[str]]) -> list[str]:
    """``text`` (a BENCHMARKS.md) with each ``## name`` section in ``sections`` replaced (or appended), others kept."""
    lines = text.rstrip("\n").split("\n")
    starts = [i for i, line in enumerate(lines) if line.startswith("## ")] + [len(lines)]
    out, done = lines[: starts[0]], set()
    for a, b in zip(starts, starts[1:]):
        name = lines[a][3:].strip()
        if name in sections:
            out += sections[name]
            done.add(name)
        else:
            out += lines[a:b]
    for name, sec in sections.items():
        if name not in done:
            out += sec
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", help="comma-separated benchmark names")
    ap.add_argument("--study", help="a finished quick-study folder whose wall time by step to record")
    ap.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"))
    args = ap.parse_args(argv)
    names = args.only.split(",") if args.only else BENCHMARKS
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, check=False).stdout.strip()
    except OSError:
        commit = "?"
    command = "python -m benchmarks.run_all" + (" --quick" if args.quick else "") + (
        f" --only {args.only}" if args.only else "") + (f" --study {args.study}" if args.study else "")
    stamp = f"(commit {commit}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})"
    parts = [
        "# geodiv benchmarks",
        "",
        f"- Machine: {machine()}",
        f"- Command: `{command}` {stamp}",
        "- Each ratio is against a baseline measured in the same run on the same machine; targets come from the issues.",
        "",
    ]
    sections: dict[str, list[str]] = {}
    for name in names:
        module = importlib.import_module(f"benchmarks.bench_{name}")
        t0 = time.perf_counter()
        print(f"running bench_{name} ...", file=sys.stderr, flush=True)
        rows = module.run(quick=args.quick)
        took = time.perf_counter() - t0
        doc = (module.__doc__ or "").strip().splitlines()
        sec = [f"## {name}", "", doc[0] if doc else "", ""]
        if args.only:
            sec += [f"Recorded by `{command}` {stamp}.", ""]
        if not rows and hasattr(module, "recorded"):  # needs hardware this machine lacks (a GPU)
            header, rows = module.recorded()
            sec += [header, ""]
        sec += [table(rows), "", f"_({took:.0f} s)_", ""]
        if hasattr(module, "details"):  # e.g. a profile of where the time goes
            sec += ["<details><summary>details</summary>", "", "```", module.details().strip(), "```", "",
                    "</details>", ""]
        sections[name] = sec
    if args.study:
        sections["quick study: wall time by step"] = study_section(Path(args.study))
    if args.only and Path(args.out).is_file():
        # --only refreshes its sections in place and keeps the others (and the header of the last full run)
        parts = _merge_sections(Path(args.out).read_text(), sections)
    else:
        parts = parts + [line for sec in sections.values() for line in sec]
    from geodiv.atomic import write_text

    write_text(args.out, "\n".join(parts))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
