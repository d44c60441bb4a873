"""Dataset loaders: bundled, synthetic, MNIST folders, user files, downloads, and every malformed input."""

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from workbench.core import data
from workbench.core.data import DataError, describe, load_dataset, read_idx, split_indices, write_idx


def _idx_pair(folder: Path, n_images=12, n_labels=12, classes=3, stem="digits", gz=False):
    rng = np.random.default_rng(1)
    suffix = ".idx.gz" if gz else ".idx"
    images = write_idx(folder / f"{stem}-images{suffix}", rng.integers(0, 256, (n_images, 8, 8), dtype=np.uint8))
    write_idx(folder / f"{stem}-labels{suffix}", (np.arange(n_labels) % classes).astype(np.uint8))
    return images


def _fake_mnist(folder: Path, n_train=20, n_test=10, gz=True):
    """Small files under the official MNIST names (their md5 will not match the published ones)."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    for split, n in (("train", n_train), ("t10k", n_test)):
        write_idx(folder / f"{split}-images-idx3-ubyte{suffix}", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(folder / f"{split}-labels-idx1-ubyte{suffix}", (np.arange(n) % 10).astype(np.uint8))
    return folder


# ---------------------------------------------------------------- bundled and synthetic


def test_mnist_sample_is_balanced_and_scaled():
    ds = load_dataset("mnist-sample")
    assert ds.x_train.shape == (6000, 1, 28, 28) and ds.x_test.shape == (1000, 1, 28, 28)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert np.bincount(ds.y_train).tolist() == [600] * 10 and np.bincount(ds.y_test).tolist() == [100] * 10
    assert ds.input_shape == (1, 28, 28) and ds.num_classes == 10 and ds.class_names[3] == "3"
    assert ds.preprocessing == {
        "kind": "affine",
        "scale": 2 / 255,
        "offset": -1.0,
        "value_range": [0.0, 255.0],
        "range_from": "stated",
    }
    assert ds.x_train.min() == -1.0 and ds.x_train.max() == 1.0


def test_sample_files_are_small_and_documented():
    files = list(data.SAMPLE_DIR.glob("*.gz"))
    assert len(files) == 4 and sum(f.stat().st_size for f in files) < 10 * 2**20
    licence = (data.SAMPLE_DIR / "LICENSES.md").read_text()
    assert "Yann LeCun" in licence and "Corinna Cortes" in licence and "CC BY-SA 3.0" in licence


@pytest.mark.parametrize("kind", data.SYNTHETIC)
def test_synthetic_sets_are_seeded(kind):
    a, b, c = load_dataset(kind, seed=3), load_dataset(kind, seed=3), load_dataset(kind, seed=4)
    assert a.x_train.shape == (1000, 2) and a.x_test.shape == (500, 2) and a.num_classes == 2
    assert np.array_equal(a.x_train, b.x_train) and np.array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.x_train, c.x_train)
    assert 0.35 < a.y_train.mean() < 0.65 and a.preprocessing == {"kind": "none"}


def test_unknown_reference_names_choices():
    with pytest.raises(DataError, match="unknown dataset 'fashion'.*mnist-sample"):
        load_dataset("fashion")


# ---------------------------------------------------------------- MNIST folders, md5, download


def test_idx_round_trip_raw_and_gzip(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.int32).reshape(2, 3, 4) - 5
    for name in ("a.idx", "a.idx.gz"):
        assert np.array_equal(read_idx(write_idx(tmp_path / name, array)), array)
    assert (tmp_path / "a.idx.gz").read_bytes()[:2] == b"\x1f\x8b"


def test_mnist_folder_md5_mismatch_and_missing(tmp_path):
    _fake_mnist(tmp_path / "m")
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz: md5 mismatch, expected f68b3c2d"):
        load_dataset(f"mnist:{tmp_path / 'm'}")
    ds = data.load_mnist(tmp_path / "m", verify=False)
    assert ds.x_train.shape == (20, 1, 28, 28) and ds.num_classes == 10
    os.remove(tmp_path / "m" / "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(DataError, match="missing t10k-labels-idx1-ubyte.gz"):
        data.load_mnist(tmp_path / "m", verify=False)
    with pytest.raises(DataError, match="not a folder"):
        load_dataset(f"mnist:{tmp_path / 'nope'}")


def test_mnist_raw_files_accepted(tmp_path):
    _fake_mnist(tmp_path, gz=False)
    assert data.load_mnist(tmp_path, verify=False).x_test.shape == (10, 1, 28, 28)


def test_mnist_label_out_of_range(tmp_path):
    _fake_mnist(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.full(10, 12, np.uint8))
    with pytest.raises(DataError, match="t10k-labels.*label out of range: expected 0..9, got 12"):
        data.load_mnist(tmp_path, verify=False)


def test_download_via_file_url_verifies_md5(tmp_path):
    server = _fake_mnist(tmp_path / "server")
    sums = {name: data.md5sum(server / name) for name in os.listdir(server)}
    dest = data.download_mnist(tmp_path / "dest", base_url=server.as_uri(), checksums=sums)
    assert sorted(os.listdir(dest)) == sorted(sums)
    assert data.load_mnist(dest, verify=False).x_train.shape == (20, 1, 28, 28)
    # A tampered file on the server is refused and not kept.
    write_idx(server / "t10k-images-idx3-ubyte.gz", np.zeros((10, 28, 28), np.uint8))
    os.remove(dest / "t10k-images-idx3-ubyte.gz")
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz: md5 mismatch"):
        data.download_mnist(dest, base_url=server.as_uri(), checksums=sums)
    assert not (dest / "t10k-images-idx3-ubyte.gz").exists()
    with pytest.raises(DataError, match="download failed"):
        data.download_mnist(tmp_path / "d2", base_url=(tmp_path / "absent").as_uri(), checksums=sums)


@pytest.mark.mnist
def test_full_mnist_verified_and_downloadable(tmp_path, mnist_dir):
    folder = str(mnist_dir)
    ds = load_dataset(f"mnist:{folder}")
    assert ds.x_train.shape == (60000, 1, 28, 28) and ds.x_test.shape == (10000, 1, 28, 28)
    assert np.bincount(ds.y_test).sum() == 10000 and ds.num_classes == 10
    dest = data.download_mnist(tmp_path, base_url=Path(folder).as_uri())
    assert all(data.md5sum(dest / name) == data.MNIST_MD5[name] for name in os.listdir(dest))


# ---------------------------------------------------------------- malformed IDX


def test_idx_bad_magic_empty_truncated(tmp_path):
    bad = tmp_path / "x-images.idx"
    bad.write_bytes(b"\x12\x34\x08\x03" + b"\x00" * 20)
    with pytest.raises(DataError, match=r"x-images.idx: bad IDX magic 12340803"):
        read_idx(bad)
    bad.write_bytes(b"")
    with pytest.raises(DataError, match="x-images.idx: empty file"):
        read_idx(bad)
    good = write_idx(tmp_path / "y.idx", np.zeros((5, 4, 4), np.uint8)).read_bytes()
    bad.write_bytes(good[:-7])
    with pytest.raises(DataError, match=r"truncated: header says shape \(5, 4, 4\) \(80 bytes\), got 73"):
        read_idx(bad)
    bad.write_bytes(good[:10])
    with pytest.raises(DataError, match="truncated IDX header"):
        read_idx(bad)
    zipped = tmp_path / "z.idx.gz"
    zipped.write_bytes(gzip.compress(good)[:-12])
    with pytest.raises(DataError, match="z.idx.gz: corrupt or truncated gzip"):
        read_idx(zipped)


def test_idx_user_pair_and_mismatched_counts(tmp_path):
    images = _idx_pair(tmp_path, gz=True)
    ds = load_dataset(str(images), seed=0)
    assert len(ds.x_train) + len(ds.x_test) == 12 and ds.input_shape == (1, 8, 8) and ds.num_classes == 3
    assert ds.preprocessing["kind"] == "affine"
    images = _idx_pair(tmp_path, n_images=12, n_labels=10, stem="short")
    with pytest.raises(DataError, match="short-images.idx has 12 images but .*short-labels.idx has 10 labels"):
        load_dataset(str(images))
    os.remove(tmp_path / "short-labels.idx")
    with pytest.raises(DataError, match="matching labels file short-labels.idx not found"):
        load_dataset(str(images))


# ---------------------------------------------------------------- .npz


def test_npz_round_trip_with_test_split(tmp_path):
    x = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
    np.savez(tmp_path / "f.npz", x=x, y=np.arange(50) % 4, class_names=np.array(["a", "b", "c", "d"]))
    ds = load_dataset(str(tmp_path / "f.npz"), seed=1)
    assert ds.x_train.shape == (40, 3) and ds.x_test.shape == (10, 3) and ds.num_classes == 4
    assert ds.class_names == ["a", "b", "c", "d"] and ds.preprocessing == {"kind": "none"}
    assert sorted(np.concatenate([ds.x_train, ds.x_test])[:, 0]) == sorted(x[:, 0])
    images = np.zeros((6, 5, 5), np.uint8)
    images[::2] = 255
    np.savez(tmp_path / "g.npz", x=images, y=[0, 1] * 3, x_test=np.full((2, 5, 5), 255, np.uint8), y_test=[1, 0])
    ds = load_dataset(str(tmp_path / "g.npz"))
    assert ds.x_train.shape == (6, 1, 5, 5) and np.all(ds.x_test == 1.0) and ds.x_train.min() == -1.0


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"x": np.zeros((4, 2))}, "missing array.*y"),
        ({"x": np.zeros((4, 2)), "y": np.array([0, 1, 0])}, "4 samples but 3 labels"),
        ({"x": np.zeros(4), "y": np.array([0, 1, 0, 1])}, r"inputs must have shape .*got \(4,\)"),
        ({"x": np.zeros((4, 2)), "y": np.array([0, 1, -1, 1])}, "label out of range: expected >= 0, got -1"),
        ({"x": np.zeros((4, 2)), "y": np.array([0, 1.5, 0, 1])}, "labels must be integers.*1.5"),
        ({"x": np.array([[0, np.nan]] * 4), "y": np.array([0, 1, 0, 1])}, "NaN or inf"),
        ({"x": np.array([[0, np.inf]] * 4), "y": np.array([0, 1, 0, 1])}, "NaN or inf"),
        ({"x": np.zeros((0, 2)), "y": np.zeros(0, int)}, "no samples"),
        ({"x": np.zeros((4, 2)), "y": np.zeros((4, 2), int)}, "labels must be a 1-D array"),
        ({"x": np.zeros((4, 2)), "y": np.zeros(4, int)}, "need at least 2 classes"),
        (
            {"x": np.zeros((4, 2)), "y": np.arange(4) % 2, "x_test": np.zeros((2, 3)), "y_test": np.array([0, 1])},
            r"test inputs have shape \(3,\)",
        ),
    ],
)
def test_npz_malformed(tmp_path, arrays, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match=f"bad.npz.*{message}|{message}"):
        load_dataset(str(tmp_path / "bad.npz"))


def test_npz_refuses_pickled_objects_and_garbage(tmp_path):
    np.savez(tmp_path / "obj.npz", x=np.array([{"a": 1}] * 4, dtype=object), y=np.arange(4) % 2)
    with pytest.raises(DataError, match="obj.npz: not a readable .npz archive of plain arrays"):
        load_dataset(str(tmp_path / "obj.npz"))
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="junk.npz"):
        load_dataset(str(tmp_path / "junk.npz"))
    with pytest.raises(DataError, match="missing.npz: file not found"):
        load_dataset(str(tmp_path / "missing.npz"))


# ---------------------------------------------------------------- .csv


def test_csv_features_and_flattened_images(tmp_path):
    rows = "\n".join(f"{i * 0.5},{i % 3},{-i}" for i in range(10))
    (tmp_path / "f.csv").write_text("a,label,b\n" + rows + "\n")
    ds = load_dataset(str(tmp_path / "f.csv"))
    assert ds.input_shape == (2,) and ds.num_classes == 3 and len(ds.x_train) == 8
    pixels = np.random.default_rng(0).integers(0, 256, (6, 64))
    lines = [",".join(["label"] + [f"p{i}" for i in range(64)])]
    lines += [",".join(map(str, [k % 2, *row])) for k, row in enumerate(pixels)]
    (tmp_path / "img.csv").write_text("\n".join(lines) + "\n")
    ds = load_dataset(str(tmp_path / "img.csv"))
    assert ds.input_shape == (64,) and ds.preprocessing["kind"] == "affine"  # flat unless declared
    (tmp_path / "img.csv").write_text("# input_shape: 1,8,8\n# value_range: 0,255\n" + "\n".join(lines) + "\n")
    ds = load_dataset(str(tmp_path / "img.csv"))
    assert ds.input_shape == (1, 8, 8) and ds.preprocessing["range_from"] == "stated"
    assert ds.preprocessing["scale"] == 2 / 255 and len(ds.x_train) + len(ds.x_test) == 6


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty file"),
        ("a,b\n1,2\n", "no 'label' column"),
        ("a,label\n", "no data rows"),
        ("a,label\n1,0\nx,1\n", "could not convert"),
        ("a,label\n1,0\n2,1.5\n", "labels must be integers"),
        ("a,label\n1,0\nnan,1\n", "NaN or inf"),
        ("a,label\n1,0\n2,-3\n", "label out of range"),
        ("a,label\n1,0,4\n2,1,5\n", "rows have 3 values but the header names 2 columns"),
        ("label\n0\n1\n", "no feature columns"),
    ],
)
def test_csv_malformed(tmp_path, text, message):
    (tmp_path / "bad.csv").write_text(text)
    with pytest.raises(DataError, match=message) as info:
        load_dataset(str(tmp_path / "bad.csv"))
    assert "bad.csv" in str(info.value)


def _digits():
    """8x8 digits with values 0..16 as scikit-learn ships them (made here: random integers of that range)."""
    rng = np.random.default_rng(7)
    return rng.integers(0, 17, (60, 64)), np.arange(60) % 3


def test_the_same_data_loads_the_same_from_every_format(tmp_path):
    """Float .npz, uint8 .npz and CSV of the same 0..16 digits: one shape rule and one measured range."""
    x, y = _digits()
    np.savez(tmp_path / "float.npz", x=x.astype(np.float64), y=y)
    np.savez(tmp_path / "uint8.npz", x=x.astype(np.uint8), y=y)
    header = ",".join(["label"] + [f"p{i}" for i in range(64)])
    (tmp_path / "d.csv").write_text(header + "\n" + "\n".join(",".join(map(str, [c, *r])) for c, r in zip(y, x)) + "\n")
    loaded = [load_dataset(str(tmp_path / name), seed=2) for name in ("float.npz", "uint8.npz", "d.csv")]
    for ds in loaded:
        assert ds.input_shape == (64,)
        assert ds.preprocessing["value_range"] == [0.0, 16.0] and ds.preprocessing["range_from"] == "measured"
        assert ds.x_train.min() == -1.0 and ds.x_train.max() == 1.0  # not [-1, -0.875] as if 0..255
        np.testing.assert_array_equal(ds.x_train, loaded[0].x_train)
        np.testing.assert_array_equal(ds.y_test, loaded[0].y_test)
    np.savez(tmp_path / "shaped.npz", x=x.astype(np.uint8), y=y, input_shape=[1, 8, 8], value_range=[0, 16])
    shaped = load_dataset(str(tmp_path / "shaped.npz"), seed=2)
    assert shaped.input_shape == (1, 8, 8) and shaped.preprocessing["range_from"] == "stated"
    np.testing.assert_array_equal(shaped.x_train.reshape(len(shaped.x_train), -1), loaded[0].x_train)


def test_declared_shape_and_range_are_checked(tmp_path):
    x, y = _digits()
    np.savez(tmp_path / "bad.npz", x=x, y=y, input_shape=[1, 7, 7])
    with pytest.raises(DataError, match=r"declared input_shape \[1, 7, 7\] does not hold the 64 values"):
        load_dataset(str(tmp_path / "bad.npz"))
    np.savez(tmp_path / "bad.npz", x=x, y=y, value_range=[16, 0])
    with pytest.raises(DataError, match="value_range must be two finite numbers low < high"):
        load_dataset(str(tmp_path / "bad.npz"))


def test_float_features_are_used_as_given_and_described():
    ds = load_dataset("moons")
    assert ds.preprocessing == {"kind": "none"}
    assert "features used as given" in describe(ds) and "1,000 training and 500 test samples" in describe(ds)
    assert "values 0..255 (stated) mapped to [-1, 1]" in describe(load_dataset("mnist-sample"))


def test_splits_are_stratified_with_exact_totals():
    labels = np.array([0] * 90 + [1] * 10)
    kept, held = split_indices(labels, 0.2, seed=3)
    assert len(held) == 20 and sorted(np.bincount(labels[held])) == [2, 18]
    assert sorted(np.concatenate([kept, held])) == list(range(100))
    kept, held = split_indices(labels, 0.2, seed=3, method="random")
    assert len(held) == 20


def test_classes_are_the_labels_present_in_bounded_memory(tmp_path):
    """A 32-byte CSV with label 1e9 once made a billion classes; now it has the two it names."""
    (tmp_path / "huge.csv").write_text("a,label\n1,0\n2,1e9\n3,0\n4,1e9\n")
    ds = load_dataset(str(tmp_path / "huge.csv"))
    assert ds.num_classes == 2 and ds.class_names == ["0", "1000000000"]
    assert sorted(np.concatenate([ds.y_train, ds.y_test]).tolist()) == [0, 0, 1, 1]
    np.savez(tmp_path / "gaps.npz", x=np.arange(6.5, 12.5).reshape(6, 1), y=[3, 7, 3, 7, 9, 9])
    ds = load_dataset(str(tmp_path / "gaps.npz"))
    assert ds.num_classes == 3 and ds.class_names == ["3", "7", "9"]
    (tmp_path / "bad.csv").write_text("a,label\n1,0\n2,1e30\n")
    with pytest.raises(DataError, match="label out of range"):
        load_dataset(str(tmp_path / "bad.csv"))


def test_small_files_cannot_declare_huge_data(tmp_path, monkeypatch):
    """Sizes are checked before anything is decompressed or parsed: a few bytes never allocate gigabytes."""
    bomb = tmp_path / "bomb-images-idx3-ubyte.gz"
    bomb.write_bytes(gzip.compress(b"\x00\x00\x08\x03" + struct.pack(">3I", 60000, 1000, 1000)))
    with pytest.raises(DataError, match=r"declares shape \(60000, 1000, 1000\) \(60,000,000,000 bytes\)"):
        read_idx(bomb)
    monkeypatch.setattr(data, "MAX_DATA_BYTES", 1000)
    np.savez_compressed(tmp_path / "zeros.npz", x=np.zeros((100, 100)), y=np.zeros(100))
    with pytest.raises(DataError, match="zeros.npz: its arrays take 81,... bytes uncompressed"):
        load_dataset(str(tmp_path / "zeros.npz"))
    monkeypatch.setattr(data, "MAX_CSV_BYTES", 100)
    (tmp_path / "wide.csv").write_text("label," + ",".join(f"c{i}" for i in range(100)) + "\n")
    with pytest.raises(DataError, match="wide.csv: 396 bytes; expected a CSV of at most 100 bytes"):
        load_dataset(str(tmp_path / "wide.csv"))
