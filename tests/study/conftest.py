import pytest

from geodiv.study.config import StudyConfig


def micro_study(**over) -> StudyConfig:
    """A whole study shrunk to seconds: two datasets, 32 px, one epoch, two small tasks."""
    conf = {
        "name": "micro",
        "seeds": [0],
        "data": {"n_samples": 24, "size": 32, "shard_size": 16, "seed": 0},
        "datasets": [
            {"name": "one-hot-europe", "region": "Europe", "strategy": {"kind": "one_hot", "continent": "Europe"}},
            {"name": "one-hot-africa", "region": "Africa", "strategy": {"kind": "one_hot", "continent": "Africa"}},
            {"name": "global", "region": "global", "strategy": {"kind": "global"}},
        ],
        "pretrain": {
            "model": {"preset": "tiny", "patch_size": 8, "overrides": {"depth": 1, "embed_dim": 32, "num_heads": 2,
                      "channel_embed": 8, "decoder_embed_dim": 16, "decoder_depth": 1, "decoder_num_heads": 2,
                      "decoder_channel_embed": 4}},
            "optim": {"epochs": 1, "warmup_epochs": 0, "batch_size": 8, "blr": 1e-3},
            "data": {"shuffle_buffer": 8},
            "device": "cpu", "precision": "fp32", "checkpoint_every": 1,
            "log": {"every_steps": 1, "tensorboard": False},
        },
        "tasks": [
            {"name": "landcover", "n_train": 24, "n_val": 12, "n_test": 24},
            {"name": "treecover", "n_train": 24, "n_val": 12, "n_test": 24, "protocols": ["knn"]},
        ],
        "evaluation": {"protocols": ["knn", "linear"], "main_protocol": "linear", "by_region": True,
                       "options": {"metrics": {"n_boot": 20}, "knn": {"k": [5]}}},
    }
    for k, v in over.items():
        conf[k] = v
    return StudyConfig.model_validate(conf)


@pytest.fixture
def micro():
    return micro_study()
