"""Do geodiv's numbers depend on the CPU's kernel path? Fingerprints of SimEarth patches and of a short MAE training.

Prints the PyTorch kernel path (geodiv.machine), a sha256 prefix of 36 SimEarth patches (12 land locations x 3 seeds,
64 px: numpy's kernels), and the first and last loss and a weight fingerprint of 30 AdamW steps of ``tiny`` (one
channel group at patch 4, as in the standard-cpu profile) on fixed random inputs, one thread (PyTorch's kernels).
Run it twice with different kernel paths and compare (docs/training.md, "Determinism and resuming"):

    PYTHONPATH=src python scripts/cpu_kernel_paths.py
    ATEN_CPU_CAPABILITY=avx2 PYTHONPATH=src python scripts/cpu_kernel_paths.py
    NPY_DISABLE_CPU_FEATURES="X86_V4 AVX512_ICL AVX512_SPR" PYTHONPATH=src python scripts/cpu_kernel_paths.py
"""

from __future__ import annotations

import hashlib

import torch

from geodiv.machine import describe_machine
from geodiv.models.satmae import build_mae
from geodiv.simearth.world import simulate_patch

LOCATIONS = [(48.8, 2.3), (40.7, -74.0), (-23.5, -46.6), (35.7, 139.7), (-33.9, 151.2), (6.5, 3.4), (28.6, 77.2),
             (55.7, 37.6), (-1.3, 36.8), (19.4, -99.1), (30.0, 31.2), (-12.0, -77.0)]


def simearth_fingerprint() -> str:
    h = hashlib.sha256()
    for seed in range(3):
        for lat, lon in LOCATIONS:
            patch = simulate_patch(lat, lon, seed, size=64)
            h.update(patch.image.tobytes())
            h.update(patch.classes.tobytes())
    return h.hexdigest()[:16]


def training_fingerprint(steps: int = 30) -> tuple[float, float, str]:
    torch.manual_seed(0)
    model = build_mae("tiny", img_size=64, patch_size=4, in_chans=10, channel_groups=[list(range(10))])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(8, 10, 64, 64, generator=torch.Generator().manual_seed(0))
    losses = []
    for k in range(steps):
        loss = model(x, mask_ratio=0.75, generator=torch.Generator().manual_seed(k))[0]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    weights = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in model.parameters()))
    return losses[0], losses[-1], weights.hexdigest()[:16]


def main() -> None:
    torch.set_num_threads(1)
    print("PyTorch kernel path:", describe_machine()["torch_cpu_capability"])
    print("SimEarth patches sha256:", simearth_fingerprint())
    first, last, weights = training_fingerprint()
    print(f"MAE loss, step 1: {first!r}; step 30: {last!r}; weights sha256: {weights}")


if __name__ == "__main__":
    main()
