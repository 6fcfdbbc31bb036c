"""What tells the classes of an arrangement group apart, and why does kNN rank a pretrained encoder low?

Two diagnostics of frozen features on an existing ``scene`` task folder, for issue 12 (docs/study.md, "Inside the
arrangement groups" and "kNN below zero pretraining"). Encoders: a checkpoint, zero pretraining and the spectral
baseline, built as the study builds them (the quick profile's evaluation config), features from the study's own
extraction and feature cache.

1. **Within-group probes.** For each arrangement group (``geodiv.simearth.ARRANGEMENT_GROUPS``: classes drawn from
   the same materials with the same area-share distribution), a linear probe (the study's, C chosen on val) is
   trained and tested on that group's classes only, so its accuracy says how well the features tell the group's
   members apart, against chance ``1 / k``. Besides the three encoders it probes parts of the spectral baseline
   (the per-band means alone: the matched area shares; everything but the means: the spread and percentiles of
   the pixel values) and the location alone (latitude and longitude as a unit vector, plus |sin latitude|: where
   each class occurs, ``structures.prevalence``). Accuracy with a 95 % bootstrap interval (``compute_metrics``, 1,000 resamples). The
   same probes also predict the group of every test patch (a class outside every group is its own group): how
   well the features tell the groups apart, and on all classes (the whole task). Two more feature sets ask whether
   an encoder carries what the band statistics lack: each encoder's features concatenated with the spectral
   baseline's (the probe standardises every feature), the pretrained one and, as the control for the extra
   dimensions alone, zero pretraining's. On the whole task, paired bootstrap intervals (same test patches) of the
   accuracy differences that matter: encoder + statistics against zero pretraining + statistics and against the
   statistics alone, the encoder alone against each baseline.
2. **kNN similarity** (``--knn``). The study's kNN (cosine, k 20, T 0.07, train + val as memory) on the raw
   features, on features centred on the memory's mean, and on standardised features; with the geometry of each
   feature set: mean cosine between random pairs, the top principal component's share of the variance and the
   participation ratio (sum of eigenvalues squared over sum of squared eigenvalues: how many directions carry
   the variance).

It never looks at which pretraining region wins (one checkpoint at a time).

    PYTHONPATH=src python scripts/scene_features_experiment.py --ckpt RUN/checkpoint-29.pth --task TASK_FOLDER --knn
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

SPLITS = ("train", "val", "test")


def location_features(table) -> np.ndarray:
    """(N, 4): the location as a unit vector on the sphere, and |sin latitude| (the climate's main axis)."""
    lat, lon = np.radians(table.lat), np.radians(table.lon)
    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat), np.abs(np.sin(lat))], 1)


def subset_probe(feats: dict[str, np.ndarray], labels: dict[str, np.ndarray], members: list[int],
                 seed: int) -> tuple[list[float], np.ndarray]:
    """Test accuracy [95 % CI] of the study's linear probe trained and scored on the rows whose label is in ``members``
    (relabelled 0..k-1): one group's classes, or every coarse class; and whether each test row was predicted right
    (for paired comparisons)."""
    from geodiv.evaluate.linear import fit_linear_probe
    from geodiv.evaluate.metrics import compute_metrics

    rows = {s: np.isin(labels[s], members) for s in SPLITS}
    index = {c: i for i, c in enumerate(members)}
    y = {s: np.array([index[v] for v in labels[s][rows[s]]], dtype=np.int64) for s in SPLITS}
    probe = fit_linear_probe(feats["train"][rows["train"]], y["train"], feats["val"][rows["val"]], y["val"],
                             task_type="classification", n_classes=len(members), grid=[0.01, 0.1, 1.0, 10.0],
                             seed=seed, threads=None)
    predicted = probe.scores(feats["test"][rows["test"]]).argmax(1)
    accuracy = compute_metrics("classification", y["test"], predicted, n_classes=len(members), metrics=["accuracy"],
                               seed=seed)["accuracy"]
    return [round(v, 3) for v in (accuracy.value, accuracy.ci_low, accuracy.ci_high)], predicted == y["test"]


def paired_difference(a: np.ndarray, b: np.ndarray, seed: int) -> list[float]:
    """Accuracy of ``a`` minus that of ``b`` (per-row correctness on the same test rows) with a paired percentile
    bootstrap 95 % interval (1,000 resamples of the test rows): stricter than comparing two independent intervals."""
    from scipy.stats import bootstrap

    from geodiv.diversity.correlate import bootstrap_seed

    diff = a.astype(np.float64) - b.astype(np.float64)
    ci = bootstrap((diff,), np.mean, n_resamples=1000, method="percentile", **bootstrap_seed(seed)).confidence_interval
    return [round(float(diff.mean()), 3), round(float(ci.low), 3), round(float(ci.high), 3)]


def group_probes(probes: dict[str, dict[str, np.ndarray]], labels: dict[str, np.ndarray], classes: list[str],
                 seed: int) -> dict[str, dict]:
    """Every feature set probed inside each arrangement group (its classes only), and between the groups: the same
    probe on the group of each class (a class outside every group is its own group), so the accuracy says how well
    the features tell the groups and the other classes apart. Each row is printed as it is done."""
    from geodiv.simearth import ARRANGEMENT_GROUPS

    out: dict[str, dict] = {"within_group": {}}
    for group, members in dict(ARRANGEMENT_GROUPS).items():
        ids = [classes.index(m) for m in members]
        row = {"classes": len(ids), "chance": round(1 / len(ids), 3),
               "n_test": int(np.isin(labels["test"], ids).sum())}
        for name, f in probes.items():
            row[name] = subset_probe(f, labels, ids, seed)[0]
        out["within_group"][group] = row
        print(group, json.dumps(row), flush=True)
    group_of = {classes.index(m): g for g, members in dict(ARRANGEMENT_GROUPS).items() for m in members}
    coarse_names = sorted({group_of.get(i, classes[i]) for i in range(len(classes))})
    coarse = {s: np.array([coarse_names.index(group_of.get(int(v), classes[int(v)])) for v in labels[s]])
              for s in SPLITS}
    row = {"classes": len(coarse_names), "chance": round(1 / len(coarse_names), 3), "n_test": len(coarse["test"])}
    for name, f in probes.items():
        row[name] = subset_probe(f, coarse, list(range(len(coarse_names))), seed)[0]
    out["between_groups"] = row
    print("between groups", json.dumps(row), flush=True)
    return out


def feature_geometry(memory: np.ndarray, seed: int) -> dict[str, float]:
    unit = memory / np.linalg.norm(memory, axis=1, keepdims=True)
    i, j = np.random.default_rng(seed).integers(0, len(unit), (2, 4000))
    ev = np.linalg.svd(memory - memory.mean(0), compute_uv=False) ** 2
    return {"mean_cosine": round(float((unit[i] * unit[j]).sum(1).mean()), 3),
            "top_pc_share": round(float(ev[0] / ev.sum()), 3),
            "participation_ratio": round(float(ev.sum() ** 2 / (ev**2).sum()), 2)}


def knn_variants(feats: dict[str, np.ndarray], labels: dict[str, np.ndarray], n_classes: int, k: int,
                 temperature: float) -> dict[str, float]:
    from geodiv.evaluate.knn import knn_predict

    memory = np.concatenate([feats["train"], feats["val"]])
    targets = np.concatenate([labels["train"], labels["val"]])
    mean, std = memory.mean(0), memory.std(0) + 1e-6
    out = {}
    for name, shift, scale in (("raw", 0.0, 1.0), ("centred", mean, 1.0), ("standardised", mean, std)):
        scores = knn_predict((memory - shift) / scale, targets, (feats["test"] - shift) / scale, ks=[k],
                             temperature=temperature, task_type="classification", n_classes=n_classes,
                             device="cpu")[k]
        out[f"knn_{name}"] = round(float((scores.argmax(1) == labels["test"]).mean()), 4)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", required=True, type=Path)
    ap.add_argument("--task", required=True, type=Path, help="a scene task folder (task.json, train/val/test)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--knn", action="store_true", help="also the kNN similarity diagnostics")
    ap.add_argument("--whole-task-only", action="store_true",
                    help="only the whole-task probes and their paired comparisons (no per-group probes)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    from geodiv.evaluate.baseline import spectral_encoder
    from geodiv.evaluate.config import EvalConfig
    from geodiv.evaluate.encoders import load_encoder
    from geodiv.evaluate.feature_cache import FeatureStore
    from geodiv.evaluate.inputs import EvalTransform, plan_bands
    from geodiv.evaluate.tasks.registry import load_task
    from geodiv.study.config import load_study_config
    from geodiv.study.plan import evaluation_config

    ec = EvalConfig.model_validate(evaluation_config(load_study_config(profile="quick")))
    task = load_task(a.task)
    random_init = {"random_preset": ec.random_init.preset, "random_overrides": ec.random_init.overrides,
                   "random_bands": ec.random_init.bands}
    encoders = {"pretrained": load_encoder(str(a.ckpt)),
                "zero_pretraining": load_encoder("random", seed=a.seed, **random_init),
                "spectral_baseline": spectral_encoder(scheme=ec.features.normalize, **random_init)}
    store = FeatureStore(None)
    tables = {s: store.table(task, s) for s in SPLITS}
    labels = {s: tables[s].labels for s in SPLITS}
    feats: dict[str, dict[str, np.ndarray]] = {}
    for name, enc in encoders.items():
        plan = plan_bands(task.bands, enc.bands)
        tf = EvalTransform(ec.features.normalize, enc.img_size, ec.features.crop_pct)
        feats[name] = {s: store.features(enc, task, s, plan, tf).astype(np.float64) for s in SPLITS}
    spectral = feats["spectral_baseline"]
    per_band = 2 + 5  # mean, std and five percentiles per band (geodiv.evaluate.baseline.STATISTICS)
    probes = {**feats,
              "spectral_means_only": {s: v[:, 0::per_band] for s, v in spectral.items()},
              "spectral_without_means": {s: np.delete(v, np.s_[0::per_band], axis=1) for s, v in spectral.items()},
              "location_only": {s: location_features(tables[s]) for s in SPLITS},
              **{f"{name}_and_spectral": {s: np.concatenate([feats[name][s], spectral[s]], 1) for s in SPLITS}
                 for name in ("pretrained", "zero_pretraining")}}

    classes = list(task.classes)
    results: dict[str, dict] = {"within_group": {}}
    if not a.whole_task_only:
        results.update(group_probes(probes, labels, classes, a.seed))
    row = {"classes": len(classes), "chance": round(1 / len(classes), 3), "n_test": len(labels["test"])}
    correct: dict[str, np.ndarray] = {}
    for name, f in probes.items():
        row[name], correct[name] = subset_probe(f, labels, list(range(len(classes))), a.seed)
    # Paired differences on the same test patches: does the pretrained encoder add to the band statistics beyond
    # what a random encoder's extra dimensions add, and does it beat them alone?
    for first, second in (("pretrained_and_spectral", "zero_pretraining_and_spectral"),
                          ("pretrained_and_spectral", "spectral_baseline"),
                          ("pretrained", "spectral_baseline"), ("pretrained", "zero_pretraining")):
        row[f"{first} - {second}"] = paired_difference(correct[first], correct[second], a.seed)
    results["whole_task"] = row
    print("whole task", json.dumps(row), flush=True)
    if a.knn:
        results["knn"] = {}
        for name, f in feats.items():
            row = {**feature_geometry(np.concatenate([f["train"], f["val"]]), a.seed),
                   **knn_variants(f, labels, len(classes), ec.knn.k[0], ec.knn.temperature)}
            results["knn"][name] = row
            print(name, json.dumps(row), flush=True)
    print(json.dumps({"args": {k: str(v) for k, v in vars(a).items()}, "results": results}, indent=1))


if __name__ == "__main__":
    main()
