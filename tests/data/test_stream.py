import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from geodiv.bands import SATMAE_BANDS
from geodiv.data import stream as stream_mod
from geodiv.data.normalize import satmae_normalize
from geodiv.data.shard_reader import iter_samples, read_manifest
from geodiv.data.shard_writer import write_shards
from geodiv.data.stream import ShardStream
from geodiv.errors import DataError, InputError


def _keys(stream):
    return [meta["key"] for _, meta in stream]


def test_raw_eval_stream_reproduces_the_stored_pixels(small_dataset):
    s = ShardStream(small_dataset, normalize="raw", augment="none", shuffle=False, with_meta=True)
    got = list(s)
    want = list(iter_samples(small_dataset))
    assert [m["key"] for _, m in got] == [k for k, _, _ in want]
    for (x, _), (_, image, _) in zip(got, want):
        assert x.dtype == torch.float32 and x.shape == (10, 16, 16)
        np.testing.assert_array_equal(x.numpy(), image.astype(np.float32))


def test_satmae_normalisation_and_band_selection(small_dataset):
    s = ShardStream(small_dataset, bands=["B4", "B3", "B2"], normalize="satmae", augment="none", shuffle=False)
    x = next(iter(s))
    _, image, _ = next(iter_samples(small_dataset))
    idx = [SATMAE_BANDS.index(b) for b in ("B4", "B3", "B2")]
    np.testing.assert_array_equal(x.numpy(), satmae_normalize(image[idx], ["B4", "B3", "B2"]))


def test_zscore_uses_dataset_statistics(small_dataset):
    s = ShardStream(small_dataset, normalize="zscore", augment="none", shuffle=False)
    xs = torch.stack(list(s))
    # the manifest statistics describe the whole dataset, so the streamed values are standardised
    assert xs.mean(dim=(0, 2, 3)).abs().max() < 1e-4
    assert (xs.std(dim=(0, 2, 3), unbiased=False) - 1).abs().max() < 1e-4


def test_shuffled_epochs_cover_every_sample_once_and_differ(small_dataset):
    s = ShardStream(small_dataset, augment="train", size=8, shuffle_buffer=5, seed=3, epochs=2, with_meta=True)
    keys = _keys(s)
    n = read_manifest(small_dataset)["n_samples"]
    assert len(keys) == 2 * n
    assert sorted(keys[:n]) == sorted(keys[n:]) and len(set(keys[:n])) == n
    assert keys[:n] != keys[n:]
    again = ShardStream(small_dataset, augment="train", size=8, shuffle_buffer=5, seed=3, epochs=2, with_meta=True)
    a, b = list(s), list(again)
    assert all(torch.equal(x, y) for (x, _), (y, _) in zip(a, b))  # deterministic for a seed
    other = ShardStream(small_dataset, augment="train", size=8, shuffle_buffer=5, seed=4, with_meta=True)
    assert _keys(other) != keys[:n]


@pytest.mark.parametrize("world", [2, 3, 6])
def test_ranks_split_the_data_disjointly(small_dataset, monkeypatch, world):
    parts = []
    for rank in range(world):
        monkeypatch.setattr(stream_mod, "dist_rank_world", lambda r=rank: (r, world))
        s = ShardStream(small_dataset, augment="none", shuffle_buffer=3, seed=1, with_meta=True, equal_split=False)
        parts.append(_keys(s))
    flat = [k for p in parts for k in p]
    assert len(flat) == len(set(flat)) == read_manifest(small_dataset)["n_samples"]
    # equal_split (the default under DDP) gives every rank the same count
    counts = []
    for rank in range(world):
        monkeypatch.setattr(stream_mod, "dist_rank_world", lambda r=rank: (r, world))
        s = ShardStream(small_dataset, augment="none", seed=1)
        counts.append(len(list(s)))
        assert counts[-1] == s.samples_per_epoch()
    assert len(set(counts)) == 1


def test_dataloader_workers_cover_every_sample_once(small_dataset):
    s = ShardStream(small_dataset, augment="train", size=8, seed=0, with_meta=True)
    loader = DataLoader(s, batch_size=4, num_workers=2, collate_fn=ShardStream.collate)
    keys = [k for x, metas in loader for k in (m["key"] for m in metas)]
    assert sorted(keys) == sorted(k for k, _, _ in iter_samples(small_dataset))


@pytest.mark.parametrize("workers", [0, 2, 3])
def test_whole_batches_gives_the_same_batches_without_the_dropped_tail(small_dataset, monkeypatch, workers):
    def make(whole):
        s = ShardStream(small_dataset, augment="train", size=8, shuffle_buffer=3, seed=2, whole_batches=whole)
        s.load_state_dict({"epoch": 0, "batches_done": 0, "batch_size": 3})
        return s

    def batches(whole):
        return list(DataLoader(make(whole), batch_size=3, num_workers=workers, drop_last=True))

    plain, whole = batches(False), batches(True)
    assert len(plain) == len(whole) > 0 and all(torch.equal(a, b) for a, b in zip(plain, whole))
    # what each worker yields: without whole_batches the DataLoader throws the worker's partial last batch away
    # after it was decoded; with it, the worker stops at its last whole batch (13 samples in shards of 4, 4, 4, 1
    # over 3 workers, batch 3)
    held, kept = [], []
    for w in range(3):
        monkeypatch.setattr(stream_mod, "get_worker_info", lambda w=w: type("I", (), {"id": w, "num_workers": 3}))
        held.append(len(list(make(False))))
        kept.append(len(list(make(True))))
        assert kept[-1] == held[-1] - held[-1] % 3
    assert sum(held) == 13 and sum(kept) < 13
    assert make(True).samples_per_epoch() == sum(kept) and make(False).samples_per_epoch() == 13
    # asked from the process that makes the loader: the same count for 3 workers
    assert make(True).samples_per_epoch(num_workers=3) == sum(kept) and make(True).samples_per_epoch(0) == 12


def test_resume_continues_the_stream_exactly(small_dataset):
    def make():
        return ShardStream(small_dataset, augment="train", size=8, shuffle_buffer=4, seed=9, epochs=1)

    full = list(make())
    resumed = make()
    resumed.load_state_dict({"epoch": 0, "batches_done": 2, "batch_size": 3, "seed": 9})
    rest = list(resumed)
    assert len(rest) == len(full) - 6
    assert all(torch.equal(a, b) for a, b in zip(rest, full[6:]))
    # with DataLoader workers: batch j came from worker j % 2
    loader_full = [b for b in DataLoader(make(), batch_size=2, num_workers=2)]
    s = make()
    s.load_state_dict({"epoch": 0, "batches_done": 3, "batch_size": 2})
    loader_rest = [b for b in DataLoader(s, batch_size=2, num_workers=2)]
    assert len(loader_rest) == len(loader_full) - 3
    assert all(torch.equal(a, b) for a, b in zip(loader_rest, loader_full[3:]))


def test_an_endless_stream_runs_the_passes_back_to_back_and_resumes_across_them(small_dataset):
    """epochs=None (pretraining's one loader per run): pass after pass in the same workers; a restart after k
    batches, k spanning passes, continues exactly (whole passes skipped unread)."""
    import itertools

    def make(epochs, first=0, done=0, batch=1):
        s = ShardStream(small_dataset, augment="train", size=8, shuffle_buffer=3, seed=4, epochs=epochs,
                        whole_batches=True)
        s.load_state_dict({"epoch": first, "batches_done": done, "batch_size": batch})
        return s

    passes = [x for e in range(3) for x in make(1, first=e)]
    endless = list(itertools.islice(make(None), 39))
    assert len(passes) == 39 and all(torch.equal(a, b) for a, b in zip(endless, passes))

    def loader(done):  # 2 workers, batch 2: about 6 whole batches per pass (the shares change with the shard order)
        return DataLoader(make(None, first=1, done=done, batch=2), batch_size=2, num_workers=2, drop_last=True)

    straight = list(itertools.islice(loader(0), 20))
    for done in (3, 6, 11):
        rest = list(itertools.islice(loader(done), 20 - done))
        assert all(torch.equal(a, b) for a, b in zip(rest, straight[done:], strict=True)), done


def test_an_endless_stream_with_no_whole_batch_fails_instead_of_hanging(small_dataset):
    s = ShardStream(small_dataset, epochs=None, whole_batches=True)
    s.load_state_dict({"epoch": 0, "batches_done": 0, "batch_size": 16})  # 13 samples
    with pytest.raises(DataError, match="no whole batch of 16 in 3 passes in a row"):
        next(iter(s))


def test_labels_and_masks(tmp_path):
    from .datakit import synthetic_samples

    write_shards(synthetic_samples(5, label=True), tmp_path / "seg", shard_size=2, bands=SATMAE_BANDS)
    s = ShardStream(tmp_path / "seg", augment="eval", size=16, shuffle=False, label="label")
    x, y = next(iter(s))
    assert x.shape == (10, 16, 16) and y.shape == (16, 16) and y.dtype == torch.uint8
    s = ShardStream(tmp_path / "seg", augment="none", shuffle=False, label="idx")
    assert [int(y) for _, y in s] == [0, 1, 2, 3, 4]
    with pytest.raises(DataError, match="no label field 'nope'"):
        next(iter(ShardStream(tmp_path / "seg", label="nope")))


def test_errors(small_dataset):
    with pytest.raises(InputError, match="lacks band"):
        ShardStream(small_dataset, bands=["B1"])
    path = small_dataset / read_manifest(small_dataset)["shards"][2]["path"]
    data = bytearray(path.read_bytes())
    data[1500] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="shard-000002.tar: checksum mismatch"):
        list(ShardStream(small_dataset, shuffle=False))
    s = ShardStream(small_dataset, shuffle=False, on_error="skip")
    assert len(list(s)) == 13 - 4


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_stream_equals_crop_normalise_then_torch_bicubic_antialias(small_dataset, mode):
    """The fast path (fused LUT gather in transposed layout, banded sparse resampling) against the direct way."""
    import torch.nn.functional as F

    from geodiv.data.transforms import Augment

    size = 24
    s = ShardStream(small_dataset, augment=mode, size=size, shuffle=False, seed=5, bands=["B8", "B2", "B3"])
    got = list(s)
    aug = Augment(mode, size)
    rng = np.random.default_rng([5, 0, 0])  # the stream's generator: (seed, epoch, global worker)
    idx = [SATMAE_BANDS.index(b) for b in ("B8", "B2", "B3")]
    flips = 0
    for x, (_, image, _) in zip(got, iter_samples(small_dataset), strict=True):
        p = aug.params(16, 16, rng)
        crop = torch.from_numpy(satmae_normalize(image[idx], ["B8", "B2", "B3"]))
        crop = crop[:, p.top : p.top + p.height, p.left : p.left + p.width]
        if mode == "train":
            want = F.interpolate(crop[None], size=(size, size), mode="bicubic", align_corners=False, antialias=True)[0]
            want = torch.flip(want, dims=(-1,)) if p.flip else want
        else:
            big = F.interpolate(crop[None], size=(27, 27), mode="bicubic", align_corners=False, antialias=True)[0]
            want = big[:, 2:26, 2:26]
        flips += p.flip
        assert x.shape == (3, size, size) and x.is_contiguous()
        torch.testing.assert_close(x, want, atol=2e-5, rtol=0)
    assert mode == "eval" or 0 < flips < len(got)


@pytest.mark.parametrize("mode", ["train", "eval", "none"])
@pytest.mark.parametrize("normalize", ["satmae", "zscore"])
def test_device_transform_of_whole_batches_equals_the_worker_path(small_dataset, mode, normalize):
    """transform_on="device": the stream yields stored pixels and crops, BatchCropResample makes the same inputs
    as the per-sample kernel (same crops and flips, same tables; only the summation order differs)."""
    size = 16 if mode == "none" else 24
    kw = {"augment": mode, "size": size, "seed": 3, "shuffle_buffer": 5, "bands": ["B8", "B2", "B3", "B11"],
          "normalize": normalize}
    want = torch.cat(list(DataLoader(ShardStream(small_dataset, **kw), batch_size=5)))
    device = ShardStream(small_dataset, transform_on="device", **kw)
    transform = device.batch_transform()
    batches = list(DataLoader(device, batch_size=5))
    pixels, crops = batches[0]
    assert pixels.dtype == torch.int16 and pixels.shape == (5, 4, 16, 16) and crops.shape == (5, 5)
    got = torch.cat([transform(p, c) for p, c in batches])
    assert got.shape == want.shape == (13, 4, size, size)
    torch.testing.assert_close(got, want, atol=2e-6, rtol=1e-6)
    if mode == "train":  # crops of several sizes and both flips were exercised
        every = torch.cat([c for _, c in batches])
        assert len(set(every[:, 2].tolist())) > 3 and 0 < int(every[:, 4].sum()) < 13


def test_device_transform_reads_levels_above_32767_and_refuses_what_it_cannot_do(small_dataset, tmp_path):
    """uint16 levels travel as int16 bit patterns: bright pixels (>= 32768) must come back as themselves."""
    from geodiv.errors import ConfigError

    out = tmp_path / "bright"
    image = np.full((10, 16, 16), 40000, np.uint16)
    image[:, :8] = 1000
    write_shards([("b0", image, {"lat": 0.0, "lon": 0.0})], out, shard_size=1, bands=SATMAE_BANDS)
    s = ShardStream(out, normalize="raw", augment="none", transform_on="device", shuffle=False)
    pixels, crop = next(iter(s))
    x = s.batch_transform()(pixels[None], crop[None])[0]
    np.testing.assert_allclose(x.numpy(), image.astype(np.float32), rtol=1e-6)
    with pytest.raises(ConfigError, match="labels and metadata need"):
        ShardStream(small_dataset, transform_on="device", with_meta=True)
    with pytest.raises(ConfigError, match="transform_on must be"):
        ShardStream(small_dataset, transform_on="gpu")
    with pytest.raises(ConfigError, match="given pixels of shape"):
        s.batch_transform()(pixels[None, :3], crop[None])
