"""Group-channel tokenization that SatMAE's MAE and its downstream encoder share.

Images are cut into per-band patches (``patchify``); each channel group has its own patch embedding, giving G x L
tokens in group-major order, and each token gets ``cat(pos[l], group[g])`` added (fixed sin-cos tables).
``GroupTokenizer`` holds that, the seeded initialisation and the optimiser-facing helpers (weight-decay names,
layer ids); ``build_initialised`` constructs a model on the meta device and seeds it (see ``geodiv.models.satmae``).
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn

from geodiv.errors import InputError
from geodiv.models.blocks import PatchEmbed
from geodiv.models.pos_embed import interpolate_grid_table, sincos_1d, sincos_2d
from geodiv.models.presets import ModelConfig

#: Parameters that weight decay skips besides 1-D tensors and biases (MAE's ``no_weight_decay`` names).
NO_WEIGHT_DECAY = ("cls_token", "pos_embed", "channel_embed", "channel_cls_embed", "mask_token",
                   "decoder_pos_embed", "decoder_channel_embed")


def patchify(imgs: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, L, p*p): per band, row-major patches, row-major pixels within a patch."""
    n, c, h, w = imgs.shape
    p = patch_size
    x = imgs.reshape(n, c, h // p, p, w // p, p).permute(0, 1, 2, 4, 3, 5)
    return x.reshape(n, c, (h // p) * (w // p), p * p)


def unpatchify(patches: torch.Tensor, patch_size: int, grid: tuple[int, int]) -> torch.Tensor:
    """Inverse of ``patchify``: (N, C, L, p*p) -> (N, C, H, W)."""
    n, c, _, _ = patches.shape
    gh, gw = grid
    p = patch_size
    x = patches.reshape(n, c, gh, gw, p, p).permute(0, 1, 2, 4, 3, 5)
    return x.reshape(n, c, gh * p, gw * p)


class GroupTokenizer(nn.Module):
    """What the MAE encoder and the downstream encoder share: per-group patch embedding and token encodings."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        self.channel_groups = cfg.channel_groups
        d, c = cfg.embed_dim, cfg.channel_embed
        self.patch_embed = nn.ModuleList(PatchEmbed(len(g), d, cfg.patch_size) for g in cfg.channel_groups)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.grid**2 + 1, d - c), requires_grad=False)
        self.channel_embed = nn.Parameter(torch.zeros(1, cfg.num_groups, c), requires_grad=False)

    @property
    def num_groups(self) -> int:
        return len(self.channel_groups)

    def _buffer_values(self) -> dict[str, torch.Tensor]:
        """Derived constants kept as non-persistent buffers (they follow .to(device); SatMAE saves none)."""
        return {"_concat_bands": torch.tensor([b for g in self.channel_groups for b in g], dtype=torch.long)}

    def _set_buffers(self) -> None:
        for name, value in self._buffer_values().items():
            if name in self._buffers:
                self._buffers[name] = value
            else:
                self.register_buffer(name, value, persistent=False)

    def _finish_init(self) -> None:
        """Buffers and seeded weights; skipped while the module is built on the meta device (see ``build_initialised``)."""
        self._set_buffers()
        if not self.cls_token.is_meta:
            self.reset_parameters()

    def grid_of(self, imgs: torch.Tensor) -> tuple[int, int]:
        if imgs.ndim != 4:
            raise InputError(f"expected images shaped (N, C, H, W), got {tuple(imgs.shape)}")
        n, ch, h, w = imgs.shape
        p = self.config.patch_size
        if ch != self.config.in_chans:
            raise InputError(
                f"the model takes {self.config.in_chans} bands (groups {[list(g) for g in self.channel_groups]}), "
                f"the input has {ch}; select the model's bands or build it with matching in_chans/channel_groups"
            )
        if h % p or w % p:
            raise InputError(f"input size {h}x{w} is not a multiple of the patch size {p}")
        return h // p, w // p

    @staticmethod
    def _resampled(table: torch.Tensor, native: int, grid: tuple[int, int]) -> torch.Tensor:
        """Patch rows (1, L, D') of a stored (1, 1 + native**2, D') table, interpolated for another grid."""
        if grid == (native, native):
            return table[:, 1:]
        return interpolate_grid_table(table, (native, native), grid)[:, 1:]

    def token_encoding(self, grid: tuple[int, int]) -> torch.Tensor:
        """(1, G*L, D): ``cat(pos[l], group[g])`` for token ``g*L + l``."""
        pos = self._resampled(self.pos_embed, self.config.grid, grid)  # (1, L, D-C)
        n_tok = pos.shape[1]
        g = self.num_groups
        pos = pos.unsqueeze(1).expand(1, g, n_tok, pos.shape[-1])
        grp = self.channel_embed.unsqueeze(2).expand(1, g, n_tok, self.channel_embed.shape[-1])
        return torch.cat([pos, grp], dim=-1).reshape(1, g * n_tok, -1)

    def group_patches(self, imgs: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, L, C, p*p) patches with the bands in group order (group 0's bands, then group 1's,
        ...): each group's bands are a contiguous slice, ready for its patch embedding and for its loss target."""
        n, c, h, w = imgs.shape
        p = self.config.patch_size
        x = imgs.index_select(1, self._concat_bands).reshape(n, c, h // p, p, w // p, p)
        return x.permute(0, 2, 4, 1, 3, 5).reshape(n, (h // p) * (w // p), c, p * p)

    def group_slices(self) -> list[slice]:
        """Each group's slice of the band axis of ``group_patches``."""
        ends = list(itertools.accumulate(len(g) for g in self.channel_groups))
        return [slice(end - len(g), end) for end, g in zip(ends, self.channel_groups)]

    def embed_patches(self, patches: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """``group_patches`` output -> encoded patch tokens (N, G*L, D), group-major."""
        n, n_loc = patches.shape[:2]
        per_group = [embed.embed_patches(patches[:, :, part].reshape(n, n_loc, -1))
                     for embed, part in zip(self.patch_embed, self.group_slices())]
        tokens = torch.cat(per_group, dim=1)
        return tokens + self.token_encoding(grid).to(tokens.dtype)

    def rows_by_group(self, tokens: torch.Tensor, n_loc: int) -> tuple[torch.Tensor, list[int], list[torch.Tensor]]:
        """Token indices (N, K) into the G*L sequence, flattened and sorted by group (stably, so one matmul per
        group covers the whole batch): the sorting permutation (N*K,), the count per group, and per group the rows
        of its tokens' (sample, location) in ``group_patches`` viewed as (N*L, C, p*p)."""
        n = tokens.shape[0]
        group = torch.div(tokens, n_loc, rounding_mode="floor").reshape(-1)
        order = torch.argsort(group, stable=True)
        counts = torch.bincount(group, minlength=self.num_groups).tolist()
        where = (torch.arange(n, device=tokens.device).unsqueeze(1) * n_loc + tokens % n_loc).reshape(-1)
        return order, counts, list(where.index_select(0, order).split(counts))

    def embed_selected(self, patches: torch.Tensor, tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """``embed_patches`` at the token indices ``tokens`` (N, K) only, (N, K, D): the masked encoder embeds just
        the tokens it keeps (a quarter of them at mask ratio 0.75) instead of embedding all and gathering."""
        n, n_loc = patches.shape[:2]
        order, _, where = self.rows_by_group(tokens, n_loc)
        flat = patches.reshape(n * n_loc, *patches.shape[2:])
        by_group = torch.cat([embed.embed_patches(flat[:, part].index_select(0, rows).flatten(1))
                              for embed, part, rows in zip(self.patch_embed, self.group_slices(), where)])
        embedded = by_group.new_empty(by_group.shape).index_copy(0, order, by_group).view(n, tokens.shape[1], -1)
        encoding = self.token_encoding(grid)[0].to(embedded.dtype).index_select(0, tokens.reshape(-1))
        return embedded + encoding.view_as(embedded)

    def embed_tokens(self, imgs: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """(N, C, H, W) -> encoded patch tokens (N, G*L, D), group-major, and the patch grid."""
        grid = self.grid_of(imgs)
        return self.embed_patches(self.group_patches(imgs), grid), grid

    # ------------------------------------------------------------------ init and optimiser helpers
    def _init_tokenizer(self, gen: torch.Generator) -> None:
        cfg = self.config
        d_pos = cfg.embed_dim - cfg.channel_embed
        self.pos_embed.data.copy_(sincos_2d(d_pos, cfg.grid, cfg.grid).unsqueeze(0))
        self.channel_embed.data.copy_(sincos_1d(cfg.channel_embed, torch.arange(cfg.num_groups)).unsqueeze(0))
        for embed in self.patch_embed:
            w = embed.proj.weight
            nn.init.xavier_uniform_(w.data.view(w.shape[0], -1), generator=gen)
            # PyTorch's default Conv2d bias init (uniform +-1/sqrt(fan_in)), drawn from our generator.
            bound = 1.0 / math.sqrt(w[0].numel())
            nn.init.uniform_(embed.proj.bias, -bound, bound, generator=gen)
        nn.init.normal_(self.cls_token, std=0.02, generator=gen)

    @staticmethod
    def _init_linear_and_norm(module: nn.Module, gen: torch.Generator) -> None:
        for m in module.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight, generator=gen)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def no_weight_decay(self) -> set[str]:
        """Parameter names that weight decay must skip (besides biases and norms)."""
        names = {n for n, _ in self.named_parameters()}
        return {n for n in NO_WEIGHT_DECAY if n in names}

    @property
    def num_layers(self) -> int:
        """Layer count for layer-wise lr decay: embeddings are layer 0, block i is i+1, the rest ``num_layers``."""
        return len(self.blocks) + 1

    def layer_id(self, param_name: str) -> int:
        name = param_name.removeprefix("module.")
        if name.startswith(("cls_token", "pos_embed", "channel_embed", "channel_cls_embed", "patch_embed",
                            "mask_token")):
            return 0
        if name.startswith("blocks."):
            return int(name.split(".")[1]) + 1
        return self.num_layers


def seeded_generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


def build_initialised(cls: type[GroupTokenizer], cfg: ModelConfig) -> GroupTokenizer:
    """Construct on the meta device (PyTorch's default inits would be overwritten anyway: skipping them makes
    a base model build several times faster, and leaves the global RNG untouched), then allocate and seed."""
    with torch.device("meta"):
        model = cls(cfg)
    model.to_empty(device="cpu")
    model._set_buffers()
    model.reset_parameters()
    return model
