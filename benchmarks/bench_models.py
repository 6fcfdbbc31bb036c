"""SatMAE training-step throughput on CPU: geodiv's MAE against the same maths written as SatMAE writes it.

One step = forward + backward + AdamW (betas 0.9/0.95, weight decay 0.05 on MAE's parameter groups), fp32,
96 px, patch 8, 10 bands in 3 groups, mask ratio 0.75, geodiv's default loss (each prediction row against its
own band). Both sides hold the same weights and see the same images and masking noise, so they train the same
model to the same loss (checked before timing; tests/models check the gradients too).

Baseline ("reference form"): the operations of SatMAE's code (``models_mae_group_channels``) on the same
parameters: per-group ``Conv2d`` patch embedding on bands picked by advanced indexing, ``stack``, position/group
tables by ``expand`` + ``cat``, argsort masking with ``gather``; timm-0.3 blocks (``x + attn(norm1(x))``,
``x + fc2(GELU(fc1(norm2(x))))``) with explicit attention ``softmax((q @ k^T) * scale) @ v``; decoder mask
tokens by ``repeat`` + ``cat`` + ``gather`` unshuffle, per-group ``Linear`` predictions on every token with
``einsum``; ``einsum`` patchify and a per-group loop in the loss; the prediction rows put into band order (one
``index_select``, the only change to SatMAE's code: it fixes SatMAE's band-order defect, which geodiv's default
loss fixes too); the default ``torch.optim.AdamW`` (its per-tensor loop on CPU).

Candidate: ``SatMAE.forward(imgs, 0.75, noise, return_pred=False)`` with ``AdamW(fused=True)``. It computes the
same loss and gradients (up to float rounding) with: ``F.scaled_dot_product_attention`` (flash kernel: no tokens x
tokens matrix stored for backward); patch embedding of only the kept patches, as a matmul; visible tokens copied
among the mask tokens by row; the first decoder block's norm + qkv of the mask tokens once per place instead of
once per sample; the last decoder block, the prediction layers and the loss on the removed tokens only.

Steps of the two alternate (the order swapping every step) so that load from other processes hits both alike;
medians are reported. FLOPs come from ``torch.utils.flop_counter`` on the reference step (matmuls, convolutions,
attention bmm, forward and backward): "achieved GFLOP/s" is the model's FLOPs per step / median step time for
both sides (the candidate skips some of them, so for it this is throughput in model FLOPs, as MFU counts them).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from geodiv.models import SatMAE, build_mae, param_groups
from geodiv.models.blocks import Attention, Block

TARGET = ">= 1.5x reference"


# ------------------------------------------------------------------------------------- the reference form
class ExplicitAttention(nn.Module):
    """Attention as the reference (timm 0.3 ``Attention``) writes it, sharing ``qkv``/``proj`` with a geodiv one."""

    def __init__(self, attn: Attention):
        super().__init__()
        self.qkv, self.proj, self.num_heads = attn.qkv, attn.proj, attn.num_heads
        self.scale = attn.head_dim**-0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q @ k.transpose(-2, -1)) * self.scale
        attn = attn.softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(b, n, c)
        return self.proj(x)


class ReferenceBlock(nn.Module):
    """timm 0.3's pre-norm ``Block`` (as SatMAE uses it), over the parameters of a geodiv ``Block``."""

    def __init__(self, block: Block):
        super().__init__()
        self.norm1, self.attn, self.norm2 = block.norm1, ExplicitAttention(block.attn), block.norm2
        self.fc1, self.act, self.fc2 = block.mlp.fc1, nn.GELU(), block.mlp.fc2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(self.act(self.fc1(self.norm2(x))))


class ReferenceFormMAE(nn.Module):
    """The same parameters as a geodiv ``SatMAE``, run through the reference code's sequence of operations."""

    def __init__(self, mae: SatMAE):
        super().__init__()
        self.m = mae
        self.blocks = nn.ModuleList(ReferenceBlock(b) for b in mae.blocks)
        self.decoder_blocks = nn.ModuleList(ReferenceBlock(b) for b in mae.decoder_blocks)

    def forward(self, imgs: torch.Tensor, mask_ratio: float, noise: torch.Tensor) -> torch.Tensor:
        m = self.m
        groups = m.channel_groups
        p = m.config.patch_size
        n = imgs.shape[0]
        # encoder: per-group embedding, stacked (N, G, L, D), tables by expand + cat
        x = torch.stack([m.patch_embed[i](imgs[:, list(g), :, :]) for i, g in enumerate(groups)], dim=1)
        _, g_, l_, d = x.shape
        pos = m.pos_embed[:, 1:, :].unsqueeze(1).expand(-1, g_, -1, -1)
        chan = m.channel_embed.unsqueeze(2).expand(-1, -1, l_, -1)
        x = (x + torch.cat((pos, chan), dim=-1)).view(n, -1, d)
        len_keep = int(x.shape[1] * (1 - mask_ratio))
        ids_shuffle = torch.argsort(noise, dim=1)
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        ids_keep = ids_shuffle[:, :len_keep]
        x = torch.gather(x, 1, ids_keep.unsqueeze(-1).repeat(1, 1, d))
        mask = torch.ones(n, g_ * l_, device=x.device)
        mask[:, :len_keep] = 0
        mask = torch.gather(mask, 1, ids_restore).view(n, g_, l_)
        x = torch.cat((m.cls_token.expand(n, -1, -1), x), dim=1)
        for blk in self.blocks:
            x = blk(x)
        x = m.norm(x)
        # decoder: append mask tokens, unshuffle with gather, tables by expand + cat
        x = m.decoder_embed(x)
        dd = x.shape[-1]
        mask_tokens = m.mask_token.repeat(n, ids_restore.shape[1] + 1 - x.shape[1], 1)
        x_ = torch.cat([x[:, 1:, :], mask_tokens], dim=1)
        x_ = torch.gather(x_, 1, ids_restore.unsqueeze(-1).repeat(1, 1, dd)).view(n, g_, l_, dd)
        dpos = m.decoder_pos_embed[:, 1:, :].unsqueeze(1).expand(-1, g_, -1, -1)
        dchan = m.decoder_channel_embed[:, :-1, :].unsqueeze(2).expand(-1, -1, l_, -1)
        x_ = (x_ + torch.cat((dpos, dchan), dim=-1)).view(n, -1, dd)
        cls_enc = torch.cat((m.decoder_pos_embed[:, :1, :], m.decoder_channel_embed[:, -1:, :]), dim=-1)
        x = torch.cat((x[:, :1, :] + cls_enc, x_), dim=1)
        for blk in self.decoder_blocks:
            x = blk(x)
        x = m.decoder_norm(x)[:, 1:, :].view(n, g_, l_, -1)
        preds = []
        for i, g in enumerate(groups):
            dec = m.decoder_pred[i](x[:, i]).view(n, l_, len(g), p * p)
            preds.append(torch.einsum("nlcp->nclp", dec))
        pred = torch.cat(preds, dim=1)  # rows in group order (bands 0,1,2,6,3,... for the default groups)
        # geodiv's default loss order: row j compared with its own band (SatMAE compares it with band j; the
        # permutation costs one index_select and changes no FLOPs).
        concat = torch.tensor([b for g in groups for b in g], device=pred.device)
        pred = pred.index_select(1, torch.argsort(concat))
        # loss: einsum patchify, per-group loop
        h = imgs.shape[2] // p
        target = imgs.reshape(n, imgs.shape[1], h, p, h, p)
        target = torch.einsum("nchpwq->nhwcpq", target).reshape(n, h * h, imgs.shape[1], p * p)
        target = torch.einsum("nlcp->nclp", target)
        loss = ((pred - target) ** 2).mean(dim=-1)
        total, removed = 0.0, 0.0
        for i, g in enumerate(groups):
            group_loss = loss[:, list(g), :].mean(dim=1)
            total = total + (group_loss * mask[:, i]).sum()
            removed = removed + mask[:, i].sum()
        return total / removed


# ------------------------------------------------------------------------------------------- measuring
def _adamw(model: nn.Module, fused: bool) -> torch.optim.Optimizer:
    kwargs = {"fused": True} if fused else {}
    return torch.optim.AdamW(param_groups(model, 0.05), lr=1e-4, betas=(0.9, 0.95), **kwargs)


def _step_fn(loss_of: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], opt: torch.optim.Optimizer):
    def step(imgs: torch.Tensor, noise: torch.Tensor) -> float:
        opt.zero_grad(set_to_none=True)
        loss = loss_of(imgs, noise)
        loss.backward()
        opt.step()
        return float(loss.detach())

    return step


def _bench_preset(preset: str, batch: int, steps: int, warmup: int, threads: int) -> list[dict]:
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _measure(preset, batch, steps, warmup)
    finally:
        torch.set_num_threads(previous_threads)


def _measure(preset: str, batch: int, steps: int, warmup: int) -> list[dict]:
    gen = torch.Generator().manual_seed(0)
    fast = build_mae(preset, img_size=96, patch_size=8)
    ref = ReferenceFormMAE(build_mae(preset, img_size=96, patch_size=8))
    n_tokens = fast.num_groups * fast.config.grid**2
    imgs = torch.rand(batch, fast.config.in_chans, 96, 96, generator=gen)
    noises = [torch.rand(batch, n_tokens, generator=gen) for _ in range(warmup + steps)]

    # Same weights, same inputs: the two forms compute the same loss.
    with torch.no_grad():
        a = fast(imgs, 0.75, noises[0], return_pred=False)[0].item()
        b = ref(imgs, 0.75, noises[0]).item()
    if abs(a - b) > 1e-4 * max(abs(b), 1.0):
        raise AssertionError(f"{preset}: geodiv loss {a} differs from the reference form's {b}")

    flops = FlopCounterMode(display=False)
    with flops:
        ref(imgs, 0.75, noises[0]).backward()
    ref.zero_grad(set_to_none=True)
    flops_per_step = flops.get_total_flops()

    fast_step = _step_fn(lambda x, z: fast(x, 0.75, z, return_pred=False)[0], _adamw(fast, fused=True))
    ref_step = _step_fn(lambda x, z: ref(x, 0.75, z), _adamw(ref, fused=False))
    t_fast, t_ref = [], []
    for i, noise in enumerate(noises):
        pair = ((fast_step, t_fast), (ref_step, t_ref))
        for step, times in pair if i % 2 == 0 else pair[::-1]:
            t0 = time.perf_counter()
            step(imgs, noise)
            if i >= warmup:
                times.append(time.perf_counter() - t0)
    med_fast, med_ref = statistics.median(t_fast), statistics.median(t_ref)
    sps_fast, sps_ref = batch / med_fast, batch / med_ref
    threads = torch.get_num_threads()
    note = (f"fp32 CPU, {threads} thread{'s' if threads > 1 else ''}, batch {batch}, 96 px, patch 8, mask 0.75, "
            f"median of {steps} interleaved steps; {flops_per_step / batch / 1e9:.2f} GFLOP per sample per step; "
            "baseline: SatMAE's code's operations (explicit softmax attention, default AdamW), see the module doc")
    name = f"models: {preset} MAE train step (fwd+bwd+AdamW), {threads} thread{'s' if threads > 1 else ''}"
    return [
        {"benchmark": name, "value": sps_fast, "unit": "samples/s",
         "baseline": sps_ref, "ratio": sps_fast / sps_ref, "target": TARGET, "note": note},
        {"benchmark": name.replace("train step (fwd+bwd+AdamW)", "achieved GFLOP/s"),
         "value": flops_per_step / med_fast / 1e9, "unit": "GFLOP/s", "baseline": flops_per_step / med_ref / 1e9,
         "ratio": med_ref / med_fast, "target": TARGET, "note": note},
    ]


def run(quick: bool = False) -> list[dict]:
    rows = []
    for threads in (1, 2):
        rows += _bench_preset("tiny", batch=8, steps=6 if quick else 30, warmup=2, threads=threads)
    rows += _bench_preset("base", batch=4, steps=2 if quick else 6, warmup=1, threads=1)
    return rows


if __name__ == "__main__":
    import sys

    for row in run(quick="--quick" in sys.argv):
        ratio = f"{row['ratio']:.2f}x" if row["ratio"] is not None else "-"
        print(f"{row['benchmark']:60s} {row['value']:10.2f} {row['unit']:10s} baseline {row['baseline']:.2f}  "
              f"{ratio}  ({row['note']})")
