import pytest
import torch
import torch.nn.functional as F

from geodiv.bands import SATMAE_GROUPS
from geodiv.errors import ConfigError, InputError
from geodiv.models import build_encoder, build_mae, param_groups

G, L, P = 3, 16, 8


def test_shapes_and_masked_counts(images, tiny):
    mae = build_mae("tiny", **tiny)
    loss, pred, mask = mae(images, mask_ratio=0.75, generator=torch.Generator().manual_seed(0))
    assert pred.shape == (3, 10, L, P * P)
    assert mask.shape == (3, G, L)
    assert loss.ndim == 0 and torch.isfinite(loss) and loss > 0
    kept = int(G * L * (1 - 0.75))
    assert mask.sum(dim=(1, 2)).tolist() == [G * L - kept] * 3
    assert set(mask.unique().tolist()) == {0.0, 1.0}
    # independent masking: per-group counts are free to differ (they do for this seed)
    assert mask.sum(dim=2).unique().numel() > 1


def test_noise_gives_satmaes_masking_exactly(images, tiny):
    mae = build_mae("tiny", **tiny)
    noise = torch.rand(3, G * L, generator=torch.Generator().manual_seed(5))
    _, _, mask = mae(images, mask_ratio=0.6, noise=noise)
    keep = int(G * L * (1 - 0.6))
    expected = torch.ones(3, G * L)
    for i in range(3):
        expected[i, torch.argsort(noise[i])[:keep]] = 0
    assert torch.equal(mask.reshape(3, -1), expected)
    latent, _, kept, _ = mae.forward_encoder(images, 0.6, noise)
    assert latent.shape == (3, 1 + keep, 48)
    assert torch.equal(kept, torch.argsort(noise, dim=1)[:, :keep])


def test_noise_of_wrong_shape_is_refused(images, tiny):
    mae = build_mae("tiny", **tiny)
    with pytest.raises(InputError, match="noise must be shaped"):
        mae(images, noise=torch.rand(3, L))


def test_spatial_masking_masks_a_location_in_every_group(images, tiny):
    mae = build_mae("tiny", mask_mode="spatial", **tiny)
    _, _, mask = mae(images, mask_ratio=0.75, generator=torch.Generator().manual_seed(3))
    assert torch.equal(mask[:, 0], mask[:, 1]) and torch.equal(mask[:, 0], mask[:, 2])
    assert mask[:, 0].sum(dim=1).tolist() == [L - int(L * 0.25)] * 3
    noise = torch.rand(3, L, generator=torch.Generator().manual_seed(4))
    _, _, mask = mae(images, mask_ratio=0.5, noise=noise)
    for i in range(3):
        expected = torch.ones(L)
        expected[torch.argsort(noise[i])[: L // 2]] = 0
        assert torch.equal(mask[i, 1], expected)


class _Emit(torch.nn.Module):
    """Stands in for decoder_pred[g]: ignores its input and emits fixed patches (N, L, bands * p * p)."""

    def __init__(self, patches):
        super().__init__()
        self.patches = patches

    def forward(self, x):
        return self.patches


def _patches_of(images, bands):
    # Independent of geodiv's patchify: unfold gives (band, row, col) order per patch, patches row-major.
    return F.unfold(images[:, list(bands)], kernel_size=P, stride=P).transpose(1, 2)


def _loss_with_decoder_emitting(tiny, images, reference_loss_order, bands_for_group, norm_pix_loss=False):
    mae = build_mae("tiny", reference_loss_order=reference_loss_order, norm_pix_loss=norm_pix_loss, **tiny)
    for gi in range(G):
        target = _patches_of(images, bands_for_group(gi))
        if norm_pix_loss:
            t = target.reshape(*target.shape[:2], -1, P * P)
            t = (t - t.mean(-1, keepdim=True)) / (t.var(-1, keepdim=True) + 1e-6) ** 0.5
            target = t.reshape(target.shape)
        mae.decoder_pred[gi] = _Emit(target)
    loss, _, _ = mae(images, generator=torch.Generator().manual_seed(0))
    return loss.item()


def test_loss_is_zero_when_the_decoder_reproduces_each_band(tiny):
    images = torch.rand(3, 10, 32, 32, generator=torch.Generator().manual_seed(1))
    own_bands = lambda gi: SATMAE_GROUPS[gi]  # noqa: E731
    assert _loss_with_decoder_emitting(tiny, images, False, own_bands) == 0.0
    # per-patch normalisation computed twice (here and in the model) agrees to rounding
    assert _loss_with_decoder_emitting(tiny, images, False, own_bands, norm_pix_loss=True) < 1e-10
    # SatMAE's order compares row j (band concat[j]) with band j: the same perfect decoder is penalised.
    assert _loss_with_decoder_emitting(tiny, images, True, own_bands) > 0.01


def test_reference_order_rewards_satmaes_band_permutation(tiny):
    images = torch.rand(3, 10, 32, 32, generator=torch.Generator().manual_seed(1))
    offsets = [0, 4, 8]
    # Group g's k-th output must hold band offsets[g] + k (natural order) for SatMAE's loss to vanish:
    # e.g. decoder_pred[0] output 3 learns B5 (index 3), not B8 (index 6).
    permuted = lambda gi: range(offsets[gi], offsets[gi] + len(SATMAE_GROUPS[gi]))  # noqa: E731
    assert _loss_with_decoder_emitting(tiny, images, True, permuted) == 0.0
    assert _loss_with_decoder_emitting(tiny, images, False, permuted) > 0.01


def test_loss_value_matches_the_definition(images, tiny):
    mae = build_mae("tiny", **tiny)
    loss, pred, mask = mae(images, generator=torch.Generator().manual_seed(2))
    total, removed = 0.0, 0.0
    for gi, group in enumerate(SATMAE_GROUPS):
        err = torch.stack([((pred[:, b] - _patches_of(images, [b])) ** 2).mean(-1) for b in group]).mean(0)
        total += (err * mask[:, gi]).sum()
        removed += mask[:, gi].sum()
    torch.testing.assert_close(loss, total / removed, rtol=1e-5, atol=0)


def test_reconstruct_returns_natural_band_order(images, tiny):
    for reference in (False, True):
        mae = build_mae("tiny", reference_loss_order=reference, **tiny)
        for gi, group in enumerate(SATMAE_GROUPS):
            mae.decoder_pred[gi] = _Emit(_patches_of(images, group))
        _, pred, _ = mae(images, generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(mae.reconstruct(pred, (4, 4)), images)


def test_backward_reaches_every_trainable_parameter(images, tiny):
    mae = build_mae("tiny", **tiny)
    loss, _, _ = mae(images, generator=torch.Generator().manual_seed(0))
    loss.backward()
    no_grad = [n for n, p in mae.named_parameters() if p.requires_grad and (p.grad is None or p.grad.abs().sum() == 0)]
    assert no_grad == []
    assert not mae.pos_embed.requires_grad and not mae.decoder_channel_embed.requires_grad


def test_determinism_and_no_global_rng_use(images, tiny):
    state = torch.random.get_rng_state()
    a, b = build_mae("tiny", **tiny), build_mae("tiny", **tiny)
    assert torch.equal(state, torch.random.get_rng_state())
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), name
    c = build_mae("tiny", seed=1, **tiny)
    assert not torch.equal(a.blocks[0].attn.qkv.weight, c.blocks[0].attn.qkv.weight)
    la = a(images, generator=torch.Generator().manual_seed(9))[0]
    lb = b(images, generator=torch.Generator().manual_seed(9))[0]
    assert la.item() == lb.item()


def test_init_follows_satmae(tiny):
    mae = build_mae("tiny", **tiny)
    fc1 = mae.blocks[0].mlp.fc1
    bound = (6 / (fc1.in_features + fc1.out_features)) ** 0.5  # xavier_uniform
    assert fc1.weight.abs().max() <= bound and fc1.weight.abs().max() > 0.9 * bound
    assert torch.count_nonzero(fc1.bias) == 0
    assert 0.01 < mae.cls_token.std() < 0.03 and 0.01 < mae.mask_token.std() < 0.03
    w = mae.patch_embed[0].proj.weight
    assert w.abs().max() <= (6 / (w.shape[0] + w[0].numel())) ** 0.5
    assert torch.count_nonzero(mae.pos_embed[0, 0]) == 0


def test_13_bands_with_the_10_band_groups_fail_clearly(tiny):
    with pytest.raises(ConfigError) as err:
        build_mae("tiny", in_chans=13, **tiny)
    msg = str(err.value)
    assert "in no group" in msg and "10 (B10), 11 (B11), 12 (B12)" in msg and "exactly one group" in msg


def test_duplicate_and_out_of_range_bands_are_named(tiny):
    with pytest.raises(ConfigError, match="band 1 is in group 0 and again in group 1"):
        build_mae("tiny", in_chans=3, channel_groups=[[0, 1], [1, 2]], **tiny)
    with pytest.raises(ConfigError, match="group 1 names band index 5"):
        build_encoder("tiny", in_chans=3, channel_groups=[[0, 1], [2, 5]])
    with pytest.raises(ConfigError, match="unknown mae setting"):
        build_mae("tiny", num_classes=3)
    with pytest.raises(ConfigError, match="unknown model preset"):
        build_mae("huge")


def test_any_band_list_and_grouping_works(tiny):
    mae = build_mae("tiny", in_chans=13, channel_groups=[[0, 9, 10], [1, 2, 3, 7], [4, 5, 6, 8], [11, 12]], **tiny)
    x = torch.rand(2, 13, 32, 32, generator=torch.Generator().manual_seed(0))
    loss, pred, mask = mae(x, generator=torch.Generator().manual_seed(0))
    assert pred.shape == (2, 13, L, P * P) and mask.shape == (2, 4, L)
    with pytest.raises(InputError, match="takes 13 bands"):
        mae(torch.rand(2, 10, 32, 32))


def test_encoder_matches_the_mae_encoder_and_pools_as_defined(images, tiny):
    mae = build_mae("tiny", **tiny)
    enc = build_encoder("tiny", num_classes=4, **{k: v for k, v in tiny.items() if not k.startswith("decoder")})
    result = enc.load_state_dict(mae.state_dict(), strict=False)
    assert sorted(result.missing_keys) == ["channel_cls_embed", "fc_norm.bias", "fc_norm.weight", "head.bias", "head.weight"]
    with torch.no_grad():
        # mask_ratio 0 with increasing noise keeps every token in place: the MAE encoder's output.
        latent, _, _, _ = mae.forward_encoder(images, 0.0, torch.arange(G * L).repeat(3, 1).float())
        torch.testing.assert_close(enc.forward_features(images, pool="cls"), latent[:, 0])
        torch.testing.assert_close(enc.forward_tokens(images), latent[:, 1:].reshape(3, G, L, -1))
        captured = {}
        enc.blocks[-1].register_forward_hook(lambda m, i, o: captured.update(out=o))
        pooled = enc.forward_features(images, pool="global")
        expected = F.layer_norm(captured["out"][:, 1:].mean(1), (48,), eps=1e-6)  # fresh fc_norm: 1, 0
        torch.testing.assert_close(pooled, expected)
        assert enc(images).shape == (3, 4)
        assert not torch.allclose(pooled, enc.forward_features(images, pool="cls"))


def test_other_input_sizes_use_interpolated_tables(tiny):
    mae = build_mae("tiny", **tiny)
    x = torch.rand(2, 10, 48, 40, generator=torch.Generator().manual_seed(0))
    loss, pred, mask = mae(x, generator=torch.Generator().manual_seed(0))
    assert pred.shape == (2, 10, 6 * 5, P * P) and mask.shape == (2, G, 30)
    with pytest.raises(InputError, match="not a multiple of the patch size"):
        mae(torch.rand(2, 10, 30, 32))


def test_drop_path_is_reproducible_with_a_generator(images, tiny):
    enc = build_encoder("tiny", drop_path_rate=0.5, **{k: v for k, v in tiny.items() if not k.startswith("decoder")})
    enc.train()
    outs = []
    for _ in range(2):
        enc.set_drop_path_generator(torch.Generator().manual_seed(3))
        outs.append(enc.forward_features(images))
    torch.testing.assert_close(outs[0], outs[1])
    enc.eval()
    torch.testing.assert_close(enc.forward_features(images), enc.forward_features(images))


def test_layer_ids_and_parameter_groups(tiny):
    enc = build_encoder("tiny", num_classes=2, **{k: v for k, v in tiny.items() if not k.startswith("decoder")})
    assert enc.num_layers == 3
    assert enc.layer_id("patch_embed.1.proj.weight") == 0 and enc.layer_id("cls_token") == 0
    assert enc.layer_id("blocks.1.attn.qkv.weight") == 2 and enc.layer_id("head.weight") == 3
    assert enc.no_weight_decay() == {"cls_token", "pos_embed", "channel_embed", "channel_cls_embed"}
    groups = param_groups(enc, weight_decay=0.05, layer_decay=0.75)
    scales = {g["lr_scale"] for g in groups}
    assert max(scales) == 1.0 and min(scales) == pytest.approx(0.75**3)
    decayed = {n for g in groups if g["weight_decay"] > 0 for n in g["param_names"]}
    assert "blocks.0.attn.qkv.weight" in decayed and "blocks.0.attn.qkv.bias" not in decayed
    assert "cls_token" not in decayed and "pos_embed" not in {n for g in groups for n in g["param_names"]}
    n_params = sum(p.numel() for g in groups for p in g["params"])
    assert n_params == sum(p.numel() for p in enc.parameters() if p.requires_grad)


# ------------------------------------------------------------------ the training path (return_pred=False)
def _loss_and_grads(mae, images, noise, mask_ratio, return_pred, static_shapes=False):
    mae.zero_grad(set_to_none=True)
    loss, pred, mask = mae(images, mask_ratio, noise, return_pred=return_pred, static_shapes=static_shapes)
    loss.backward()
    return loss.detach(), pred, mask, {n: p.grad.clone() for n, p in mae.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("settings,mask_ratio", [
    ({}, 0.75),
    ({"mask_mode": "spatial", "norm_pix_loss": True}, 0.75),
    ({"decoder_depth": 1}, 0.6),  # the first decoder block is also the last: both shortcuts in one block
    ({"in_chans": 4, "channel_groups": [[2, 0], [1, 3]]}, 0.5),
    ({"reference_loss_order": True, "in_chans": 3, "channel_groups": [[0, 1], [2]]}, 0.75),  # order is natural
])
@pytest.mark.parametrize("static_shapes", [False, True])
def test_training_path_gives_the_same_loss_and_gradients(tiny, settings, mask_ratio, static_shapes):
    mae = build_mae("tiny", **{**tiny, **settings})
    assert mae.removed_only_loss
    channels = mae.config.in_chans
    images = torch.rand(3, channels, 32, 32, generator=torch.Generator().manual_seed(1))
    n_noise = L if mae.config.mask_mode == "spatial" else mae.num_groups * L
    noise = torch.rand(3, n_noise, generator=torch.Generator().manual_seed(2))
    loss, pred, mask, grads = _loss_and_grads(mae, images, noise, mask_ratio, return_pred=True)
    fast_loss, fast_pred, fast_mask, fast_grads = _loss_and_grads(mae, images, noise, mask_ratio, return_pred=False,
                                                                  static_shapes=static_shapes)
    assert fast_pred is None and pred is not None
    assert torch.equal(fast_mask, mask)
    torch.testing.assert_close(fast_loss, loss, rtol=1e-5, atol=0)
    assert fast_grads.keys() == grads.keys() == {n for n, p in mae.named_parameters() if p.requires_grad}
    for name, grad in grads.items():  # float rounding only: 1e-5 of the tensor's largest gradient
        torch.testing.assert_close(fast_grads[name], grad, rtol=1e-5, atol=1e-5 * float(grad.abs().max()), msg=name)


def test_static_shapes_trace_to_one_graph(images, tiny):
    """What torch.compile needs: no data-dependent shapes or host reads (the removed-token path has them)."""
    import torch._dynamo

    mae = build_mae("tiny", **tiny)
    noise = torch.rand(3, G * L, generator=torch.Generator().manual_seed(3))
    static = torch._dynamo.explain(mae)(images, 0.75, noise, return_pred=False, static_shapes=True)
    assert (static.graph_count, static.graph_break_count) == (1, 0), static.break_reasons
    dynamic = torch._dynamo.explain(mae)(images, 0.75, noise, return_pred=False)
    assert dynamic.graph_break_count > 0  # the per-group counts read on the host


def test_training_path_gives_zero_gradients_to_a_group_with_no_removed_tokens(tiny):
    mae = build_mae("tiny", **tiny)
    images = torch.rand(1, 10, 32, 32, generator=torch.Generator().manual_seed(1))
    noise = torch.arange(G * L, dtype=torch.float32).unsqueeze(0)  # removes only the last token (group 2)
    _, _, mask, grads = _loss_and_grads(mae, images, noise, 1 / (G * L), return_pred=True)
    _, _, _, fast_grads = _loss_and_grads(mae, images, noise, 1 / (G * L), return_pred=False)
    assert mask.sum(dim=2).tolist() == [[0.0, 0.0, 1.0]]
    for gi in (0, 1):  # a zero tensor, as the full path gives (so AdamW still applies weight decay to it)
        assert torch.count_nonzero(fast_grads[f"decoder_pred.{gi}.weight"]) == 0
        assert torch.count_nonzero(grads[f"decoder_pred.{gi}.weight"]) == 0
    torch.testing.assert_close(fast_grads["decoder_pred.2.weight"], grads["decoder_pred.2.weight"],
                               rtol=1e-5, atol=1e-6)


def test_satmae_loss_order_takes_the_full_path(images, tiny):
    # SatMAE's order weighs some rows of a token's prediction with another group's mask: every token is needed.
    mae = build_mae("tiny", reference_loss_order=True, **tiny)
    assert not mae.removed_only_loss
    noise = torch.rand(3, G * L, generator=torch.Generator().manual_seed(3))
    loss, pred, _ = mae(images, 0.75, noise)
    fast_loss, fast_pred, _ = mae(images, 0.75, noise, return_pred=False)
    assert fast_pred is None and torch.equal(fast_loss, loss)


def test_patch_tokens_equal_per_group_convolutions(images, tiny):
    mae = build_mae("tiny", **tiny)
    tokens, grid = mae.embed_tokens(images)
    conv = torch.cat([embed(images[:, list(g)]) for embed, g in zip(mae.patch_embed, SATMAE_GROUPS)], dim=1)
    torch.testing.assert_close(tokens, conv + mae.token_encoding(grid), rtol=1e-5, atol=1e-5)
    # the encoder embeds only the tokens it keeps: the same rows
    keep = torch.argsort(torch.rand(3, G * L, generator=torch.Generator().manual_seed(4)), dim=1)[:, :12]
    selected = mae.embed_selected(mae.group_patches(images), keep, grid)
    torch.testing.assert_close(selected, torch.stack([tokens[i, keep[i]] for i in range(3)]), rtol=1e-6, atol=1e-6)
