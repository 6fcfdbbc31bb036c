"""Fixed sin-cos encodings of patch position and channel group, and their interpolation to other grids.

The conventions are those of MAE/SatMAE, so that tables computed here equal the ones stored in their
checkpoints: a 1D table over positions ``p`` is ``cat(sin(p * w), cos(p * w))`` with
``w_i = 1 / 10000 ** (i / (dim / 2))``; the 2D table spends its first half on the column and its second
half on the row of a row-major grid, and has an all-zero row 0 for the cls slot.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from geodiv.errors import ConfigError


def sincos_1d(dim: int, positions: torch.Tensor) -> torch.Tensor:
    """(len(positions), dim) table; ``dim`` must be even."""
    if dim % 2:
        raise ConfigError(f"a sin-cos encoding needs an even width, got {dim}")
    omega = torch.arange(dim // 2, dtype=torch.float64) / (dim / 2.0)
    omega = 1.0 / 10000**omega
    angles = positions.to(torch.float64).reshape(-1, 1) * omega.reshape(1, -1)
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1).float()


def sincos_2d(dim: int, grid_h: int, grid_w: int, cls_slot: bool = True) -> torch.Tensor:
    """(cls_slot + grid_h * grid_w, dim) table, row-major tokens; first half columns, second half rows."""
    if dim % 4:
        raise ConfigError(
            f"the 2D position encoding needs a width divisible by 4, got {dim} "
            "(embed_dim - channel_embed, or decoder_embed_dim - decoder_channel_embed)"
        )
    rows = torch.arange(grid_h).repeat_interleave(grid_w)
    cols = torch.arange(grid_w).repeat(grid_h)
    table = torch.cat([sincos_1d(dim // 2, cols), sincos_1d(dim // 2, rows)], dim=1)
    if cls_slot:
        table = torch.cat([torch.zeros(1, dim), table], dim=0)
    return table


def interpolate_grid_table(table: torch.Tensor, old_grid: tuple[int, int], new_grid: tuple[int, int]) -> torch.Tensor:
    """Resample the patch rows of a (1, extra + Ho*Wo, D) table to a new grid (bicubic), keeping the extra rows.

    This is what MAE/SatMAE fine-tuning does when a checkpoint meets another input size; ``extra`` is the
    number of leading non-patch rows (the cls slot), deduced from the table length.
    """
    old_h, old_w = old_grid
    new_h, new_w = new_grid
    n_extra = table.shape[1] - old_h * old_w
    if n_extra < 0:
        raise ConfigError(f"position table of {table.shape[1]} rows is smaller than the {old_h}x{old_w} grid")
    if (old_h, old_w) == (new_h, new_w):
        return table
    extra, patches = table[:, :n_extra], table[:, n_extra:]
    dim = table.shape[-1]
    grid = patches.reshape(1, old_h, old_w, dim).permute(0, 3, 1, 2)
    grid = F.interpolate(grid.float(), size=(new_h, new_w), mode="bicubic", align_corners=False)
    patches = grid.permute(0, 2, 3, 1).reshape(1, new_h * new_w, dim).to(table.dtype)
    return torch.cat([extra, patches], dim=1)
