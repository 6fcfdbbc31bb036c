from pathlib import Path

import pytest

from geodiv.bands import SATMAE_BANDS, SATMAE_GROUPS
from geodiv.errors import ConfigError
from geodiv.train.config import PretrainConfig, load_pretrain_config
from geodiv.train.schedule import scaled_lr

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "pretrain"


def test_paper_preset_is_the_published_recipe():
    cfg = load_pretrain_config(CONFIGS / "paper.yaml")
    assert cfg.model.preset == "base"
    assert (cfg.data.img_size, cfg.model.patch_size, cfg.model.mask_ratio) == (96, 8, 0.75)
    assert (cfg.optim.epochs, cfg.optim.warmup_epochs, cfg.optim.blr) == (50, 5, 1e-4)
    assert cfg.optim.effective_batch == 4096 and cfg.optim.batch_size == 256
    assert tuple(cfg.optim.betas) == (0.9, 0.95) and cfg.optim.weight_decay == 0.05
    assert tuple(cfg.data.bands) == SATMAE_BANDS
    assert not {"B1", "B9", "B10"} & set(cfg.data.bands)
    assert [tuple(g) for g in cfg.resolved_groups()] == list(SATMAE_GROUPS)
    assert cfg.model.norm_pix_loss is False and cfg.data.crop_scale == (0.2, 1.0)
    assert scaled_lr(cfg.optim.blr, cfg.optim.effective_batch) == pytest.approx(1.6e-3)


def test_file_values_win_over_the_preset(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("preset: paper\ndata: {dirs: d}\nout_dir: o\noptim: {epochs: 8}\n")
    cfg = load_pretrain_config(path, overrides={"model.mask_ratio": 0.5})
    assert cfg.optim.epochs == 8 and cfg.optim.warmup_epochs == 5
    assert cfg.model.mask_ratio == 0.5 and cfg.data.dirs == [Path("d")]


def test_tiny_example_config_is_valid():
    cfg = load_pretrain_config(CONFIGS / "tiny_cpu.yaml")
    assert cfg.model.preset == "tiny" and cfg.precision == "fp32"


def test_groups_must_cover_bands():
    base = {"data": {"dirs": ["d"], "bands": ["B2", "B3", "B4"]}, "out_dir": "o"}
    with pytest.raises(ValueError, match="channel_groups is required"):
        PretrainConfig.model_validate(base)
    with pytest.raises(ValueError, match="exactly once"):
        PretrainConfig.model_validate({**base, "model": {"channel_groups": [[0, 1], [1, 2]]}})
    ok = PretrainConfig.model_validate({**base, "model": {"channel_groups": [[0, 1], [2]]}})
    assert ok.resolved_groups() == [[0, 1], [2]]


def test_unknown_keys_and_bad_values_name_the_field(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("data: {dirs: d}\nout_dir: o\noptim: {epoch: 3}\n")
    with pytest.raises(ConfigError, match="optim.epoch"):
        load_pretrain_config(path)
    path.write_text("data: {dirs: d, img_size: 30}\nout_dir: o\n")
    with pytest.raises(ConfigError, match="patch_size"):
        load_pretrain_config(path)
