"""SatMAE's group-channel masked autoencoder and the downstream encoder, with SatMAE's parameter names.

Tokens: each channel group has its own patch embedding, giving G x L tokens in group-major order
(token ``g * L + l``). Each token gets ``cat(pos[l], group[g])`` added (fixed sin-cos tables, position part
``D - C`` wide, group part ``C`` wide). Conventions of the returned tensors follow SatMAE: ``pred`` is
(N, C, L, p*p) and ``mask`` is (N, G, L) with 1 where a token was removed.

Differences from SatMAE, all deliberate: channel groups must cover every input band exactly once (SatMAE
silently ignores the rest); the loss compares each predicted band with its own target band (SatMAE's band
permutation defect is kept behind ``reference_loss_order=True``); attention runs through
``F.scaled_dot_product_attention``.

Training (``forward(..., return_pred=False)``) computes the same loss and gradients with less work, all of it
exact up to float rounding: the encoder embeds only the patches it keeps; the decoder's first block projects the
mask tokens once per place rather than once per sample (they are the same in every sample); its last block and the
prediction layers run only on the removed tokens, the only ones the loss reads. Patch embedding is a matmul on cut
patches rather than a convolution (the same sums, about twice as fast on CPU).

Patches, the per-group tokenization and the seeded construction that both models share live in
``geodiv.models.tokens``; this module holds the two models, their builders and the optimiser's parameter groups.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from geodiv.errors import InputError
from geodiv.models.blocks import Block, DropPath, layer_norm, put_rows, take_rows
from geodiv.models.pos_embed import sincos_1d, sincos_2d
from geodiv.models.presets import ModelConfig, resolve_model_config
from geodiv.models.tokens import GroupTokenizer, build_initialised, patchify, seeded_generator, unpatchify
from geodiv.models.wrapping import unwrap


def _normalised_patches(target: torch.Tensor) -> torch.Tensor:
    """Each patch of each band standardised over its pixels (MAE's ``norm_pix_loss``; last axis = pixels)."""
    mean = target.mean(dim=-1, keepdim=True)
    var = target.var(dim=-1, keepdim=True)
    return (target - mean) / (var + 1.0e-6) ** 0.5


class SatMAE(GroupTokenizer):
    """Group-channel masked autoencoder (SatMAE ``group_c``), state_dict-compatible with SatMAE checkpoints."""

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        d, dd = cfg.embed_dim, cfg.decoder_embed_dim
        p = cfg.patch_size
        self.blocks = nn.ModuleList(Block(d, cfg.num_heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.norm = layer_norm(d)
        self.decoder_embed = nn.Linear(d, dd)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dd))
        self.decoder_pos_embed = nn.Parameter(torch.zeros(1, cfg.grid**2 + 1, dd - cfg.decoder_channel_embed),
                                              requires_grad=False)
        self.decoder_channel_embed = nn.Parameter(torch.zeros(1, cfg.num_groups + 1, cfg.decoder_channel_embed),
                                                  requires_grad=False)
        self.decoder_blocks = nn.ModuleList(
            Block(dd, cfg.decoder_num_heads, cfg.mlp_ratio) for _ in range(cfg.decoder_depth)
        )
        self.decoder_norm = layer_norm(dd)
        self.decoder_pred = nn.ModuleList(nn.Linear(dd, len(g) * p * p) for g in cfg.channel_groups)

        self._finish_init()

    def _buffer_values(self) -> dict[str, torch.Tensor]:
        cfg = self.config
        # Rows of pred: decoder_pred[g] output k predicts band groups[g][k]. Concatenated in group order, row j
        # holds band concat[j]. The correct loss puts each row at its band; SatMAE's leaves them in concat order.
        concat = torch.tensor([b for g in cfg.channel_groups for b in g])
        identity, by_band = torch.arange(len(concat)), torch.argsort(concat)
        group_weight = torch.zeros(cfg.num_groups, cfg.in_chans)
        for gi, g in enumerate(cfg.channel_groups):
            group_weight[gi, list(g)] = 1.0 / len(g)
        return {
            **super()._buffer_values(),
            "_pred_rows": identity if cfg.reference_loss_order else by_band,
            "_to_natural": by_band if cfg.reference_loss_order else identity,  # pred rows -> natural band order
            "_group_weight": group_weight,
        }

    def reset_parameters(self) -> None:
        cfg = self.config
        gen = seeded_generator(cfg.seed)
        self._init_tokenizer(gen)
        dpos = cfg.decoder_embed_dim - cfg.decoder_channel_embed
        self.decoder_pos_embed.data.copy_(sincos_2d(dpos, cfg.grid, cfg.grid).unsqueeze(0))
        self.decoder_channel_embed.data.copy_(
            sincos_1d(cfg.decoder_channel_embed, torch.arange(cfg.num_groups + 1)).unsqueeze(0)
        )
        nn.init.normal_(self.mask_token, std=0.02, generator=gen)
        self._init_linear_and_norm(self, gen)

    # ----------------------------------------------------------------------------- masking
    def masking(
        self,
        n: int,
        n_loc: int,
        mask_ratio: float,
        noise: torch.Tensor | None,
        generator: torch.Generator | None,
        device: torch.device,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Kept token indices (N, K) into the G*L sequence, in SatMAE's order, the removed ones (N, G*L - K), and
        the mask (N, G*L), 1 = removed.

        ``independent``: argsort ``noise`` (N, G*L), keep the first int(G*L*(1-mask_ratio)) tokens.
        ``spatial``: argsort ``noise`` (N, L), keep the first int(L*(1-mask_ratio)) locations in every group.
        """
        g = self.num_groups
        spatial = self.config.mask_mode == "spatial"
        length = n_loc if spatial else g * n_loc
        if noise is None:
            noise = torch.rand(n, length, generator=generator,
                               device=generator.device if generator is not None else device).to(device)
        elif tuple(noise.shape) != (n, length):
            raise InputError(
                f"noise must be shaped (N, {'L' if spatial else 'G*L'}) = ({n}, {length}) for "
                f"{self.config.mask_mode} masking, got {tuple(noise.shape)}"
            )
        len_keep = int(length * (1 - mask_ratio))
        order = torch.argsort(noise, dim=1)
        keep, removed = order[:, :len_keep], order[:, len_keep:]
        if spatial:
            offsets = torch.arange(g, device=device).view(1, g, 1) * n_loc
            keep = (keep.unsqueeze(1) + offsets).reshape(n, -1)
            removed = (removed.unsqueeze(1) + offsets).reshape(n, -1)
        mask = torch.ones(n, g * n_loc, device=device)
        mask.scatter_(1, keep, 0.0)
        return keep, removed, mask

    # ----------------------------------------------------------------------------- model parts
    def _encode(
        self,
        imgs: torch.Tensor,
        mask_ratio: float,
        noise: torch.Tensor | None,
        generator: torch.Generator | None,
        static_shapes: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, tuple[int, int], torch.Tensor]:
        """Latent, mask, kept and removed indices, grid, and the ``group_patches`` (the loss reuses them)."""
        grid = self.grid_of(imgs)
        patches = self.group_patches(imgs)
        n = imgs.shape[0]
        keep, removed, mask = self.masking(n, grid[0] * grid[1], mask_ratio, noise, generator, imgs.device)
        if static_shapes:  # embed every patch, then keep rows: no per-group counts read on the host
            x = take_rows(self.embed_patches(patches, grid), keep)
        else:
            x = self.embed_selected(patches, keep, grid)
        x = torch.cat([self.cls_token.expand(n, -1, -1).to(x.dtype), x], dim=1)
        for block in self.blocks:
            x = block(x)
        return self.norm(x), mask, keep, removed, grid, patches

    def forward_encoder(
        self,
        imgs: torch.Tensor,
        mask_ratio: float,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, tuple[int, int]]:
        """Latent (N, 1+K, D) with cls first, mask (N, G*L), kept indices (N, K), patch grid."""
        latent, mask, keep, _, grid, _ = self._encode(imgs, mask_ratio, noise, generator)
        return latent, mask, keep, grid

    def decoder_encoding(self, grid: tuple[int, int]) -> torch.Tensor:
        """(1, 1 + G*L, Dd): cls slot ``cat(0, dec_group[G])``, token g*L+l ``cat(dec_pos[l], dec_group[g])``."""
        pos = self._resampled(self.decoder_pos_embed, self.config.grid, grid)
        n_tok = pos.shape[1]
        g = self.num_groups
        cd = self.decoder_channel_embed.shape[-1]
        grp = self.decoder_channel_embed
        tokens = torch.cat(
            [pos.unsqueeze(1).expand(1, g, n_tok, pos.shape[-1]), grp[:, :g].unsqueeze(2).expand(1, g, n_tok, cd)],
            dim=-1,
        ).reshape(1, g * n_tok, -1)
        cls = torch.cat([pos.new_zeros(1, 1, pos.shape[-1]), grp[:, g:]], dim=-1)
        return torch.cat([cls, tokens], dim=1)

    def _decoder_input(self, latent: torch.Tensor, keep: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """(N, 1 + G*L, Dd): the visible tokens at their places among mask tokens, decoder encodings added."""
        x = self.decoder_embed(latent)
        n, _, dd = x.shape
        n_tok = self.num_groups * grid[0] * grid[1]
        # Mask tokens everywhere, visible tokens copied to their places: one copy, no cat + unshuffle.
        full = put_rows(self.mask_token.to(x.dtype).expand(1, n_tok, dd), keep, x[:, 1:])
        return torch.cat([x[:, :1], full], dim=1) + self.decoder_encoding(grid).to(x.dtype)

    def forward_decoder(self, latent: torch.Tensor, keep: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """Predicted patches (N, C, L, p*p); row order per ``reference_loss_order`` (see the class docstring)."""
        x = self._decoder_input(latent, keep, grid)
        n, _, dd = x.shape
        n_loc = grid[0] * grid[1]
        g = self.num_groups
        for block in self.decoder_blocks:
            x = block(x)
        x = self.decoder_norm(x)[:, 1:].reshape(n, g, n_loc, dd)
        p2 = self.config.patch_size**2
        per_group = [pred(x[:, gi]).view(n, n_loc, -1, p2) for gi, pred in enumerate(self.decoder_pred)]
        rows = torch.cat(per_group, dim=2).index_select(2, self._pred_rows)  # (N, L, C, p*p)
        return rows.transpose(1, 2)

    def forward_loss(self, imgs: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean squared error per patch and band, averaged over each group's bands, over removed tokens.

        ``mask`` is (N, G, L) or (N, G*L). Row j of ``pred`` is compared with band j of the target.
        """
        target = patchify(imgs, self.config.patch_size)
        if self.config.norm_pix_loss:
            target = _normalised_patches(target)
        per_band = (pred - target).pow(2).mean(dim=-1)  # (N, C, L)
        per_group = torch.einsum("ncl,gc->ngl", per_band, self._group_weight.to(per_band.dtype))
        mask = mask.reshape(per_group.shape)
        return (per_group * mask).sum() / mask.sum().clamp_min(1.0)

    def visible_mean_prediction(self, imgs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The trivial reconstruction: every patch of band c predicted as the mean, over the visible patches of
        that band (its group's unmasked tokens), of their target pixels (per sample and band, in the loss's
        target space, i.e. per-patch standardised under ``norm_pix_loss``). Shaped like ``forward_decoder``'s
        output in natural band order, so ``forward_loss(imgs, it, mask)`` is the loss a model must beat."""
        target = patchify(imgs, self.config.patch_size)
        if self.config.norm_pix_loss:
            target = _normalised_patches(target)
        n, c, length, p2 = target.shape
        visible = 1.0 - mask.reshape(n, self.num_groups, length).to(target.dtype)
        member = (self._group_weight > 0).to(target.dtype)  # (G, C): band c belongs to group g
        vis_band = torch.einsum("ngl,gc->ncl", visible, member)
        mean = (target * vis_band[..., None]).sum(dim=(2, 3)) / (vis_band.sum(dim=2) * p2).clamp_min(1.0)
        return mean[:, :, None, None].expand(n, c, length, p2)

    @property
    def removed_only_loss(self) -> bool:
        """Whether the loss reads only the removed tokens' own predictions, so ``return_pred=False`` can skip the
        rest. True unless ``reference_loss_order`` mixes groups: SatMAE's order weighs some rows of a token's
        prediction with another group's mask (for the default groups), which needs every token's prediction."""
        concat = [b for g in self.channel_groups for b in g]
        return not self.config.reference_loss_order or concat == sorted(concat)

    def _removed_tokens_decoder(
        self, latent: torch.Tensor, keep: torch.Tensor, removed: torch.Tensor, grid: tuple[int, int]
    ) -> torch.Tensor:
        """``decoder_norm`` of the decoder's output at the removed tokens, (N, M, Dd), in ``removed``'s order.

        Two shortcuts, neither changing the maths: the first block's input at a removed token is the mask token
        plus that place's encoding, the same in every sample, so its norm and qkv projection are computed once per
        place (autograd sums their gradients over the batch) and only the visible tokens' are computed per sample;
        and the last block computes outputs only at the removed tokens.
        """
        x = self.decoder_embed(latent)
        n, _, dd = x.shape
        enc = self.decoder_encoding(grid).to(x.dtype)  # (1, 1 + G*L, Dd); row 0 is the cls slot
        template = self.mask_token.to(x.dtype) + enc  # every place holding a mask token
        visible = torch.cat([keep.new_zeros(n, 1), keep + 1], dim=1)  # cls, then the kept tokens' places
        x = x + enc[0].index_select(0, visible.reshape(-1)).view(n, -1, dd)
        first = self.decoder_blocks[0]
        qkv = put_rows(first.attn.qkv(first.norm1(template)), visible, first.attn.qkv(first.norm1(x)))
        x = put_rows(template, visible, x)
        last = len(self.decoder_blocks) - 1
        wanted = removed + 1  # +1: the cls slot
        x = first(x, query_rows=wanted if last == 0 else None, qkv=qkv)
        for i, block in enumerate(self.decoder_blocks[1:], start=1):
            x = block(x, query_rows=wanted if i == last else None)
        return self.decoder_norm(x)

    def _removed_tokens_loss(
        self, latent: torch.Tensor, keep: torch.Tensor, removed: torch.Tensor, grid: tuple[int, int],
        patches: torch.Tensor,
    ) -> torch.Tensor:
        """``forward_loss(forward_decoder(...))`` computed from the removed tokens only.

        The decoder runs on every token (keys and values need them) except in its last block, which computes
        outputs only at the removed tokens; each group's prediction layer then runs only on its removed tokens
        (rows of the whole batch sorted by group), against the matching slice of ``group_patches``.
        """
        x = self._removed_tokens_decoder(latent, keep, removed, grid)
        n, m, dd = x.shape
        n_loc = grid[0] * grid[1]
        by_group, counts, where = self.rows_by_group(removed, n_loc)
        # split, not slicing: the backward of slices would zero-fill a full-size gradient per group.
        rows = x.reshape(n * m, dd).index_select(0, by_group).split(counts)
        flat_patches = patches.reshape(n * n_loc, *patches.shape[2:])
        p2 = patches.shape[-1]
        total = x.new_zeros(())
        for pred_layer, part, group_rows, group_where in zip(self.decoder_pred, self.group_slices(), rows, where):
            # Every group's layer runs, even on zero rows, so its gradient is a zero tensor as in the full path.
            pred = pred_layer(group_rows).view(group_rows.shape[0], part.stop - part.start, p2)
            target = flat_patches[:, part].index_select(0, group_where)
            if self.config.norm_pix_loss:
                target = _normalised_patches(target)
            total = total + (pred - target).pow(2).mean(dim=-1).sum() / pred.shape[1]
        return total / max(n * m, 1)

    def forward(
        self,
        imgs: torch.Tensor,
        mask_ratio: float = 0.75,
        noise: torch.Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        return_pred: bool = True,
        static_shapes: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """(loss, pred (N, C, L, p*p), mask (N, G, L)). ``noise`` fixes the masking exactly as SatMAE's;
        without it, noise is drawn from ``generator`` (or torch's global generator when none is given).

        ``return_pred=False`` (training) returns ``(loss, None, mask)`` and computes the same loss and gradients
        (up to float rounding) from the removed tokens only: the last decoder block and the prediction layers skip
        the visible tokens, whose predictions the loss never reads (see ``removed_only_loss``). Those shortcuts
        split tokens by group with sizes read on the host; ``static_shapes=True`` computes the same loss with
        tensor shapes that depend only on the input's (SatMAE's order of work: every patch embedded, every token
        through the decoder), which is what ``torch.compile`` needs to make one graph, and what a GPU prefers.
        """
        latent, mask, keep, removed, grid, patches = self._encode(imgs, mask_ratio, noise, generator, static_shapes)
        mask_3d = mask.view(mask.shape[0], self.num_groups, -1)
        if not return_pred and not static_shapes and self.removed_only_loss:
            return self._removed_tokens_loss(latent, keep, removed, grid, patches), None, mask_3d
        pred = self.forward_decoder(latent, keep, grid)
        return self.forward_loss(imgs, pred, mask_3d), pred if return_pred else None, mask_3d

    def reconstruct(self, pred: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """Images (N, C, H, W) in natural band order from ``pred`` (undoing the reference row order if set)."""
        return unpatchify(pred.index_select(1, self._to_natural), self.config.patch_size, grid)


class SatMAEEncoder(GroupTokenizer):
    """SatMAE's fine-tuning ViT (group channels): MAE encoder weights + cls group encoding, pooling norm, head."""

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        d = cfg.embed_dim
        # The group encodings may adapt during fine-tuning; the 2D position table stays fixed, as in the MAE.
        self.channel_embed.requires_grad_(True)
        self.channel_cls_embed = nn.Parameter(torch.zeros(1, 1, cfg.channel_embed))
        # Stochastic depth rising linearly from 0 to drop_path_rate over the blocks (as torch.linspace).
        rates = [cfg.drop_path_rate * i / max(cfg.depth - 1, 1) for i in range(cfg.depth)]
        self.blocks = nn.ModuleList(Block(d, cfg.num_heads, cfg.mlp_ratio, drop_path=r) for r in rates)
        self.norm = layer_norm(d)  # final norm: cls pooling and patch tokens
        self.fc_norm = layer_norm(d)  # global pooling (fresh when loading an MAE: its final norm is not used)
        self.head = nn.Linear(d, cfg.num_classes) if cfg.num_classes > 0 else nn.Identity()
        self.default_pool: Literal["global", "cls"] = "global" if cfg.global_pool else "cls"
        self._finish_init()

    @property
    def embed_dim(self) -> int:
        return self.config.embed_dim

    def reset_parameters(self) -> None:
        gen = seeded_generator(self.config.seed)
        self._init_tokenizer(gen)
        nn.init.zeros_(self.channel_cls_embed)
        self._init_linear_and_norm(self, gen)
        if isinstance(self.head, nn.Linear):  # MAE fine-tuning's head init
            nn.init.trunc_normal_(self.head.weight, std=2e-5, generator=gen)
            nn.init.zeros_(self.head.bias)

    def set_drop_path_generator(self, generator: torch.Generator | None) -> None:
        """Draw stochastic depth from ``generator`` (deterministic fine-tuning without global RNG state)."""
        for m in self.modules():
            if isinstance(m, DropPath):
                m.generator = generator

    def _run_blocks(self, imgs: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        tokens, grid = self.embed_tokens(imgs)
        n = tokens.shape[0]
        cls_enc = torch.cat([self.pos_embed[:, :1], self.channel_cls_embed], dim=-1)
        cls = (self.cls_token + cls_enc).to(tokens.dtype).expand(n, -1, -1)
        x = torch.cat([cls, tokens], dim=1)
        for block in self.blocks:
            x = block(x)
        return x, grid

    def forward_features(self, x: torch.Tensor, pool: Literal["global", "cls"] | None = None) -> torch.Tensor:
        """(N, D): ``global`` = fc_norm(mean of patch tokens, cls excluded); ``cls`` = norm(tokens)[cls]."""
        pool = pool or self.default_pool
        x, _ = self._run_blocks(x)
        if pool == "global":
            return self.fc_norm(x[:, 1:].mean(dim=1))
        if pool == "cls":
            return self.norm(x[:, 0])
        raise InputError(f"pool must be 'global' or 'cls', got {pool!r}")

    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(N, G, L, D) patch tokens after the last block and the final norm (for dense heads)."""
        x, grid = self._run_blocks(x)
        x = self.norm(x[:, 1:])
        return x.reshape(x.shape[0], self.num_groups, grid[0] * grid[1], -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


def build_mae(preset: str = "base", **overrides: Any) -> SatMAE:
    """A freshly initialised (seeded by ``seed``, default 0) group-channel MAE."""
    cfg = resolve_model_config(preset, overrides, "mae")
    return build_initialised(SatMAE, cfg)


def build_encoder(preset: str = "base", **overrides: Any) -> SatMAEEncoder:
    """A freshly initialised downstream encoder (``num_classes=0`` gives no head: ``forward`` returns features)."""
    cfg = resolve_model_config(preset, overrides, "encoder")
    return build_initialised(SatMAEEncoder, cfg)


def param_groups(model: nn.Module, weight_decay: float = 0.05, layer_decay: float | None = None) -> list[dict]:
    """Optimiser parameter groups as MAE/SatMAE make them.

    No weight decay for 1-D parameters, biases and ``model.no_weight_decay()``; with ``layer_decay``, each
    group also carries ``lr_scale = layer_decay ** (num_layers - layer_id)`` (fine-tuning's layer-wise decay;
    the training loop multiplies its lr by it). Frozen parameters are left out.
    """
    inner = unwrap(model)
    skip = inner.no_weight_decay() if hasattr(inner, "no_weight_decay") else set()
    groups: dict[tuple[int, bool], dict] = {}
    for name, param in inner.named_parameters():
        if not param.requires_grad:
            continue
        no_decay = param.ndim == 1 or name.endswith(".bias") or name in skip
        layer = inner.layer_id(name) if layer_decay is not None else 0
        key = (layer, no_decay)
        if key not in groups:
            groups[key] = {"params": [], "weight_decay": 0.0 if no_decay else weight_decay, "param_names": []}
            if layer_decay is not None:
                groups[key]["lr_scale"] = layer_decay ** (inner.num_layers - layer)
        groups[key]["params"].append(param)
        groups[key]["param_names"].append(name)
    return [groups[k] for k in sorted(groups)]
