"""Row-restricted blocks and the matmul patch embedding compute what the plain forms compute."""

import torch
import torch.nn.functional as F

from geodiv.models.blocks import Block, PatchEmbed, put_rows, take_rows


def _rows(n, t, m, seed):
    gen = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randperm(t, generator=gen)[:m] for _ in range(n)])


def test_take_and_put_rows_match_gather_and_scatter():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 7, 5, generator=gen)
    rows = _rows(3, 7, 4, 1)
    index = rows.unsqueeze(-1).expand(-1, -1, 5)
    assert torch.equal(take_rows(x, rows), torch.gather(x, 1, index))
    base = torch.randn(1, 7, 5, generator=gen)
    values = torch.randn(3, 4, 5, generator=gen)
    assert torch.equal(put_rows(base, rows, values), base.expand(3, -1, -1).scatter(1, index, values))


def _grads(block, x, out, weight):
    (out * weight).sum().backward()
    grads = {n: p.grad.clone() for n, p in block.named_parameters()}
    grads["input"] = x.grad.clone()
    block.zero_grad(set_to_none=True)
    x.grad = None
    return grads


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-5 * float(a[name].abs().max()), msg=name)


def test_query_rows_give_the_full_blocks_outputs_and_gradients_at_those_rows():
    torch.manual_seed(0)
    block = Block(32, num_heads=4)
    for p in block.parameters():  # non-zero biases, so every term shows
        torch.nn.init.normal_(p, std=0.2)
    x = torch.randn(2, 9, 32, requires_grad=True)
    rows = _rows(2, 9, 5, 2)
    weight = torch.randn(2, 5, 32)
    full = block(x)
    expected = take_rows(full, rows)
    want = _grads(block, x, expected, weight)
    got_out = block(x, query_rows=rows)
    torch.testing.assert_close(got_out, expected, rtol=1e-5, atol=1e-6)
    _assert_same(want, _grads(block, x, got_out, weight))


def test_a_precomputed_qkv_gives_the_same_block():
    torch.manual_seed(1)
    block = Block(24, num_heads=3)
    x = torch.randn(2, 6, 24, requires_grad=True)
    weight = torch.randn(2, 6, 24)
    want = _grads(block, x, block(x), weight)
    out = block(x, qkv=block.attn.qkv(block.norm1(x)))
    torch.testing.assert_close(out, block(x), rtol=1e-6, atol=1e-6)
    _assert_same(want, _grads(block, x, out, weight))
    rows = _rows(2, 6, 2, 3)
    torch.testing.assert_close(block(x, query_rows=rows, qkv=block.attn.qkv(block.norm1(x))),
                               take_rows(block(x), rows), rtol=1e-5, atol=1e-6)


def test_matmul_patch_embedding_equals_the_convolution():
    torch.manual_seed(2)
    embed = PatchEmbed(3, 16, patch_size=4)
    imgs = torch.randn(2, 3, 8, 12)
    # patches (N, L, C*p*p): band-major, then row-major pixels, patches row-major, cut independently by unfold
    patches = F.unfold(imgs, kernel_size=4, stride=4).transpose(1, 2)
    torch.testing.assert_close(embed.embed_patches(patches), embed(imgs), rtol=1e-5, atol=1e-5)
