import copy
import math

import pytest

from geodiv.study import plan
from geodiv.study.plan import plan_study
from geodiv.study.runner import _eta

from .conftest import micro_study


def test_first_estimates_come_from_the_measured_unit_costs(tmp_path, monkeypatch):
    study = micro_study(
        tasks=[{"name": "landcover", "n_train": 24, "n_val": 12, "n_test": 24},
               {"name": "foresttype", "n_train": 24, "n_val": 12, "n_test": 24, "protocols": ["knn", "linear"]}],
        evaluation={"protocols": ["knn", "linear", "finetune"], "main_protocol": "linear", "by_region": True,
                    "zero_pretraining": False, "spectral_baseline": False,
                    "options": {"linear": {"c_grid": [0.1, 1.0]}, "finetune": {"epochs": 2}}})
    px = (32 / 96) ** 2  # 32 px samples count (32 / 96)^2 of a 96-px sample
    tokens, width = (32 // 8) ** 2, 32  # patch 8, embed_dim 32 (micro_study's model)

    def estimates():
        return {(s.kind, s.name): s.estimate_s for s in plan_study(study, tmp_path)}

    est = estimates()
    assert est[("dataset", "global")] == pytest.approx(plan.SIM_SETUP_S + 24 * px / plan.SIM_PATCHES_PER_S)
    assert est[("task", "landcover")] == pytest.approx(  # a task patch costs TASK_PATCH_COST dataset patches
        plan.TASK_PATCH_COST * (plan.SIM_SETUP_S + 60 * px / plan.SIM_PATCHES_PER_S))
    assert est[("pretrain", "global seed 0")] == pytest.approx(  # 1 epoch of 24 samples in batches of 8
        24 * px / plan.TRAIN_SAMPLES_PER_S_TINY + math.ceil(24 / 8) * plan.TRAIN_STEP_S)
    features = 60 * px / plan.FORWARD_SAMPLES_PER_S_TINY  # the task's 60 samples through the encoder
    assert est[("evaluate", "global s0 / landcover / knn")] == pytest.approx(features)  # extracts the features
    assert est[("evaluate", "global s0 / landcover / linear")] == pytest.approx(features * plan.LATER_PROTOCOL_SHARE)
    assert est[("evaluate", "global s0 / landcover / finetune")] == pytest.approx(
        2 * 24 * px / plan.FINETUNE_SAMPLES_PER_S_TINY + features)
    knn_search = 2.0 * 36 * tokens * 24 * tokens * width / plan.KNN_FLOPS_PER_S
    assert est[("evaluate", "global s0 / foresttype / knn")] == pytest.approx(features + knn_search)
    assert est[("evaluate", "global s0 / foresttype / linear")] == pytest.approx(  # 2 grid values + the final fit
        features * plan.LATER_PROTOCOL_SHARE + 36 * tokens * 3 / plan.LINEAR_TOKEN_FITS_PER_S)
    # the first ETA of a run is the sum of these estimates (no cost class observed yet)
    steps = plan_study(study, tmp_path)
    assert _eta(steps, {}) == pytest.approx(sum(est.values()))
    # linear.max_tokens caps each split of every head: at 100 tokens the global head fits 100 + 100 rather than
    # 24 x 16 + 12 x 16 tokens, and each continent head min(64, 100) + min(32, 100)
    linear_fits = est[("evaluate", "global s0 / foresttype / linear")] - features * plan.LATER_PROTOCOL_SHARE
    study.evaluation.options["linear"]["max_tokens"] = 100
    capped = estimates()[("evaluate", "global s0 / foresttype / linear")] - features * plan.LATER_PROTOCOL_SHARE
    assert capped == pytest.approx(linear_fits * (200 + 6 * 96) / (2 * 36 * tokens))
    study.evaluation.by_region = False  # the global head alone: half the uncapped rows
    del study.evaluation.options["linear"]["max_tokens"]
    alone = estimates()[("evaluate", "global s0 / foresttype / linear")] - features * plan.LATER_PROTOCOL_SHARE
    assert alone == pytest.approx(linear_fits / 2)
    study.evaluation.by_region = True
    # and it moves with the constants: a per-step overhead twice as large adds 3 steps' worth per pretraining
    monkeypatch.setattr(plan, "TRAIN_STEP_S", 2 * plan.TRAIN_STEP_S)
    assert estimates()[("pretrain", "global seed 0")] == pytest.approx(
        est[("pretrain", "global seed 0")] + 3 * plan.TRAIN_STEP_S / 2)


def test_estimates_scale_with_the_models_tokens_per_sample(tmp_path):
    # the rates were measured on three channel groups at patch 8; one group at patch 4 has 4/3 of their tokens per
    # pixel (docs/study.md: 1.40x the pretraining time measured for 1.33x the tokens), one group at patch 8 a third
    def pretrain_and_features(groups, patch):
        pre = copy.deepcopy(micro_study().pretrain)
        pre["model"].update(patch_size=patch, **({"channel_groups": groups} if groups else {}))
        est = {(s.kind, s.name): s.estimate_s for s in plan_study(micro_study(pretrain=pre), tmp_path)}
        steps = math.ceil(24 / 8) * plan.TRAIN_STEP_S  # the per-step overhead does not scale
        return est[("pretrain", "global seed 0")] - steps, est[("evaluate", "global s0 / landcover / knn")]

    reference = pretrain_and_features(None, 8)  # SatMAE's three groups of the ten bands
    for groups, patch, factor in (([list(range(10))], 4, 4 / 3), ([list(range(10))], 8, 1 / 3)):
        assert pretrain_and_features(groups, patch) == pytest.approx(tuple(factor * r for r in reference))


def test_adding_a_protocol_keeps_the_task_and_its_other_evaluations(tmp_path):
    def keys(treecover_protocols):
        study = micro_study(tasks=[{"name": "landcover", "n_train": 24, "n_val": 12, "n_test": 24},
                                   {"name": "treecover", "n_train": 24, "n_val": 12, "n_test": 24,
                                    "protocols": treecover_protocols}])
        return {(s.kind, s.name): s.key for s in plan_study(study, tmp_path)}

    before, after = keys(["knn"]), keys(["knn", "linear"])
    assert before[("task", "treecover")] == after[("task", "treecover")]
    assert before[("evaluate", "global s0 / treecover / knn")] == after[("evaluate", "global s0 / treecover / knn")]
    assert ("evaluate", "global s0 / treecover / linear") in set(after) - set(before)
    # what the task holds still enters its key
    bigger = micro_study(tasks=[{"name": "treecover", "n_train": 30, "n_val": 12, "n_test": 24, "protocols": ["knn"]}])
    assert {s.key for s in plan_study(bigger, tmp_path) if s.kind == "task"} != {before[("task", "treecover")]}
