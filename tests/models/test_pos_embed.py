import math

import pytest
import torch

from geodiv.errors import ConfigError
from geodiv.models.pos_embed import interpolate_grid_table, sincos_1d, sincos_2d


def test_sincos_2d_layout():
    table = sincos_2d(8, 3, 4)  # 3 rows x 4 columns, width 8: columns in dims 0-3, rows in dims 4-7
    assert table.shape == (13, 8) and torch.count_nonzero(table[0]) == 0
    token = 1 + 2 * 4 + 1  # row 2, column 1
    # 1D half of width 4: frequencies 1 and 1/100; layout sin(f0), sin(f1), cos(f0), cos(f1)
    expected_col = [math.sin(1), math.sin(0.01), math.cos(1), math.cos(0.01)]
    expected_row = [math.sin(2), math.sin(0.02), math.cos(2), math.cos(0.02)]
    torch.testing.assert_close(table[token], torch.tensor(expected_col + expected_row))
    torch.testing.assert_close(sincos_1d(4, torch.tensor([0.0])), torch.tensor([[0.0, 0.0, 1.0, 1.0]]))
    with pytest.raises(ConfigError, match="divisible by 4"):
        sincos_2d(6, 2, 2)


def test_interpolation_keeps_cls_and_is_identity_on_the_same_grid():
    table = sincos_2d(16, 4, 4).unsqueeze(0)
    assert interpolate_grid_table(table, (4, 4), (4, 4)) is table
    bigger = interpolate_grid_table(table, (4, 4), (6, 8))
    assert bigger.shape == (1, 1 + 48, 16)
    torch.testing.assert_close(bigger[:, 0], table[:, 0])
    # a table that is constant over the grid stays constant (bicubic weights sum to one)
    flat = torch.cat([torch.zeros(1, 1, 4), torch.full((1, 16, 4), 0.5)], dim=1)
    torch.testing.assert_close(interpolate_grid_table(flat, (4, 4), (7, 7))[:, 1:], torch.full((1, 49, 4), 0.5))
