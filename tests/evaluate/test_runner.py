import csv
import json

import numpy as np
import pytest

from geodiv.errors import InputError
from geodiv.evaluate import RECORD_FIELDS, evaluate

from .synthetic import SyntheticTask


def test_linear_and_knn_records_with_regions(tmp_path, tiny_config):
    out = tmp_path / "res.json"
    # The test split only holds Africa and Europe samples; Asia has training data but no test samples.
    task = SyntheticTask(test_continents=("Africa", "Europe"))
    records = evaluate("random", task, ["knn", "linear"], by="continent", out=out, config=tiny_config)
    assert set(RECORD_FIELDS) <= set(records[0])
    glob = [r for r in records if r["region"] == "global" and r["train_region"] == "global"]
    assert {(r["protocol"], r["metric"]) for r in glob} == {
        ("knn", "accuracy"), ("knn", "macro_f1"), ("linear", "accuracy"), ("linear", "macro_f1")}
    for r in glob:
        assert r["value"] > 0.8 and r["ci_low"] <= r["value"] <= r["ci_high"] and r["n"] == 15
    asia = [r for r in records if r["region"] == "Asia"]
    assert asia and all(r["n"] == 0 and r["value"] is None for r in asia)
    # matrix: a head per training continent, each scored on every test region
    pairs = {(r["train_region"], r["region"]) for r in records if r["protocol"] == "linear"}
    assert ("Asia", "Europe") in pairs and ("Europe", "Africa") in pairs
    assert json.loads(out.read_text()) == records
    rows = list(csv.DictReader(out.with_suffix(".csv").open()))
    assert len(rows) == len(records) and rows[0]["task"] == "synthetic"


@pytest.mark.parametrize("type_", ["regression", "multilabel", "segmentation"])
def test_other_task_types(type_, tiny_config):
    records = evaluate("random", SyntheticTask(type_, n=(20, 6, 8)), "linear", config=tiny_config)
    headline = {"regression": "r2", "multilabel": "map", "segmentation": "miou"}[type_]
    value = next(r["value"] for r in records if r["metric"] == headline)
    assert value > 0.5


def test_class_groups_add_the_group_metrics(tiny_config, monkeypatch):
    # classes "a" and "b" form a group ("c" is alone): every head's records gain the two group metrics, computed on
    # the head's own predictions
    from geodiv.evaluate import runner

    task = SyntheticTask()
    plain = evaluate("random", task, "linear", config=tiny_config)
    assert {r["metric"] for r in plain} == {"accuracy", "macro_f1"}
    task.class_groups = {"ab": ["a", "b"]}
    seen = []
    real = runner.compute_metrics
    monkeypatch.setattr(runner, "compute_metrics", lambda t, y, p, **kw: seen.append((y, p)) or real(t, y, p, **kw))
    records = evaluate("random", task, "linear", config=tiny_config)
    glob = {r["metric"]: r for r in records if r["region"] == "global" and r["train_region"] == "global"}
    assert set(glob) == {"accuracy", "macro_f1", "group_accuracy", "within_group_accuracy"}
    y, p = seen[0]  # the global head on the global test set comes first
    group = np.array([0, 0, 1])
    right = group[y] == group[p]
    assert glob["group_accuracy"]["value"] == pytest.approx(right.mean())
    inside = right & (y < 2)
    assert glob["within_group_accuracy"]["value"] == pytest.approx((p[inside] == y[inside]).mean())
    assert glob["accuracy"]["value"] == next(r["value"] for r in plain if r["metric"] == "accuracy"
                                             and r["region"] == "global" and r["train_region"] == "global")


def test_finetune_protocol_runs(tiny_config):
    tiny_config["finetune"] = {"epochs": 1, "warmup_epochs": 0, "batch_size": 8}
    records = evaluate("random", SyntheticTask(n=(16, 4, 6)), "finetune", config=tiny_config)
    assert {r["metric"] for r in records} == {"accuracy", "macro_f1"}
    assert records[0]["params"]["epochs"] == 1


def test_bad_input_is_explained(tiny_config):
    with pytest.raises(InputError, match="lacks band"):
        evaluate("random", SyntheticTask(bands=("B2", "B3", "B4")), "knn", config=tiny_config)
    with pytest.raises(InputError, match="no sample locations"):
        evaluate("random", SyntheticTask(located=False, name="noloc"), "knn", by="continent", config=tiny_config)
    with pytest.raises(InputError, match="unknown protocol"):
        evaluate("random", SyntheticTask(), "svm", config=tiny_config)


def test_mean_filled_bands_are_reported(tiny_config):
    tiny_config["features"] = {"missing_bands": "mean"}
    bands = [b for b in SyntheticTask().bands if b != "B8A"]
    records = evaluate("random", SyntheticTask(bands=bands, name="no-b8a"), "knn", config=tiny_config)
    assert any("B8A" in note for note in records[0]["notes"])


def test_cli_evaluate_writes_results(tmp_path, cli_eval_config):
    from geodiv import cli

    out = tmp_path / "r.json"
    assert cli.main(["evaluate", "--checkpoint", "random", "--task", "x", "--protocol", "knn", "--out", str(out),
                     "--config", str(cli_eval_config)]) == 0
    assert len(json.loads(out.read_text())) == 2
    assert np.isfinite(json.loads(out.read_text())[0]["value"])


def test_evaluate_locks_its_output_file_not_its_folder(tmp_path, lock_holder, tiny_config, monkeypatch):
    from geodiv.errors import LockedError

    holder = lock_holder(tmp_path / "e" / "r.json", lock="file_lock")
    with pytest.raises(LockedError, match=f"pid {holder.pid}"):  # refused before the task is even looked up
        evaluate(checkpoint="random", task="no-such-task", protocol="knn", out=tmp_path / "e" / "r.json")
    # Another evaluation into the same folder, and one into a folder (the current directory) that another command
    # has locked, are not held up: each locks only the file it writes.
    assert evaluate("random", SyntheticTask(), "knn", out=tmp_path / "e" / "other.json", config=tiny_config)
    lock_holder(tmp_path / "cwd")
    monkeypatch.chdir(tmp_path / "cwd")
    assert evaluate("random", SyntheticTask(), "knn", out="r.json", config=tiny_config)
    assert sorted(p.name for p in (tmp_path / "cwd").iterdir() if p.is_file()) == [".geodiv.lock", "r.csv", "r.json"]
    assert not list((tmp_path / "e").glob(".other.json*"))


def test_max_class_share():
    from geodiv.evaluate.runner import max_class_share

    assert max_class_share("classification", np.array([0, 0, 0, 1]), 3) == pytest.approx(0.75)
    assert max_class_share("segmentation", np.zeros((2, 4, 4), dtype=np.int16), 2) == 1.0
    assert max_class_share("regression", np.array([0.1, 0.2]), None) is None
    assert max_class_share("classification", np.array([], dtype=np.int64), 3) is None


def test_records_carry_the_predicted_class_share(tiny_config):
    records = evaluate("random", SyntheticTask(), "knn", config=tiny_config)
    shares = {r["max_class_share"] for r in records if r["region"] == "global"}
    assert len(shares) == 1 and 1 / 3 <= shares.pop() < 0.9  # three classes, predicted about equally


def test_segmentation_linear_probe_fits_on_at_most_max_tokens(tiny_config, monkeypatch):
    # The per-token probe fits on a seeded uniform sample of at most linear.max_tokens labelled tokens of train and
    # of validation (the same sample for every encoder); the test split is still scored on every pixel.
    from geodiv.evaluate import runner

    task = SyntheticTask("segmentation", n=(20, 6, 8))
    fits = []
    real = runner.fit_linear_probe
    monkeypatch.setattr(runner, "fit_linear_probe",
                        lambda tx, ty, vx, vy, **kw: fits.append((tx, vx)) or real(tx, ty, vx, vy, **kw))

    def run(max_tokens, seed=0):
        fits.clear()
        cfg = {**tiny_config, "linear": {"max_tokens": max_tokens}}
        records = evaluate("random", task, "linear", config=cfg, seed=seed)
        (tx, vx), = fits
        return records, np.unique(tx, axis=0).shape[0], np.unique(vx, axis=0).shape[0], tx

    full, n_train, n_val, tx_full = run(None)
    assert (n_train, n_val) == (80, 24)  # every token of 20 train and 6 val patches, 4 tokens each
    capped, k_train, k_val, tx = run(20)
    assert (k_train, k_val) == (20, 20)
    assert {tuple(row) for row in tx} <= {tuple(row) for row in tx_full}  # a sample of the same tokens
    again, _, _, tx_again = run(20)
    assert np.array_equal(tx, tx_again) and again == capped  # seeded: same sample, same numbers
    _, _, _, tx_other = run(20, seed=1)
    assert not np.array_equal(np.unique(tx, axis=0), np.unique(tx_other, axis=0))
    glob = [r for r in capped if r["region"] == "global" and r["metric"] == "miou"]
    assert glob and glob[0]["n"] == 8 and glob[0]["value"] > 0.5  # scored on every test patch
    assert run(n_train)[0] == full  # a cap at or above the token count changes nothing
