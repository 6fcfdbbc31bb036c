import numpy as np
import pytest
import torch
import torch.nn.functional as F

from geodiv.evaluate.config import FinetuneConfig
from geodiv.evaluate.finetune import finetune, mix_batch, predict, random_resized_crop_grid
from geodiv.evaluate.finetune import finetune_param_groups as param_groups

from .synthetic import tiny_encoder


def test_random_resized_crops_stay_inside_and_flip():
    gen = torch.Generator().manual_seed(0)
    grid = random_resized_crop_grid(64, 8, (0.2, 1.0), hflip=False, gen=gen)
    assert grid.abs().max() <= 1.0  # crops never sample outside the image
    x_steps = grid[:, 0, 1:, 0] - grid[:, 0, :-1, 0]
    assert (x_steps > 0).all()  # no flip: x increases left to right
    flipped = random_resized_crop_grid(64, 8, (0.2, 1.0), hflip=True, gen=torch.Generator().manual_seed(1))
    steps = flipped[:, 0, 1:, 0] - flipped[:, 0, :-1, 0]
    assert (steps < 0).all(dim=1).any() and (steps > 0).all(dim=1).any()


def test_quarter_turns_turn_each_crop_by_a_multiple_of_90_degrees():
    x = torch.arange(3 * 2 * 8 * 8, dtype=torch.float32).reshape(3, 2, 8, 8).repeat(20, 1, 1, 1)
    # Turns are drawn after the crops and flips, so the same seed gives the same crops with and without them.
    plain = random_resized_crop_grid(60, 8, (0.5, 1.0), hflip=True, gen=torch.Generator().manual_seed(0))
    turned = random_resized_crop_grid(60, 8, (0.5, 1.0), hflip=True, gen=torch.Generator().manual_seed(0),
                                      quarter_turns=True)
    a, b = (F.grid_sample(x, g, mode="bilinear", padding_mode="border", align_corners=False) for g in (plain, turned))
    turns = []
    for crop, image in zip(a, b):
        match = [k for k in range(4) if torch.allclose(image, torch.rot90(crop, k, dims=(-2, -1)), atol=1e-4)]
        assert len(match) == 1  # each training image is its crop turned, pixel for pixel
        turns.append(match[0])
    assert sorted(set(turns)) == [0, 1, 2, 3]
    assert torch.equal(plain, random_resized_crop_grid(60, 8, (0.5, 1.0), hflip=True,
                                                       gen=torch.Generator().manual_seed(0), quarter_turns=False))


def test_finetune_learns_and_layer_decay_scales():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 24)
    x = (rng.normal(0.5, 0.05, (24, 10, 16, 16)) + (y[:, None, None, None] - 0.5) * 0.3).astype(np.float32)
    cfg = FinetuneConfig(epochs=6, warmup_epochs=1, batch_size=8, blr=5e-2, drop_path=0.1)
    res = finetune(tiny_encoder(), x[:16], y[:16], x[16:], y[16:], task_type="classification", n_classes=2,
                   config=cfg, seed=0)
    assert len(res.history) == 6 and res.best_val is not None
    scores = predict(res, x[16:], batch_size=8)
    assert scores.shape == (8, 2)
    assert (scores.argmax(1) == y[16:]).mean() >= 0.75
    scales = sorted({g["lr_scale"] for g in param_groups(res.model, 0.05, 0.5)})
    assert scales[0] == pytest.approx(0.5**2) and scales[-1] == 1.0  # depth 1: embeddings, block, head


def test_finetune_is_deterministic_for_a_seed():
    rng = np.random.default_rng(1)
    x = rng.random((8, 10, 16, 16)).astype(np.float32)
    t = rng.random(8)
    cfg = FinetuneConfig(epochs=1, warmup_epochs=0, batch_size=4)
    a = finetune(tiny_encoder(), x, t, None, None, task_type="regression", n_classes=None, config=cfg, seed=3)
    b = finetune(tiny_encoder(), x, t, None, None, task_type="regression", n_classes=None, config=cfg, seed=3)
    np.testing.assert_allclose(predict(a, x, batch_size=4), predict(b, x, batch_size=4))
    # The config's quarter_turns reach the augmentation: other training images, so another model, again repeatable.
    turned = cfg.model_copy(update={"quarter_turns": True})
    c = finetune(tiny_encoder(), x, t, None, None, task_type="regression", n_classes=None, config=turned, seed=3)
    d = finetune(tiny_encoder(), x, t, None, None, task_type="regression", n_classes=None, config=turned, seed=3)
    np.testing.assert_allclose(predict(c, x, batch_size=4), predict(d, x, batch_size=4))
    assert not np.allclose(predict(a, x, batch_size=4), predict(c, x, batch_size=4))


def _imbalanced_separable(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Three classes at 70 / 20 / 10 %, told apart by the level of every band (one noise std apart)."""
    rng = np.random.default_rng(seed)
    y = rng.choice(3, size=n, p=[0.7, 0.2, 0.1])
    x = rng.normal(0.5, 0.05, (n, 10, 16, 16)) + (y[:, None, None, None] - 1) * 0.05
    return x.astype(np.float32), y


def test_head_init_reproduces_the_linear_probe():
    from geodiv.evaluate.finetune import FinetuneModel, init_head_from_probe
    from geodiv.evaluate.linear import fit_linear_probe
    from geodiv.models.features import extract_features

    x, y = _imbalanced_separable(40, 0)
    encoder = tiny_encoder()
    model = FinetuneModel(encoder, "classification", 3, "global", 16)
    feats = extract_features(encoder, x).astype(np.float64)
    init_head_from_probe(model, feats[:30], y[:30], feats[30:], y[30:], task_type="classification", n_classes=3)
    probe = fit_linear_probe(feats[:30], y[:30], feats[30:], y[30:], task_type="classification", n_classes=3,
                             refit_on_train_val=False)
    with torch.no_grad():
        logits = model.eval()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(logits, probe.logits(feats), rtol=1e-4, atol=1e-4)
    t = x.mean(axis=(1, 2, 3)) * 10.0  # regression: the head predicts the standardised target
    reg = FinetuneModel(encoder, "regression", 1, "global", 16)
    init_head_from_probe(reg, feats[:30], t[:30], feats[30:], t[30:], task_type="regression", n_classes=None,
                         target_mean=5.0, target_std=2.0)
    ridge = fit_linear_probe(feats[:30], t[:30], feats[30:], t[30:], task_type="regression", refit_on_train_val=False)
    with torch.no_grad():
        values = reg.eval()(torch.from_numpy(x)).numpy() * 2.0 + 5.0
    np.testing.assert_allclose(values, ridge.scores(feats), rtol=1e-4, atol=1e-4)


def test_short_small_fine_tuning_does_not_collapse():
    # The quick study's regime: the default recipe (blr 2e-4: lr 6e-6 at batch 8), two epochs, a few steps, an
    # imbalanced task. A near-zero head stays at the majority class there; the probe-initialised head does not.
    from geodiv.evaluate.runner import COLLAPSE_SHARE, max_class_share

    x, y = _imbalanced_separable(96, 1)
    cfg = FinetuneConfig(epochs=2, warmup_epochs=0.5, batch_size=8)
    res = finetune(tiny_encoder(), x[:48], y[:48], x[48:64], y[48:64], task_type="classification", n_classes=3,
                   config=cfg, seed=0)
    pred = predict(res, x[64:], batch_size=16).argmax(1)
    assert max_class_share("classification", pred, 3) < COLLAPSE_SHARE
    assert (pred == y[64:]).mean() >= 0.8 > np.mean(y[64:] == 0)  # beats predicting the majority class


@pytest.mark.parametrize("mixup, cutmix", [(0.8, 0.0), (0.0, 1.0), (0.8, 1.0)])
def test_mix_batch_draws_only_from_its_generator(mixup, cutmix):
    """Same seed, same mixed batch, whatever the global generator did in between (and it is left untouched)."""
    x = torch.arange(4 * 2 * 8 * 8, dtype=torch.float32).reshape(4, 2, 8, 8)
    y = torch.eye(4)

    def mixed(global_seed):
        torch.manual_seed(global_seed)
        before = torch.get_rng_state()
        out = mix_batch(x, y, mixup, cutmix, torch.Generator().manual_seed(3))
        assert torch.equal(torch.get_rng_state(), before)
        return out

    (xa, ya), (xb, yb) = mixed(0), mixed(1)
    assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert not torch.equal(ya, y)  # something was mixed
    assert torch.allclose(ya.sum(1), torch.ones(4))
