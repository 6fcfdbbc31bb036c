import json
import tarfile

import numpy as np
import pytest

from geodiv.bands import SATMAE_BANDS
from geodiv.data.shard_format import Sample
from geodiv.data.shard_reader import iter_samples, read_manifest, verify_dataset
from geodiv.data.shard_writer import write_shards
from geodiv.errors import DataError

from .datakit import synthetic_samples


def test_roundtrip_images_meta_and_extra_arrays(tmp_path):
    originals = list(synthetic_samples(7, label=True))
    manifest = write_shards(originals, tmp_path / "ds", shard_size=3, bands=SATMAE_BANDS)
    assert manifest["n_samples"] == 7
    assert [s["n"] for s in manifest["shards"]] == [3, 3, 1]
    assert manifest["bands"] == list(SATMAE_BANDS) and manifest["size"] == 16
    assert manifest["counts"]["continent"] == {"Africa": 2, "Asia": 2, "Europe": 3}
    got = list(iter_samples(tmp_path / "ds"))
    assert [k for k, _, _ in got] == [s.key for s in originals]
    for (_key, image, meta), s in zip(got, originals):
        assert image.dtype == np.uint16 and np.array_equal(image, s.image)
        assert meta["idx"] == s.meta["idx"] and meta["lat"] == s.meta["lat"]
        assert np.array_equal(meta["label"], s.arrays["label"])


def test_manifest_statistics_match_numpy(tmp_path):
    originals = list(synthetic_samples(9))
    m = write_shards(originals, tmp_path / "ds", shard_size=4, bands=SATMAE_BANDS)
    stack = np.stack([s.image for s in originals]).astype(np.float64)
    for b, name in enumerate(SATMAE_BANDS):
        st = m["stats"][name]
        assert st["mean"] == pytest.approx(stack[:, b].mean(), rel=1e-12)
        assert st["std"] == pytest.approx(stack[:, b].std(), rel=1e-9)
        assert st["min"] == stack[:, b].min() and st["max"] == stack[:, b].max()


def test_shards_are_byte_deterministic(tmp_path):
    a = write_shards(synthetic_samples(5), tmp_path / "a", shard_size=2, bands=SATMAE_BANDS)
    b = write_shards(synthetic_samples(5), tmp_path / "b", shard_size=2, bands=SATMAE_BANDS)
    assert [s["sha256"] for s in a["shards"]] == [s["sha256"] for s in b["shards"]]
    # readable by any tar tool, WebDataset naming
    with tarfile.open(tmp_path / "a" / a["shards"][0]["path"]) as tar:
        assert tar.getnames() == ["k00000.json", "k00000.npy", "k00001.json", "k00001.npy"]


def test_checksum_mismatch_names_the_shard(small_dataset):
    m = read_manifest(small_dataset)
    path = small_dataset / m["shards"][1]["path"]
    data = bytearray(path.read_bytes())
    data[2000] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"shard-000001\.tar: checksum mismatch"):
        list(iter_samples(small_dataset))
    with pytest.raises(DataError, match="checksum"):
        verify_dataset(small_dataset, deep=False)


def test_truncated_shard_is_an_error_even_unverified(small_dataset):
    m = read_manifest(small_dataset)
    path = small_dataset / m["shards"][0]["path"]
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DataError, match=r"shard-000000\.tar"):
        list(iter_samples(small_dataset, verify=False))


def test_missing_metadata_member_names_sample(tmp_path, small_dataset):
    m = read_manifest(small_dataset)
    path = small_dataset / m["shards"][0]["path"]
    with tarfile.open(path) as tar:
        members = [(t, tar.extractfile(t).read()) for t in tar.getmembers() if t.name != "k00001.json"]
    with tarfile.open(path, "w") as tar:
        for t, data in members:
            import io

            tar.addfile(t, io.BytesIO(data))
    with pytest.raises(DataError, match=r"sample k00001: no k00001\.json"):
        list(iter_samples(small_dataset, verify=False))


@pytest.mark.parametrize(
    ("image", "meta", "message"),
    [
        (np.zeros((3, 16, 16), np.uint16), {"lat": 0.0, "lon": 0.0}, "has 3 bands; the dataset has 10"),
        (np.full((10, 16, 16), np.nan, np.float32), {"lat": 0.0, "lon": 0.0}, "NaN/inf"),
        (np.full((10, 16, 16), -5.0), {"lat": 0.0, "lon": 0.0}, "outside uint16"),
        (np.zeros((10, 16, 16), np.uint16), {"lat": 0.0}, "lacks lon"),
        (np.zeros((10, 16, 16), np.uint16), {"lat": float("inf"), "lon": 0.0}, "not a finite number"),
    ],
)
def test_bad_samples_raise_naming_the_sample(tmp_path, image, meta, message):
    samples = [*synthetic_samples(2), Sample("badone", image, meta)]
    with pytest.raises(DataError, match=f"sample badone: .*{message}"):
        write_shards(samples, tmp_path / "ds", shard_size=2, bands=SATMAE_BANDS)
    assert not (tmp_path / "ds" / "manifest.json").exists()


def test_on_error_skip_counts_and_records(tmp_path):
    samples = list(synthetic_samples(4))
    samples.insert(2, Sample("nanone", np.full((10, 16, 16), np.nan), {"lat": 0.0, "lon": 0.0}))
    m = write_shards(samples, tmp_path / "ds", shard_size=2, bands=SATMAE_BANDS, on_error="skip")
    assert m["n_samples"] == 4
    assert m["skipped"]["count"] == 1 and "nanone" in m["skipped"]["first_reasons"][0]
    assert [k for k, _, _ in iter_samples(tmp_path / "ds")] == [s.key for s in samples if s.key != "nanone"]


def test_resume_after_interruption_gives_identical_manifest(tmp_path):
    full = write_shards(synthetic_samples(11), tmp_path / "full", shard_size=3, bands=SATMAE_BANDS, resume=True)

    def interrupted():
        for i, s in enumerate(synthetic_samples(11)):
            if i == 7:
                raise KeyboardInterrupt
            yield s

    with pytest.raises(KeyboardInterrupt):
        write_shards(interrupted(), tmp_path / "part", shard_size=3, bands=SATMAE_BANDS, resume=True)
    finished = sorted(p.name for p in (tmp_path / "part").glob("*.tar"))
    assert finished == ["shard-000000.tar", "shard-000001.tar"]  # the partial third shard was not left behind
    assert not (tmp_path / "part" / "manifest.json").exists()
    resumed = write_shards(synthetic_samples(11), tmp_path / "part", shard_size=3, bands=SATMAE_BANDS, resume=True)
    assert json.dumps(resumed, sort_keys=True) == json.dumps(full, sort_keys=True)


def test_read_manifest_of_unfinished_build_explains(tmp_path):
    with pytest.raises(DataError, match="not a finished geodiv dataset"):
        read_manifest(tmp_path)


def _tar_bytes(members, fmt):
    import io

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        folder = tarfile.TarInfo("somedir")
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)  # not a regular file: skipped
    return buf.getvalue()


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT])
def test_tar_reader_matches_tarfile_for_long_names_and_formats(tmp_path, fmt):
    """The memory-mapped reader hands unusual headers (GNU/pax long names, ustar prefixes, directories) to tarfile
    and must list exactly what tarfile lists, in order."""
    from geodiv.data.shard_reader import iter_tar_groups

    deep = "d" * 60 + "/" + "e" * 60  # > 100 characters: a long-name header (GNU, pax) or a ustar prefix
    members = [("a.npy", b"x" * 700), ("a.json", b"{}"), (f"{deep}/b.npy", b"y" * 512), (f"{deep}/b.json", b"[]"),
               ("c.npy", b""), ("c.json", b"1" * 1025)]
    path = tmp_path / "t.tar"
    path.write_bytes(_tar_bytes(members, fmt))
    with open(path, "rb") as fh:
        got = [(k, {s: bytes(v) for s, v in g.items()}) for k, g in iter_tar_groups(fh, "t")]
    assert got == [("a", {"npy": b"x" * 700, "json": b"{}"}), (f"{deep}/b", {"npy": b"y" * 512, "json": b"[]"}),
                   ("c", {"npy": b"", "json": b"1" * 1025})]
    import io

    with tarfile.open(path) as tar:  # the same as from a stream that cannot be memory-mapped
        assert [m.name for m in tar if m.isfile()] == [n for n, _ in members]
    assert [k for k, _ in iter_tar_groups(io.BytesIO(path.read_bytes()), "t")] == ["a", f"{deep}/b", "c"]


def test_corrupt_header_and_truncated_member_name_the_shard_and_sample(small_dataset):
    m = read_manifest(small_dataset)
    path = small_dataset / m["shards"][0]["path"]
    data = bytearray(path.read_bytes())
    with tarfile.open(path) as tar:
        second = tar.getmembers()[2]  # k00001.json's header
    data[second.offset + 10] ^= 0x55  # checksum no longer matches: tarfile decides (it ends the archive there)
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"shard-000000\.tar: holds 1 samples, the manifest says 4"):
        list(iter_samples(small_dataset, verify=False))
    data[second.offset + 10] ^= 0x55
    path.write_bytes(bytes(data[: second.offset_data + 3]))  # cut inside a member's data
    with pytest.raises(DataError, match=r"shard-000000\.tar: corrupt or truncated tar after sample k00000"):
        list(iter_samples(small_dataset, verify=False))
    path.write_bytes(b"not a tar at all" * 40)
    with pytest.raises(DataError, match=r"shard-000000\.tar: corrupt or truncated tar"):
        list(iter_samples(small_dataset, verify=False))


def _edit_manifest(root, change):
    path = root / "manifest.json"
    m = json.loads(path.read_text())
    change(m)
    path.write_text(json.dumps(m))


def test_lying_manifest_counts_are_refused(small_dataset):
    from geodiv.data import inspect_dataset

    _edit_manifest(small_dataset, lambda m: m.update(n_samples=1000))
    with pytest.raises(DataError, match="n_samples is 1000 but its shards hold 13 samples"):
        read_manifest(small_dataset)
    with pytest.raises(DataError, match="n_samples is 1000"):
        inspect_dataset(small_dataset)

    def counts(m):
        m["n_samples"] = 13
        m["counts"]["continent"] = {"Europe": 40}

    _edit_manifest(small_dataset, counts)
    with pytest.raises(DataError, match="continent counts add up to 40"):
        read_manifest(small_dataset)


@pytest.mark.parametrize("bad", ["../../other/shard.tar", "/etc/passwd", "sub/../../x.tar"])
def test_shard_paths_outside_the_dataset_are_refused(small_dataset, bad):
    def escape(m):
        m["shards"][0]["path"] = bad
        m["counts"] = {}

    _edit_manifest(small_dataset, escape)
    with pytest.raises(DataError, match="outside the dataset folder"):
        list(iter_samples(small_dataset, verify=False))
