"""Transformer building blocks with SatMAE's parameter names (``norm1``, ``attn.qkv``, ``attn.proj``, ``norm2``,
``mlp.fc1``, ``mlp.fc2``, ``proj``), so its checkpoints load without renaming.

Pre-norm blocks, LayerNorm eps 1e-6, one fused qkv projection with bias, exact GELU, attention through
``F.scaled_dot_product_attention`` (flash/memory-efficient kernels on CPU and GPU: the (tokens x tokens)
probabilities are never materialised, which is most of the speed-up over an explicit softmax).

``query_rows`` restricts a block's outputs to some tokens while its keys and values still come from all of them:
the MAE's last decoder block only needs the outputs of the removed tokens (the loss uses nothing else), so it
skips the queries, attention rows, projection and MLP of the rest. The outputs it does compute are the same
numbers as the full block's at those rows (up to float rounding).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

LN_EPS = 1e-6


def layer_norm(dim: int) -> nn.LayerNorm:
    return nn.LayerNorm(dim, eps=LN_EPS)


def _flat_rows(rows: torch.Tensor, length: int) -> torch.Tensor:
    """(N, M) row indices into sequences of ``length`` -> (N*M,) indices into the (N*length) flattened rows."""
    return (rows + torch.arange(rows.shape[0], device=rows.device).unsqueeze(1) * length).reshape(-1)


def take_rows(x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """(N, T, D), (N, M) indices -> (N, M, D): the rows ``rows[n]`` of each ``x[n]``.

    Whole rows by ``index_select`` on the flattened batch: several times faster on CPU than ``gather``, which
    indexes every element (and so is its backward, ``index_add`` against ``scatter_add``).
    """
    n, t, d = x.shape
    return x.reshape(n * t, d).index_select(0, _flat_rows(rows, t)).view(n, rows.shape[1], d)


def put_rows(base: torch.Tensor, rows: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``base`` (1 or N, T, D) broadcast to N sequences, with row ``rows[n, i]`` of sequence n replaced by
    ``values[n, i]`` ((N, M) indices, (N, M, D) values); a new (N, T, D) tensor. Row copies, like ``take_rows``."""
    n, m, d = values.shape
    t = base.shape[1]
    full = base.expand(n, t, d).reshape(n * t, d)
    return full.index_copy(0, _flat_rows(rows, t), values.reshape(n * m, d)).view(n, t, d)


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"width {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(
        self, x: torch.Tensor | None, query_rows: torch.Tensor | None = None, qkv: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(N, T, D) -> (N, T, D), or (N, M, D) for the rows ``query_rows`` (N, M) when given.

        ``qkv`` (N, T, 3D): ``self.qkv(x)`` already computed by the caller (then ``x`` is not read).
        """
        d = self.qkv.in_features
        heads, hd = self.num_heads, self.head_dim
        # q, k, v as (N, T, heads, head_dim) views of the projection: unbind's backward stacks their gradients
        # straight into the projection's layout (slicing would zero-fill one full-size gradient per slice).
        if qkv is None and query_rows is not None:
            # Keys and values from every token, queries only from the wanted rows.
            w_q, w_kv = self.qkv.weight.split([d, 2 * d])
            b_q, b_kv = self.qkv.bias.split([d, 2 * d])
            kv = F.linear(x, w_kv, b_kv)
            k, v = kv.view(*kv.shape[:2], 2, heads, hd).unbind(2)
            q = F.linear(take_rows(x, query_rows), w_q, b_q)
        else:
            if qkv is None:
                qkv = self.qkv(x)
            q, k, v = qkv.view(*qkv.shape[:2], 3, heads, hd).unbind(2)
            q = q.flatten(2)
            if query_rows is not None:
                q = take_rows(q, query_rows)
        n, tq = q.shape[:2]
        q, k, v = q.view(n, tq, heads, hd).transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v)  # scale defaults to head_dim ** -0.5, as in SatMAE
        return self.proj(out.transpose(1, 2).reshape(n, tq, d))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))  # exact (erf) GELU, as nn.GELU() in SatMAE


class DropPath(nn.Module):
    """Stochastic depth per sample; draws from ``generator`` when one is set (fine-tuning determinism)."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = float(p)
        self.generator: torch.Generator | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        draw = torch.rand(shape, generator=self.generator, device=x.device if self.generator is None else self.generator.device)
        mask = (draw.to(x.device) < keep).to(x.dtype) / keep
        return x * mask

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Block(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, drop_path: float = 0.0):
        super().__init__()
        self.norm1 = layer_norm(dim)
        self.attn = Attention(dim, num_heads)
        self.norm2 = layer_norm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(
        self, x: torch.Tensor, query_rows: torch.Tensor | None = None, qkv: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(N, T, D) -> (N, T, D); with ``query_rows`` (N, M), only those rows' outputs, (N, M, D).

        ``qkv``: ``attn.qkv(norm1(x))`` when the caller already has it (see ``SatMAE``'s decoder).
        """
        attended = self.drop_path(self.attn(self.norm1(x) if qkv is None else None, query_rows, qkv))
        x = (x if query_rows is None else take_rows(x, query_rows)) + attended
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchEmbed(nn.Module):
    """Conv2d(in_chans -> dim, kernel = stride = patch): (N, C, H, W) -> (N, H/p * W/p, dim), row-major."""

    def __init__(self, in_chans: int, dim: int, patch_size: int):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)

    def embed_patches(self, patches: torch.Tensor) -> torch.Tensor:
        """(..., in_chans * p * p) patch vectors, band-major then row-major pixels -> (..., dim).

        The same maths as ``forward`` (kernel = stride = patch makes the convolution one matmul per patch), run as
        a matmul on already cut patches: about twice as fast as the convolution forward + backward on CPU.
        """
        return F.linear(patches, self.proj.weight.flatten(1), self.proj.bias)
