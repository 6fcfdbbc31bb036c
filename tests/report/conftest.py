"""A synthetic finished study folder (results.csv, diversity.csv, study.json) with known numbers."""

import json

import numpy as np
import pandas as pd
import pytest

DATASETS = {"one-hot-europe": "Europe", "one-hot-africa": "Africa", "one-hot-asia": "Asia", "global": "global"}
CONTINENTS = ["Africa", "Asia", "Europe"]


@pytest.fixture
def study_dir(tmp_path):
    rng = np.random.default_rng(0)
    skill = {"one-hot-europe": 0.8, "one-hot-asia": 0.7, "global": 0.6, "one-hot-africa": 0.5, "zero-pretraining": 0.3}
    rows = []
    for dataset, base in skill.items():
        for seed in (0, 1):
            for task, metric in (("landcover", "accuracy"), ("treecover", "r2")):
                for protocol in ("knn", "linear"):
                    value = base + 0.01 * seed + (0.05 if protocol == "linear" else 0.0)
                    rows.append(dict(dataset=dataset, seed=seed, task=task, protocol=protocol, metric=metric,
                                     value=value, ci_low=value - 0.05, ci_high=value + 0.05, region="global",
                                     train_region="global", n=100))
                    for c in CONTINENTS:
                        v = value + rng.normal(0, 0.02)
                        rows.append(dict(dataset=dataset, seed=seed, task=task, protocol=protocol, metric=metric,
                                         value=v, ci_low=v - 0.1, ci_high=v + 0.1, region=c, train_region="global", n=30))
    pd.DataFrame(rows).to_csv(tmp_path / "results.csv", index=False)
    div = pd.DataFrame({
        "dataset": list(DATASETS),
        "continent_entropy": [0.0, 0.0, 0.0, 2.5],
        "landscape_entropy": [1.0, 0.4, 0.7, 0.6],
        "spectral_entropy": [5.9, 5.1, 5.6, 5.5],
        "n_samples": [100] * 4,
    })
    div.to_csv(tmp_path / "diversity.csv", index=False)
    meta = {
        "name": "synthetic",
        "tasks": {"landcover": {"type": "classification", "metric": "accuracy"},
                  "treecover": {"type": "regression", "metric": "r2"}},
        "protocols": ["knn", "linear"],
        "main_protocol": "linear",
        "seeds": [0, 1],
        "datasets": {d: {"region": r} for d, r in DATASETS.items()},
        "sample_points": {d: {"lat": [10.0, 20.0], "lon": [5.0, 15.0], "continent": ["Africa", "Africa"]}
                          for d in DATASETS},
        "timings": {"dataset": 1.0, "pretrain": 2.0},
    }
    (tmp_path / "study.json").write_text(json.dumps(meta))
    return tmp_path
