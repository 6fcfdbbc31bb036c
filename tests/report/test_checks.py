"""Representation sensitivity (intervals of the best pretrained encoder against both baselines) and the collapse
flag, on hand-made results tables."""

import math

import pandas as pd

from geodiv.report import checks


def _rows(spec: dict, task="landcover", metric="accuracy", protocol="linear") -> pd.DataFrame:
    """spec: dataset -> list of (value, ci_low, ci_high), one per seed."""
    rows = []
    for dataset, seeds in spec.items():
        for seed, (v, lo, hi) in enumerate(seeds):
            rows.append(dict(dataset=dataset, seed=seed, task=task, protocol=protocol, metric=metric, value=v,
                             ci_low=lo, ci_high=hi, region="global", train_region="global"))
            # per-continent rows and region-matrix heads never decide the verdict
            rows.append(dict(dataset=dataset, seed=seed, task=task, protocol=protocol, metric=metric, value=0.99,
                             ci_low=0.98, ci_high=1.0, region="Europe", train_region="global"))
            rows.append(dict(dataset=dataset, seed=seed, task=task, protocol=protocol, metric=metric, value=0.99,
                             ci_low=0.98, ci_high=1.0, region="global", train_region="Europe"))
    return pd.DataFrame(rows)


def test_sensitive_only_when_the_best_interval_clears_both_baselines():
    spec = {"a": [(0.80, 0.76, 0.84)], "b": [(0.70, 0.66, 0.74)],
            "spectral-baseline": [(0.70, 0.65, 0.75)], "zero-pretraining": [(0.60, 0.55, 0.65)]}
    table = checks.representation_sensitivity(_rows(spec), {"landcover": "accuracy"}, "linear")
    row = table.iloc[0]
    assert row["best"] == "a" and row["sensitive"] is True and row["best_low"] == 0.76
    # the spectral baseline's interval reaches into the best one's: not sensitive
    spec["spectral-baseline"] = [(0.72, 0.68, 0.77)]
    row = checks.representation_sensitivity(_rows(spec), {"landcover": "accuracy"}, "linear").iloc[0]
    assert row["sensitive"] is False
    assert "landcover: no (best pretrained 'a' 0.800 [0.760, 0.840]" in checks.sensitivity_sentence(
        checks.representation_sensitivity(_rows(spec), {"landcover": "accuracy"}, "linear"), "linear")


def test_each_baseline_alone_is_judged_and_stated():
    # 'a' clears zero pretraining but not the spectral baseline on landcover; on treecover it clears neither
    landcover = {"a": [(0.80, 0.76, 0.84)], "spectral-baseline": [(0.78, 0.74, 0.82)],
                 "zero-pretraining": [(0.60, 0.55, 0.65)]}
    treecover = {"a": [(0.50, 0.40, 0.60)], "spectral-baseline": [(0.50, 0.41, 0.59)],
                 "zero-pretraining": [(0.45, 0.35, 0.55)]}
    results = pd.concat([_rows(landcover), _rows(treecover, "treecover", "r2")])
    table = checks.representation_sensitivity(results, {"landcover": "accuracy", "treecover": "r2"}, "linear")
    assert table["beats_zero"].tolist() == [True, False] and table["beats_spectral"].tolist() == [False, False]
    assert table["sensitive"].tolist() == [False, False]
    sentence = checks.sensitivity_sentence(table, "linear")
    assert ("Against each baseline alone, the best pretrained encoder's interval lies clear of zero pretraining's "
            "on landcover, and of the spectral baseline's on no task.") in sentence
    assert "One seed" in sentence  # a win over one baseline is picked on one seed's test set too
    lines = checks.sensitivity_markdown(table)
    assert lines[0].split("|")[5:8] == [" beats spectral ", " beats zero ", " representation-sensitive "]
    assert lines[2].endswith("| no | yes | no |") and lines[3].endswith("| no | no | no |")
    # undecided rows say nothing against either baseline
    undecided = checks.representation_sensitivity(_rows({"a": [(0.8, 0.7, 0.9)]}), {"landcover": "accuracy"},
                                                  "linear")
    assert undecided.iloc[0]["beats_zero"] is None and "baseline alone" not in checks.sensitivity_sentence(
        undecided, "linear")
    assert checks.sensitivity_markdown(undecided)[2].endswith("| - | - | undetermined (no spectral baseline or "
                                                             "zero pretraining rows) |")


def test_seeds_widen_the_interval_to_the_union():
    spec = {"a": [(0.80, 0.78, 0.84), (0.78, 0.74, 0.82)], "spectral-baseline": [(0.70, 0.65, 0.75)] * 2,
            "zero-pretraining": [(0.70, 0.66, 0.76)] * 2}
    row = checks.representation_sensitivity(_rows(spec), {"landcover": "accuracy"}, "linear").iloc[0]
    assert (row["best_value"], row["best_low"], row["best_high"]) == (0.79, 0.74, 0.84)
    assert row["sensitive"] is False  # seed 1's lower bound 0.74 < zero pretraining's upper bound 0.76


def test_lower_is_better_metrics_and_undetermined_cases():
    spec = {"a": [(1.0, 0.9, 1.1)], "spectral-baseline": [(2.0, 1.8, 2.2)], "zero-pretraining": [(1.5, 1.2, 1.8)]}
    row = checks.representation_sensitivity(_rows(spec, "t", "rmse"), {"t": "rmse"}, "linear").iloc[0]
    assert row["best"] == "a" and row["sensitive"] is True
    del spec["spectral-baseline"]
    row = checks.representation_sensitivity(_rows(spec, "t", "rmse"), {"t": "rmse"}, "linear").iloc[0]
    assert row["sensitive"] is None and row["reason"] == "no spectral baseline rows"
    spec["spectral-baseline"] = [(2.0, math.nan, math.nan)]
    row = checks.representation_sensitivity(_rows(spec, "t", "rmse"), {"t": "rmse"}, "linear").iloc[0]
    assert row["sensitive"] is None and "n_boot" in row["reason"]
    assert checks.representation_sensitivity(_rows(spec, "t", "rmse"), {"t": "rmse"}, "knn").empty


def test_collapse_flag_lists_heads_above_ninety_percent():
    results = pd.DataFrame([
        dict(dataset="a", seed=0, task="landcover", protocol="finetune", metric=m, region=r, train_region="global",
             value=0.4, max_class_share=s)
        for m in ("accuracy", "macro_f1") for r, s in (("global", 0.95), ("Europe", 1.0))
    ] + [
        dict(dataset="b", seed=0, task="landcover", protocol="finetune", metric="accuracy", region=r,
             train_region="global", value=0.7, max_class_share=s) for r, s in (("global", 0.9), ("Asia", 0.99))
    ] + [
        dict(dataset="b", seed=0, task="treecover", protocol="linear", metric="r2", region="global",
             train_region="global", value=0.7, max_class_share=math.nan)
    ])
    flagged = checks.collapsed_heads(results)
    assert flagged[["dataset", "max_class_share"]].values.tolist() == [["a", 0.95]]  # one row per head, global only
    sentence = checks.collapse_sentence(results)
    assert "1 globally trained head(s): a / landcover / finetune (seed 0, 95%)" in sentence
    assert "single continent" not in sentence
    regional = results.assign(train_region=["global"] * 4 + ["Asia"] * 3,
                              max_class_share=[0.95, 1.0, 0.95, 1.0, 0.97, 0.99, math.nan])
    assert "1 head(s) trained on a single continent's samples" in checks.collapse_sentence(regional)
    assert checks.collapse_markdown(results)[2] == "| a | 0 | landcover | finetune | global | 95% |"
    ok = results[results["dataset"] == "b"]
    assert "no classification head predicts one class" in checks.collapse_sentence(ok)
    assert checks.collapse_sentence(results.drop(columns="max_class_share")) == ""


def test_reconstruction_table():
    lines = checks.reconstruction_markdown({"global": [{"seed": 0, "n": 256, "mae_loss": 0.2, "mean_visible_loss": 0.8},
                                                       {"seed": 1, "n": 256, "mae_loss": 0.4, "mean_visible_loss": 0.8}]})
    assert lines[2] == "| global | 0.3000 | 0.8000 | 0.38 | 256 | 2 |"


def _losses(**ratios):
    return {d: [{"seed": 0, "n": 256, "mae_loss": 0.01 * r, "mean_visible_loss": 0.01}] for d, r in ratios.items()}


def test_reconstruction_sentence_says_which_runs_follow_the_input():
    none = checks.reconstruction_sentence(_losses(global_=1.11, europe=1.27))
    assert "no pretraining dataset's MAE beats" in none and "1.11 to 1.27" in none
    assert "test encoders that learned little" in none and "standard-cpu profile" in none  # where to look instead
    assert "learned little" not in checks.reconstruction_sentence(_losses(global_=0.52, europe=1.04))
    some = checks.reconstruction_sentence(_losses(global_=0.52, europe=1.04, asia=0.98))
    assert "2 of 3 pretraining datasets beat" in some and "below 1: asia, global_" in some and "0.52 to 1.04" in some
    every = checks.reconstruction_sentence(_losses(global_=0.52, europe=0.61))
    assert "every pretraining dataset's MAE reconstructs" in every and "follow the input" in every
    # exactly the reference loss is not "better than" it; a zero reference gives no ratio and no sentence
    assert "no pretraining dataset" in checks.reconstruction_sentence(_losses(a=1.0))
    zero = {"a": [{"seed": 0, "n": 8, "mae_loss": 0.1, "mean_visible_loss": 0.0}]}
    assert checks.reconstruction_sentence(zero) == "" and checks.reconstruction_markdown(zero)[2].split(" | ")[3] == "-"


def test_a_one_seed_yes_carries_the_selection_caveat():
    spec = {"a": [(0.80, 0.76, 0.84)], "spectral-baseline": [(0.70, 0.65, 0.75)],
            "zero-pretraining": [(0.60, 0.55, 0.65)]}
    one = checks.representation_sensitivity(_rows(spec), {"landcover": "accuracy"}, "linear")
    assert one.iloc[0]["n_seeds"] == 1 and "One seed" in checks.sensitivity_sentence(one, "linear")
    spec = {k: v * 3 for k, v in spec.items()}  # three seeds: the union of intervals decides, no caveat
    three = checks.representation_sensitivity(_rows(spec), {"landcover": "accuracy"}, "linear")
    assert three.iloc[0]["n_seeds"] == 3 and three.iloc[0]["sensitive"] is True
    assert "One seed" not in checks.sensitivity_sentence(three, "linear")
    spec["spectral-baseline"] = [(0.78, 0.74, 0.82)] * 3  # a "no" needs no caveat
    assert "One seed" not in checks.sensitivity_sentence(
        checks.representation_sensitivity(_rows(spec), {"landcover": "accuracy"}, "linear"), "linear")


def test_class_groups_are_compared_part_by_part():
    between = {"a": [(0.70, 0.66, 0.74)], "spectral-baseline": [(0.74, 0.70, 0.78)], "zero-pretraining": [(0.65, 0.61, 0.69)]}
    inside = {"a": [(0.60, 0.55, 0.64)], "spectral-baseline": [(0.45, 0.41, 0.50)], "zero-pretraining": [(0.40, 0.35, 0.44)]}
    results = pd.concat([_rows(between, task="scene", metric="group_accuracy"),
                         _rows(inside, task="scene", metric="within_group_accuracy"),
                         _rows(between, task="landcover")])
    table = checks.group_decomposition(results, "linear")
    assert table[["task", "metric"]].values.tolist() == [["scene", "group_accuracy"], ["scene", "within_group_accuracy"]]
    assert table["sensitive"].tolist() == [False, True]
    sentence = checks.group_sentence(table, "linear")
    assert ("scene: telling the groups apart, best pretrained 'a' 0.700 [0.660, 0.740] against 0.740 [0.700, 0.780] "
            "(spectral baseline)") in sentence
    assert "inside the groups, best pretrained 'a' 0.600 [0.550, 0.640] against 0.450" in sentence
    assert checks.check_facts(results, {"scene": "accuracy"}, "linear")["groups"] == sentence
    assert checks.group_decomposition(_rows(between), "linear").empty and checks.group_sentence(pd.DataFrame(), "linear") == ""


def test_summary_names_a_task_sensitive_under_another_protocol_only():
    linear = {"a": [(0.80, 0.76, 0.84)], "spectral-baseline": [(0.79, 0.75, 0.83)],
              "zero-pretraining": [(0.60, 0.55, 0.65)]}
    knn = {"a": [(0.19, 0.13, 0.24)], "spectral-baseline": [(0.06, 0.00, 0.10)],
           "zero-pretraining": [(0.07, 0.01, 0.12)]}
    results = pd.concat([_rows(linear), _rows(knn, protocol="knn")])
    metrics = {"landcover": "accuracy"}
    sentence = checks.check_facts(results, metrics, "linear", other_protocols=["linear", "knn", "finetune"])[
        "sensitivity"]
    assert "landcover: no (best pretrained 'a'" in sentence  # the main protocol, task by task
    assert ("Representation-sensitive under another protocol: landcover under knn (best pretrained 'a' "
            "0.190 [0.130, 0.240], spectral baseline 0.060 [0.000, 0.100]") in sentence
    assert "One seed" in sentence
    # nothing found elsewhere is said too; without other protocols the sentence is the main protocol's alone
    quiet = pd.concat([_rows(linear), _rows(linear, protocol="knn")])
    assert checks.check_facts(quiet, metrics, "linear", other_protocols=["knn"])["sensitivity"].endswith(
        "Under knn no task is representation-sensitive either.")
    assert "another protocol" not in checks.check_facts(results, metrics, "linear")["sensitivity"]
    # the report passes the tables it has already computed: the same sentences
    tables = checks.sensitivity_tables(results, metrics, ["linear", "knn", "finetune"])
    assert list(tables) == ["linear", "knn"]  # no finetune results: no table
    assert checks.check_facts(results, metrics, "linear", other_protocols=["knn"], tables=tables,
                              groups=checks.group_decomposition(results, "linear")) == checks.check_facts(
        results, metrics, "linear", other_protocols=["knn"])


def test_band_statistics_appended_are_stated_in_the_summary():
    spec = {"a": [(0.80, 0.76, 0.84)], "spectral-baseline": [(0.70, 0.65, 0.75)],
            "zero-pretraining": [(0.60, 0.55, 0.65)]}
    results = pd.concat([_rows(spec), _rows(spec, protocol="finetune")], ignore_index=True)
    results["checkpoint_id"] = "abc"
    assert checks.band_statistics_sentence(results) == ""
    assert "band_statistics" not in checks.check_facts(results, {"landcover": "accuracy"}, "linear")
    appended = (results["protocol"] == "linear") & (results["dataset"] != "spectral-baseline")
    results.loc[appended, "checkpoint_id"] = "abc+band_statistics"
    sentence = checks.band_statistics_sentence(results)
    assert sentence.startswith("Band statistics appended (linear):") and "features.band_statistics" in sentence
    facts = checks.check_facts(results, {"landcover": "accuracy"}, "linear")
    assert facts["band_statistics"] == sentence
    from geodiv.report.summary import summarise

    assert sentence in summarise(facts, {})
    assert checks.band_statistics_sentence(results.drop(columns="checkpoint_id")) == ""
