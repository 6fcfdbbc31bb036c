"""The study runner end to end on a micro configuration: plan, cache, resume, aggregates, report."""

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from geodiv.errors import ConfigError, DataError
from geodiv.study import run_study
from geodiv.study.cache import StepCache, step_key
from geodiv.study.config import StudyConfig, load_study_config, paper_datasets
from geodiv.study.plan import cached_steps, encoder_overrides, format_plan, plan_study, pretrain_config

from .conftest import micro_study


def test_step_key_is_order_independent_and_input_sensitive():
    assert step_key("x", {"a": 1, "b": [1, 2]}) == step_key("x", {"b": [1, 2], "a": 1})
    assert step_key("x", {"a": 1}) != step_key("x", {"a": 2})
    assert step_key("x", {"a": 1}) != step_key("y", {"a": 1})


def test_the_study_reports_the_diversity_stages_headline_measures():
    from geodiv.diversity import HEADLINE_MEASURES
    from geodiv.study.runner import DIVERSITY_COLUMNS

    assert DIVERSITY_COLUMNS == (*HEADLINE_MEASURES, "n_samples")  # diversity.csv: the one list, in its order


def test_paper_datasets_are_six_one_hot_continents_and_global():
    names = [d["name"] for d in paper_datasets()]
    assert names == ["one-hot-africa", "one-hot-asia", "one-hot-europe", "one-hot-north-america",
                     "one-hot-oceania", "one-hot-south-america", "global"]
    assert StudyConfig().datasets[-1].strategy == {"kind": "global"}


def test_profiles_validate_and_unknown_profile_is_refused():
    quick = load_study_config(profile="quick")
    paper = load_study_config(profile="paper")
    assert quick.pretrain["model"]["preset"] == "tiny" and paper.pretrain["preset"] == "paper"
    assert len(quick.datasets) == 7 and quick.evaluation.zero_pretraining and quick.evaluation.spectral_baseline
    gpu, standard = load_study_config(profile="gpu"), load_study_config(profile="standard")
    assert gpu.seeds == standard.seeds == [0, 1, 2]
    assert (gpu.launcher.nproc_per_node, standard.launcher.nproc_per_node) == (1, 8)
    assert quick.data.n_samples < gpu.data.n_samples < standard.data.n_samples < paper.data.n_samples
    # the 2-hour CPU study: the quick study's design on one machine's CPUs, with 2.7x the samples and 23x the
    # pretraining sample-steps per set
    cpu = load_study_config(profile="standard-cpu")
    assert cpu.launcher.nproc_per_node == 1 and cpu.pretrain["device"] == "cpu" and cpu.seeds == [0]
    assert quick.data.n_samples < cpu.data.n_samples < gpu.data.n_samples
    with pytest.raises(ConfigError, match="known profiles: gpu, paper, quick, standard, standard-cpu"):
        load_study_config(profile="nope")


def test_shipped_study_configs_validate_and_finer_tokens_is_one_group_at_patch_4():
    # every study config in configs/study loads; the finer-tokens study (issue 12's next CPU measurement) puts all
    # ten bands in one group at patch 4 for its pretrained models and its zero-pretraining encoder alike, and only
    # asks about scene, on a test split four times the one of the three-group standard-cpu study it grew from
    folder = Path(__file__).resolve().parents[2] / "configs" / "study"
    configs = {p.stem: load_study_config(p) for p in sorted(folder.glob("*.yaml"))}
    assert {"designs", "finer_tokens", "real_data", "standard_cpu_15_epochs", "standard_cpu_three_groups"} <= set(configs)
    fine, three = configs["finer_tokens"], configs["standard_cpu_three_groups"]
    preset, overrides, bands = encoder_overrides(fine)
    assert (preset, overrides["patch_size"], overrides["channel_groups"]) == ("tiny", 4, [list(range(10))])
    assert len(bands) == 10 and encoder_overrides(three)[1]["channel_groups"] != overrides["channel_groups"]
    assert [d.name for d in fine.datasets] == [d.name for d in three.datasets]
    scene = {t.name: t for t in three.tasks}["scene"]
    assert [(t.name, t.n_train, t.n_test) for t in fine.tasks] == [("scene", scene.n_train, 4 * scene.n_test)]
    # the standard-cpu profile is the three-group study's design with the finer-tokens encoder and scene's larger
    # test split, at fewer epochs (20 instead of 26) to fit its two hours
    cpu = load_study_config(profile="standard-cpu")
    assert encoder_overrides(cpu)[:2] == (preset, overrides)
    assert [(t.name, t.n_train, t.n_val) for t in cpu.tasks] == [(t.name, t.n_train, t.n_val) for t in three.tasks]
    assert {t.name: t.n_test for t in cpu.tasks}["scene"] == 4 * scene.n_test
    assert cpu.data == three.data
    assert (cpu.pretrain["optim"]["epochs"], cpu.pretrain["optim"]["batch_size"]) == (20, 8)
    assert cpu.pretrain["optim"]["blr"] == fine.pretrain["optim"]["blr"]
    # the profile's earlier runs stay reproducible: the three-group study and the 15-epoch run fitted the foresttype
    # probe on every token, the profile caps it; otherwise the 15-epoch run is the profile in all but epochs and name
    evaluations = [c.evaluation.model_dump() for c in (cpu, three)]
    caps = [e["options"]["linear"].pop("max_tokens") for e in evaluations]
    assert caps == [16384, None] and evaluations[0] == evaluations[1]
    first, now = (c.model_dump(exclude={"name"}) for c in (configs["standard_cpu_15_epochs"], cpu))
    assert (first["pretrain"]["optim"].pop("epochs"), now["pretrain"]["optim"].pop("epochs")) == (15, 20)
    assert (first["evaluation"]["options"]["linear"].pop("max_tokens"),
            now["evaluation"]["options"]["linear"].pop("max_tokens")) == (None, 16384)
    assert first == now


def test_a_study_config_extends_a_profile(tmp_path):
    # mappings merge into the profile's key by key, lists and other values replace the profile's
    quick = load_study_config(profile="quick")
    path = tmp_path / "variant.yaml"
    path.write_text("extends: quick\nname: variant\npretrain: {optim: {epochs: 3}}\nseeds: [4, 5]\n"
                    "evaluation: {options: {linear: {max_tokens: 100}}}\n")
    variant = load_study_config(path)
    assert (variant.name, variant.seeds, variant.pretrain["optim"]["epochs"]) == ("variant", [4, 5], 3)
    assert variant.evaluation.options["linear"]["max_tokens"] == 100
    assert variant.evaluation.options["linear"]["c_grid"] == quick.evaluation.options["linear"]["c_grid"]
    got, want = variant.model_dump(exclude={"name", "seeds"}), quick.model_dump(exclude={"name", "seeds"})
    got["pretrain"]["optim"].pop("epochs"), want["pretrain"]["optim"].pop("epochs")
    got["evaluation"]["options"]["linear"].pop("max_tokens")
    assert got == want
    for text, message in (("extends: nope\n", "extends: unknown study profile 'nope'; known profiles: .*standard-cpu"),
                          ("extends: [quick]\n", "extends must name a study profile"),
                          ("extends: quick\npretrain: {optim: {epochs: 3}}\nbogus: 1\n",
                           r"variant.yaml \(extends profile 'quick'\).*\n.*bogus: unknown field")):
        path.write_text(text)
        with pytest.raises(ConfigError, match=message):
            load_study_config(path)
    with pytest.raises(ConfigError, match=r"--profile .*standard-cpu"):
        load_study_config()


def test_bad_study_config_names_the_field(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("evaluation: {protocols: [knn], main_protocol: linear}\n")
    with pytest.raises(ConfigError, match="main_protocol 'linear' is not in protocols"):
        load_study_config(path)
    path.write_text("datasets: [{name: a, region: Atlantis, strategy: {kind: global}}]\n")
    with pytest.raises(ConfigError, match="Atlantis"):
        load_study_config(path)


def test_dry_run_plans_every_step_with_estimates(tmp_path, micro):
    steps = plan_study(micro, tmp_path)
    kinds = [s.kind for s in steps]
    # 3 datasets, 3 diversity, 1 held-out set, 3 pretrainings, 2 tasks, 5 models (3 + zero pretraining + spectral
    # baseline) x (landcover: knn+linear, treecover: knn)
    assert kinds.count("dataset") == 3 and kinds.count("pretrain") == 3 and kinds.count("task") == 2
    assert kinds.count("heldout") == 1 and kinds.count("evaluate") == 5 * 3
    text = run_study(study=micro, out=tmp_path, dry_run=True)
    assert "27 steps, 0 cached" in text and not (tmp_path / "cache").exists() and "--jobs" not in text
    # with --jobs: the wall clock of the steps scheduled as the study runs them, each slowed by its share of cores
    from geodiv.study.concurrency import (
        THREADS_EXPONENT,
        concurrent_step_factor,
        describe_wall_clock,
        makespan,
    )

    assert concurrent_step_factor(1, 2) == 1.0 and concurrent_step_factor(2, 2) == pytest.approx(2**THREADS_EXPONENT)
    assert concurrent_step_factor(2, 16) == pytest.approx(2**THREADS_EXPONENT)  # 8 threads instead of 16
    assert concurrent_step_factor(8, 2) == pytest.approx(2**THREADS_EXPONENT * 4)  # 8 one-thread steps share 2 cores
    wall = makespan(steps, set(), lambda s: s.estimate_s * 2**THREADS_EXPONENT, 2)
    assert describe_wall_clock(steps, set(), 2, 2).startswith(f"with --jobs 2 on 2 cores: about {wall / 60:.1f} min")
    assert wall < sum(s.estimate_s for s in steps) * 2**THREADS_EXPONENT
    assert "with --jobs 3 on" in run_study(study=micro, out=tmp_path, dry_run=True, jobs=3)
    # Changing the pretraining changes the pretrain keys and everything downstream, not the datasets.
    other = micro_study(seeds=[1])
    keys_a = {(s.kind, s.name): s.key for s in steps}
    keys_b = {(s.kind, s.name): s.key for s in plan_study(other, tmp_path)}
    assert all(keys_a[k] == keys_b[k] for k in keys_a if k[0] in ("dataset", "diversity", "heldout", "task"))
    # Without the baselines: 3 models x 3 evaluations; pretraining on existing folders: no held-out set.
    bare = micro_study(evaluation={**micro.evaluation.model_dump(), "zero_pretraining": False,
                                   "spectral_baseline": False})
    assert [s.kind for s in plan_study(bare, tmp_path)].count("evaluate") == 3 * 3
    given = micro_study(pretrain={**micro.pretrain, "heldout": {"dirs": ["elsewhere"]}})
    assert "heldout" not in [s.kind for s in plan_study(given, tmp_path)]


def test_micro_study_runs_resumes_and_aggregates(tmp_path, micro, monkeypatch):
    out = tmp_path / "study"
    run_study(study=micro, out=out)
    results = pd.read_csv(out / "results.csv")
    assert set(results["dataset"]) == {"one-hot-europe", "one-hot-africa", "global", "zero-pretraining",
                                       "spectral-baseline"}
    assert set(results["task"]) == {"landcover", "treecover"}
    acc = results[results["metric"] == "accuracy"]
    glob = acc[(acc["region"] == "global") & (acc["train_region"] == "global")]
    assert glob["value"].between(0, 1).all() and len(glob) == 5 * 2  # 5 models x (knn, linear)
    assert glob["max_class_share"].between(0, 1).all()
    assert results[results["task"] == "treecover"]["max_class_share"].isna().all()  # regression: no classes
    # the region matrix: heads trained on one continent, tested on each continent
    assert {"Europe", "Africa"} <= set(acc["train_region"])
    assert {"Europe", "Africa"} <= set(results["region"])  # per-continent subsets
    diversity = pd.read_csv(out / "diversity.csv").set_index("dataset")
    assert diversity.loc["one-hot-europe", "continent_entropy"] == 0.0
    assert diversity.loc["global", "continent_entropy"] > 1.0
    meta = json.loads((out / "study.json").read_text())
    assert meta["tasks"]["landcover"]["metric"] == "accuracy" and meta["tasks"]["treecover"]["metric"] == "r2"
    assert set(meta["sample_points"]) == {"one-hot-europe", "one-hot-africa", "global"}
    assert meta["jobs"] == 1  # steps in turn, with every core's threads
    assert meta["machine"]["torch_cpu_capability"] and meta["machine"]["cores"] >= 1  # geodiv.machine
    # the held-out reconstruction check of every pretraining, on one held-out set away from all pretraining samples
    losses = meta["reconstruction_losses"]
    assert set(losses) == {"one-hot-europe", "one-hot-africa", "global"}
    for (run,) in losses.values():
        assert run["seed"] == 0 and run["n"] == 24 and run["mae_loss"] > 0 and run["mean_visible_loss"] > 0
    # A rerun finds every step cached and does no work: the markers' mtimes do not change.
    cache = StepCache(out / "cache")
    markers = {p: p.stat().st_mtime_ns for p in (out / "cache").glob("*.json")}
    assert len(markers) == 27
    text = run_study(study=micro, out=out, dry_run=True)
    assert "27 steps, 27 cached" in text
    run_study(study=micro, out=out)
    assert {p: p.stat().st_mtime_ns for p in (out / "cache").glob("*.json")} == markers
    # Losing a step's marker reruns that step only.
    evaluate_step = [s for s in plan_study(micro, out) if s.kind == "evaluate"][0]
    cache.marker("evaluate", evaluate_step.key).unlink()
    steps = plan_study(micro, out)
    assert "27 steps, 26 cached" in format_plan(steps, cached_steps(steps, cache))
    run_study(study=micro, out=out)
    assert cache.get("evaluate", evaluate_step.key) is not None
    # The folder is self-contained: moved, and rerun from another working directory, every step is still cached
    # and the aggregates are the same.
    markers = {p.name: p.stat().st_mtime_ns for p in (out / "cache").glob("*.json")}
    before = pd.read_csv(out / "results.csv")
    moved = tmp_path / "elsewhere" / "moved-study"
    moved.parent.mkdir()
    out.rename(moved)
    monkeypatch.chdir(tmp_path / "elsewhere")
    run_study(study=micro, out="moved-study")
    assert {p.name: p.stat().st_mtime_ns for p in (moved / "cache").glob("*.json")} == markers
    pd.testing.assert_frame_equal(pd.read_csv(moved / "results.csv"), before)


def test_report_from_study(tmp_path, micro):
    from geodiv import report

    out = tmp_path / "study"
    run_study(study=micro, out=out)
    index = report.write_report(out)
    page = index.read_text()
    assert page.startswith("<!DOCTYPE html>") and "data:image/png;base64," in page
    assert "Pretraining region × evaluation region" in page and "Diversity and performance" in page
    md = (out / "report" / "report.md").read_text()
    assert "| Pretraining | landcover (accuracy) |" in md and "![" in md
    assert (out / "correlations.csv").is_file()
    assert "Representation sensitivity and collapse checks" in md and "held-out MAE loss" in md
    assert "| spectral-baseline |" in md
    summary = report.format_summary(out)
    assert "Representation-sensitive tasks (linear" in summary and "landcover: " in summary


def test_study_passes_task_options_to_the_reader(tmp_path):
    """A MOSAIKS table with imagery as a study task (`tasks: [{name: PATH, options: {...}}]`), end to end."""
    import importlib.util

    from geodiv.errors import InputError

    spec = importlib.util.spec_from_file_location(
        "mosaiks_fixture", Path(__file__).resolve().parents[1] / "fixtures" / "mosaiks" / "make_fixture.py")
    fix = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fix)
    table, shards = fix.make_table(tmp_path), fix.make_shards(tmp_path, size=32)
    options = {"imagery": str(shards), "split_fractions": [0.5, 0.2, 0.3]}
    study = micro_study(
        datasets=[],  # the zero-pretraining baseline only: the task is what is under test
        tasks=[{"name": str(table), "options": options}],
        evaluation={"protocols": ["knn"], "main_protocol": "knn", "by_region": False, "zero_pretraining": True,
                    "options": {"metrics": {"n_boot": 0}, "knn": {"k": [2]}}},
    )
    run_study(study=study, out=tmp_path / "study")
    results = pd.read_csv(tmp_path / "study" / "results.csv")
    assert set(results["task"]) == {str(table)} and set(results["metric"]) >= {"r2"} and set(results["n"]) == {3}
    meta = json.loads((tmp_path / "study" / "study.json").read_text())
    assert meta["tasks"][str(table)]["metric"] == "r2"
    bad = study.model_copy(update={"tasks": [study.tasks[0].model_copy(update={"options": {"imagry": "x"}})]})
    with pytest.raises(InputError, match="unknown option.*imagry"):
        run_study(study=bad, out=tmp_path / "bad", dry_run=True)
    simearth = micro_study(tasks=[{"name": "landcover", "options": {"imagery": "x"}}])
    with pytest.raises(InputError, match="do not apply to a SimEarth task"):
        run_study(study=simearth, out=tmp_path / "bad2", dry_run=True)


def test_study_config_sections_are_validated_at_the_door(tmp_path, capsys):
    from geodiv.cli import main

    path = tmp_path / "s.yaml"
    path.write_text("pretrain: {optim: {epochs: 3, warmup_epochs: 6}}\n")
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match=r"s.yaml \(pretrain:\)[\s\S]*warmup_epochs \(6.*\) exceeds epochs \(3\)"):
        run_study(path, out=out)
    assert main(["study", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "warmup_epochs" in err and "Traceback" not in err
    assert not out.exists()  # nothing written
    path.write_text("data: {options: {margin: -1}}\n")
    with pytest.raises(ConfigError, match=r"\(dataset one-hot-africa\)[\s\S]*margin"):
        run_study(path, out=out, dry_run=True)


def test_a_second_study_into_a_locked_folder_stops_naming_the_holder(tmp_path, micro, lock_holder):
    from geodiv.errors import LockedError

    holder = lock_holder(tmp_path / "study")
    with pytest.raises(LockedError, match=f"pid {holder.pid}"):
        run_study(study=micro, out=tmp_path / "study")
    assert sorted(p.name for p in (tmp_path / "study").iterdir()) == [".geodiv.lock"]


def test_eta_calibrates_each_cost_class_on_its_own(tmp_path):
    from geodiv.study.plan import Step
    from geodiv.study.runner import _eta

    study = micro_study(tasks=[{"name": "foresttype", "n_train": 24, "n_val": 12, "n_test": 24},
                               {"name": "landcover", "n_train": 24, "n_val": 12, "n_test": 24}])
    classes = {s.cost_class for s in plan_study(study, tmp_path)}
    # kNN comes first for each model and task: it extracts the features that linear probing then reuses
    assert {"dataset", "pretrain", "evaluate/knn/segmentation+features", "evaluate/knn+features",
            "evaluate/linear", "evaluate/linear/segmentation"} == classes - {"diversity", "task", "heldout"}

    def step(cls, est):
        return Step(cls.split("/")[0], cls, "k", est, {}, cost_class=cls)

    pending = [step("evaluate/knn/segmentation", 10.0), step("evaluate/linear", 10.0), step("pretrain", 100.0)]
    assert _eta(pending, {}) == 120.0  # nothing seen yet: the estimates
    # The first kNN segmentation step took 50x its estimate: only that class is rescaled by 50; the classes not
    # seen yet keep their estimates, a class seen is rescaled by its own ratio.
    seen = {"evaluate/knn/segmentation": [500.0, 10.0], "dataset": [20.0, 10.0]}
    assert _eta(pending, seen) == 10.0 * 50 + 10.0 + 100.0
    seen["pretrain"] = [150.0, 100.0]
    assert _eta(pending, seen) == 10.0 * 50 + 10.0 + 100.0 * 1.5


def test_torchrun_pretraining_command_log_dir_and_failures(tmp_path, monkeypatch):
    # a study with several processes per pretraining launches torchrun: one command per (dataset, seed), its port
    # offset by the step's, torchrun's log folder inside the model's folder (not a torchelastic_* folder in /tmp),
    # and a failed or empty run is an error that says how to resume
    from geodiv.study import runner

    cfg = micro_study(launcher={"nnodes": 1, "nproc_per_node": 2})
    out_dir = tmp_path / "model"
    out_dir.mkdir()
    conf = pretrain_config(cfg, tmp_path / "set", out_dir, 0)
    calls = []

    def torchrun_exits_with(status):
        def run(cmd, check):
            calls.append(cmd)
            return subprocess.CompletedProcess(cmd, status)
        return run

    monkeypatch.setattr(runner.subprocess, "run", torchrun_exits_with(3))
    with pytest.raises(DataError, match="failed with exit status 3; rerun the study to resume"):
        runner._torchrun_pretrain(cfg, conf, out_dir, port_offset=2)
    (cmd,) = calls
    assert "--nproc_per_node=2" in cmd and f"--master_port={cfg.launcher.master_port + 2}" in cmd
    assert f"--log-dir={out_dir / 'torchrun'}" in cmd
    assert cmd[-3:] == ["pretrain", str(out_dir / "pretrain.yaml"), "--resume"]
    assert yaml.safe_load((out_dir / "pretrain.yaml").read_text())["out_dir"] == str(out_dir)
    monkeypatch.setattr(runner.subprocess, "run", torchrun_exits_with(0))
    with pytest.raises(DataError, match="wrote no checkpoint"):
        runner._torchrun_pretrain(cfg, conf, out_dir)
