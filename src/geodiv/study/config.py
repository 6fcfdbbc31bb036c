"""``StudyConfig``: one YAML file describes a whole study (datasets, model, pretraining, tasks, protocols).

Each section is handed, merged with per-dataset settings, to the public entry function of its stage:
``geodiv.data.build_dataset`` (datasets), ``geodiv.train.pretrain`` (pretrain), ``geodiv.evaluate.evaluate``
(tasks x protocols). The study therefore runs exactly what the individual CLI commands run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from geodiv.config import StrictModel, deep_merge, load_config, read_mapping, validate_config
from geodiv.errors import ConfigError
from geodiv.geo import CONTINENTS

#: The six one-hot continents of the paper (Antarctica excluded) plus global: the default dataset list.
PAPER_CONTINENTS: tuple[str, ...] = ("Africa", "Asia", "Europe", "North America", "Oceania", "South America")


def slug(text: str) -> str:
    return "-".join("".join(ch.lower() if ch.isalnum() else " " for ch in text).split())


def paper_datasets() -> list[dict[str, Any]]:
    """The paper's seven pretraining datasets: one per continent ("one-hot") and global."""
    out = [
        {"name": f"one-hot-{slug(c)}", "region": c, "strategy": {"kind": "one_hot", "continent": c}}
        for c in PAPER_CONTINENTS
    ]
    out.append({"name": "global", "region": "global", "strategy": {"kind": "global"}})
    return out


class StudyDataset(StrictModel):
    """A pretraining dataset of the study: built from a sampling strategy, or an existing dataset folder."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    region: str | None = Field(None, description="continent the dataset stands for, 'global', or none")
    strategy: dict[str, Any] | None = Field(None, description="a geodiv.data sampling strategy (kind: ...)")
    path: Path | None = Field(None, description="an already-built dataset folder (manifest.json + shards)")

    @model_validator(mode="after")
    def _one_source(self) -> StudyDataset:
        if (self.strategy is None) == (self.path is None):
            raise ValueError(f"dataset {self.name!r}: give exactly one of strategy or path")
        if self.region not in (None, "global") and self.region not in CONTINENTS:
            raise ValueError(f"dataset {self.name!r}: region {self.region!r} is not 'global' or one of {CONTINENTS}")
        return self


class StudyDataSection(StrictModel):
    """Settings shared by every dataset the study builds (equal sizes across datasets, as in the paper)."""

    n_samples: int = Field(1024, gt=0)
    size: int = Field(64, gt=0, description="patch size in pixels")
    shard_size: int = Field(256, gt=0)
    seed: int = 0
    options: dict[str, Any] = Field(default_factory=dict, description="further geodiv.data DatasetConfig fields")


class TaskSection(StrictModel):
    """A downstream task: a SimEarth task name (simulated at locations disjoint from pretraining) or a path
    (a task folder or manifest in a format ``geodiv.evaluate.tasks.registry.load_task`` detects; its own splits are used
    and the sizes below are ignored)."""

    name: str
    n_train: int = Field(400, gt=0)
    n_val: int = Field(100, gt=0)
    n_test: int = Field(300, gt=0)
    size: int | None = Field(None, gt=0, description="SimEarth patch size; default the data size")
    protocols: list[Literal["knn", "linear", "finetune"]] | None = Field(
        None, description="subset of the study's protocols for this task (default: all)"
    )
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="options of the task's reader (load_task keywords, e.g. imagery, locations, band_remap); "
                    "checked by the reader before the study runs",
    )


class EvaluationSection(StrictModel):
    protocols: list[Literal["knn", "linear", "finetune"]] = Field(default_factory=lambda: ["knn", "linear"])
    main_protocol: Literal["knn", "linear", "finetune"] = "linear"
    by_region: bool = Field(True, description="also evaluate each continent's test subset")
    zero_pretraining: bool = Field(True, description="evaluate a randomly initialised encoder as a baseline")
    spectral_baseline: bool = Field(
        True, description="evaluate the spectral-statistics baseline (per-band mean, std, percentiles) with the same heads"
    )
    options: dict[str, Any] = Field(default_factory=dict, description="geodiv.evaluate config fields")

    @model_validator(mode="after")
    def _main_in_protocols(self) -> EvaluationSection:
        if self.main_protocol not in self.protocols:
            raise ValueError(f"main_protocol {self.main_protocol!r} is not in protocols {self.protocols}")
        return self


class LauncherSection(StrictModel):
    """How pretraining is launched: in this process, or through torchrun on several GPUs/nodes."""

    nproc_per_node: int = Field(1, gt=0)
    nnodes: int = Field(1, gt=0)
    node_rank: int = Field(0, ge=0)
    master_addr: str = "127.0.0.1"
    master_port: int = 29500


class StudyConfig(StrictModel):
    name: str = "study"
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    data: StudyDataSection = Field(default_factory=StudyDataSection)
    datasets: list[StudyDataset] = Field(default_factory=lambda: [StudyDataset(**d) for d in paper_datasets()])
    pretrain: dict[str, Any] = Field(
        default_factory=dict,
        description="geodiv.train PretrainConfig fields (model, optim, precision, ...); data.dirs/out_dir are set per dataset",
    )
    tasks: list[TaskSection] = Field(default_factory=lambda: [TaskSection(name="landcover")])
    evaluation: EvaluationSection = Field(default_factory=EvaluationSection)
    launcher: LauncherSection = Field(default_factory=LauncherSection)

    @model_validator(mode="after")
    def _unique_names(self) -> StudyConfig:
        names = [d.name for d in self.datasets]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"dataset names must be unique; repeated: {dupes}")
        if "zero-pretraining" in names:
            raise ValueError("'zero-pretraining' is reserved for the random-init baseline")
        if "spectral-baseline" in names:
            raise ValueError("'spectral-baseline' is reserved for the spectral-statistics baseline")
        tasks = [t.name for t in self.tasks]
        if len(set(tasks)) != len(tasks):
            raise ValueError(f"task names must be unique: {tasks}")
        return self


PROFILES_DIR = Path(__file__).parent / "profiles"


def profile_names() -> list[str]:
    return sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))


def profile_path(profile: str) -> Path:
    path = PROFILES_DIR / f"{profile}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown study profile {profile!r}; known profiles: {', '.join(profile_names())}")
    return path


def load_study_config(config: str | os.PathLike[str] | None = None, profile: str | None = None) -> StudyConfig:
    """A study from a profile name or a YAML file. A file with ``extends: <profile>`` holds only what differs
    from that profile: its mappings merge into the profile's key by key, its other values (lists included)
    replace the profile's, so a variant of a profile states its differences and follows the rest."""
    if (config is None) == (profile is None):
        raise ConfigError("a study needs exactly one of a study config file (STUDY.yaml) or a profile name "
                          f"(--profile {'|'.join(profile_names())})")
    if profile is not None:
        return load_config(StudyConfig, profile_path(profile))
    data = read_mapping(config)
    if "extends" not in data:
        return validate_config(StudyConfig, data, str(config))
    parent = data.pop("extends")
    if not isinstance(parent, str):
        raise ConfigError(f"config file {config}: extends must name a study profile "
                          f"({', '.join(profile_names())}), not {parent!r}")
    try:
        base = read_mapping(profile_path(parent))
    except ConfigError as err:
        raise ConfigError(f"config file {config}: extends: {err}") from None
    return validate_config(StudyConfig, deep_merge(base, data), f"{config} (extends profile {parent!r})")
