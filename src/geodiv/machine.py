"""What kind of machine made a run's numbers: CPU model and the instruction-set path PyTorch runs on, cores,
library versions, GPUs.

CPU runs repeat to the bit only on the same kind of CPU (docs/training.md, "Determinism and resuming"): PyTorch,
numpy and OpenBLAS pick their kernels by the CPU's instruction set (AVX2, AVX-512, ...), and those kernels round
differently, so a long pretraining on another kind of CPU ends with other weights, as another seed would. A study
records the machine (study.json, the report's summary) so that whoever compares two runs knows whether equal numbers
were to be expected.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any


def cpu_model(cpuinfo: str | os.PathLike[str] = "/proc/cpuinfo") -> str:
    """The CPU's model name (Linux: /proc/cpuinfo's first "model name"); the platform's processor string elsewhere."""
    try:
        for line in Path(cpuinfo).read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def describe_machine() -> dict[str, Any]:
    """A JSON-ready description of this machine, as far as it decides a run's numbers."""
    import numpy as np
    import torch

    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    return {
        "cpu": cpu_model(),
        "arch": platform.machine(),
        "cores": os.cpu_count(),
        # The kernel path ATen dispatches to (e.g. AVX2, AVX512; ATEN_CPU_CAPABILITY lowers it).
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "gpus": gpus,
    }


def machine_sentence(machine: dict[str, Any]) -> str:
    """One sentence for a report: the machine, and what that means for comparing numbers."""
    where = f"{machine.get('cpu', 'unknown CPU')} ({machine.get('arch', '?')}, {machine.get('cores', '?')} cores"
    where += f"; PyTorch {machine.get('torch', '?')} on its {machine.get('torch_cpu_capability', '?')} kernels"
    where += f", numpy {machine.get('numpy', '?')})"
    if machine.get("gpus"):
        where += f" with {len(machine['gpus'])} GPU(s): {', '.join(sorted(set(machine['gpus'])))}"
    return (f"Machine: {where}. CPU runs repeat to the bit only on the same kind of CPU; another instruction set "
            "changes the numbers as another seed would (docs/training.md, 'Determinism and resuming').")
