"""Datasets: the bundled MNIST subset, seeded 2-D toy sets, full MNIST from IDX files, and the user's own files.

Everything is read without pickle (IDX, ``.npz`` with ``allow_pickle=False``, CSV) and checked on the way in:
a malformed file raises :class:`DataError` naming the file and what was wrong, before training ever sees it.
Images end up float32 in [-1, 1], channels-first; ``Dataset.preprocessing`` records the affine map from raw
uint8 pixels so that the engine and the app can apply the same one.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import shutil
import struct
import tarfile
import urllib.request
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SAMPLE_DIR = Path(__file__).resolve().parents[2] / "sample_data"
MNIST_URL = "https://storage.googleapis.com/cvdf-datasets/mnist/"

# Published md5 sums of the official gzip files, and of the same files decompressed.
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
SAMPLE_MD5 = {  # the bundled subset, see sample_data/LICENSES.md
    "mnist-sample-train-images-idx3-ubyte.gz": "4b1ba78e88122ef96897c1780d5c2568",
    "mnist-sample-train-labels-idx1-ubyte.gz": "00b7fc418c1e06cd5a664d6d234c2201",
    "mnist-sample-t10k-images-idx3-ubyte.gz": "6319afe34a8fd27b4a16ce806f35c547",
    "mnist-sample-t10k-labels-idx1-ubyte.gz": "32a3da652312893155aef60b34ac07f8",
}
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

SYNTHETIC = ("moons", "circles", "spirals", "xor")
BUILTIN_DATASETS = {
    "mnist-sample": "bundled MNIST subset: 6,000 training and 1,000 test images, class-balanced",
    "moons": "two interleaved half circles (2-D, 2 classes)",
    "circles": "a circle inside a ring (2-D, 2 classes)",
    "spirals": "two interleaved spirals (2-D, 2 classes)",
    "xor": "four Gaussian blobs labelled by quadrant parity (2-D, 2 classes)",
}
MAX_CLASSES = 100_000  # distinct labels a dataset may have
MAX_DATA_BYTES = 1 << 30  # raw array bytes one file may declare (as float32 inputs they take up to 4x that)
MAX_CSV_BYTES = 256 << 20  # a CSV is parsed as text (about 10x its size in memory)
MAX_COLUMNS = 100_000  # columns of a CSV header
MNIST_RANGE = (0, 255)  # MNIST's documented pixel range, stated rather than measured on a subset
FEATURES = {"kind": "none"}

_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class DataError(ValueError):
    """A dataset file or reference that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class Split:
    """How data that comes as one set is split into train and test: seeded, stratified by default."""

    seed: int = 0
    test_fraction: float = 0.2
    method: str = "stratified"

    @classmethod
    def of(cls, training_spec: dict) -> Split:
        """The split a run's (normalised) training spec stores."""
        return cls(
            int(training_spec.get("seed", 0)),
            float(training_spec.get("test_split", 0.2)),
            str(training_spec.get("split_method", "stratified")),
        )


@dataclass
class Dataset:
    """Train and test arrays ready for torch (float32 channels-first inputs, int64 labels)."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    input_shape: tuple
    num_classes: int
    class_names: list[str] = field(default_factory=list)
    preprocessing: dict = field(default_factory=lambda: dict(FEATURES))


# ---------------------------------------------------------------- IDX files


def _open_stream(path: Path):
    """A binary stream of the file, gunzipped on the fly when it starts with the gzip magic (whatever its name)."""
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, expected a file") from None
    magic = handle.read(2)
    handle.seek(0)
    return gzip.GzipFile(fileobj=handle, mode="rb") if magic == b"\x1f\x8b" else handle


def _read_exactly(stream, count: int, path: Path) -> bytes:
    try:
        data = stream.read(count)
    except (EOFError, OSError, gzip.BadGzipFile) as error:
        raise DataError(f"{path}: corrupt or truncated gzip data ({error})") from None
    return data


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (raw or gzip) into a native-endian array, checking its header against its size.

    Streams: the header's declared size is checked against :data:`MAX_DATA_BYTES` before the data is read, so a
    small compressed file cannot make it allocate gigabytes."""
    path = Path(path)
    with _open_stream(path) as stream:
        magic = _read_exactly(stream, 4, path)
        if not magic:
            raise DataError(f"{path}: empty file, expected an IDX header")
        if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in _IDX_DTYPES or magic[3] == 0:
            raise DataError(
                f"{path}: bad IDX magic {magic[:4].hex()}, expected 0000 + type byte + rank "
                f"(e.g. 00000803 for images, 00000801 for labels)"
            )
        ndim = magic[3]
        dims = _read_exactly(stream, 4 * ndim, path)
        if len(dims) < 4 * ndim:
            raise DataError(f"{path}: truncated IDX header ({4 + len(dims)} bytes, expected {4 + 4 * ndim})")
        shape = struct.unpack(f">{ndim}I", dims)
        dtype = np.dtype(_IDX_DTYPES[magic[2]])
        expected = math.prod(shape) * dtype.itemsize  # Python ints: (2**32-1)**2 would wrap in int64
        if expected > MAX_DATA_BYTES:
            raise DataError(
                f"{path}: IDX header declares shape {shape} ({expected:,} bytes); expected at most "
                f"{MAX_DATA_BYTES:,} bytes of data"
            )
        raw = _read_exactly(stream, expected + 1, path)
    if len(raw) != expected:
        kind = "truncated" if len(raw) < expected else "has trailing bytes"
        got = len(raw) if len(raw) < expected else f"more than {expected}"
        raise DataError(f"{path}: IDX data {kind}: header says shape {shape} ({expected} bytes), got {got} bytes")
    return np.frombuffer(raw, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray, compress: bool | None = None) -> Path:
    """Write ``array`` as IDX; gzip it when ``compress`` (default: when the name ends in .gz), reproducibly."""
    path = Path(path)
    array = np.asarray(array)
    code = {"u1": 0x08, "i1": 0x09, "i2": 0x0B, "i4": 0x0C, "f4": 0x0D, "f8": 0x0E}.get(
        array.dtype.kind + str(array.dtype.itemsize)
    )
    if code is None:
        raise ValueError(f"write_idx: dtype {array.dtype} has no IDX type code")
    payload = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload += np.ascontiguousarray(array).astype(array.dtype.newbyteorder(">")).tobytes()
    if path.name.endswith(".gz") if compress is None else compress:
        payload = gzip.compress(payload, compresslevel=9, mtime=0)
    path.write_bytes(payload)
    return path


def md5sum(path: str | Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_md5(path: str | Path, expected: str) -> None:
    actual = md5sum(path)
    if actual != expected:
        raise DataError(f"{path}: md5 mismatch, expected {expected}, got {actual} (corrupt or wrong file)")


def _read_idx_pair(images_path: Path, labels_path: Path, num_classes: int | None = None):
    """Images (uint8, N x H x W or N x F) and their labels, with counts, magic and label range checked."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim not in (2, 3):
        raise DataError(
            f"{images_path}: expected an images file of rank 3 (N, rows, cols) or 2 (N, features), "
            f"got shape {images.shape}"
        )
    if labels.ndim != 1:
        raise DataError(f"{labels_path}: expected a labels file of rank 1 (N,), got shape {labels.shape}")
    if len(images) != len(labels):
        raise DataError(f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels")
    return images, _check_labels(labels, labels_path, num_classes)


# ---------------------------------------------------------------- checks and conversions


def _check_labels(y: np.ndarray, source, num_classes: int | None = None) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise DataError(f"{source}: labels must be a 1-D array, got shape {y.shape}")
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
            raise DataError(
                f"{source}: labels must be integers, got non-integer values such as "
                f"{y[~np.isfinite(y) | (y != np.round(y))][0]}"
            )
    elif y.dtype.kind not in "iub":
        raise DataError(f"{source}: labels must be integers, got dtype {y.dtype}")
    if len(y) and np.abs(y).max() > 2**62:
        raise DataError(f"{source}: label out of range: expected integers of at most 2^62, got {np.abs(y).max()}")
    y = y.astype(np.int64)
    high = num_classes - 1 if num_classes else None
    if len(y) and (y.min() < 0 or (high is not None and y.max() > high)):
        bad = y[(y < 0) | ((y > high) if high is not None else False)][0]
        expected = f"0..{high}" if high is not None else ">= 0"
        raise DataError(f"{source}: label out of range: expected {expected}, got {bad}")
    return y


def _samples(x, source, input_shape=None) -> np.ndarray:
    """Raw samples checked and laid out channels first: (N, F), (N, H, W) -> (N, 1, H, W), (N, C, H, W), or
    reshaped to a declared ``input_shape`` (C-order)."""
    x = np.asarray(x)
    if x.dtype.kind not in "uifb":
        raise DataError(f"{source}: inputs must be numeric, got dtype {x.dtype}")
    if x.ndim < 2 or x.ndim > 4:
        raise DataError(f"{source}: inputs must have shape (N, features), (N, H, W) or (N, C, H, W), got {x.shape}")
    if len(x) == 0:
        raise DataError(f"{source}: no samples (shape {x.shape})")
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        raise DataError(f"{source}: inputs contain NaN or inf ({int(np.sum(~np.isfinite(x)))} values)")
    if input_shape is not None:
        shape = tuple(int(n) for n in input_shape)
        if not shape or any(n <= 0 for n in shape) or int(np.prod(shape)) != int(np.prod(x.shape[1:])):
            raise DataError(
                f"{source}: declared input_shape {list(shape)} does not hold the "
                f"{int(np.prod(x.shape[1:]))} values of each sample (shape {list(x.shape[1:])})"
            )
        return x.reshape(len(x), *shape)
    return x[:, None] if x.ndim == 3 else x


def intensity_preprocessing(x: np.ndarray, value_range=None, source="data") -> dict:
    """The documented rule that maps inputs into the range binary networks expect (docs/SPEC.md, "Data").

    Integer-valued inputs are intensities: the range they come in -- stated (``value_range``) or else measured
    on the training inputs -- is mapped affinely onto [-1, 1], x = u * scale + offset. Other inputs are used as
    given, unless a range is stated for them too. The map is stored with the run and in the exported file.
    """
    stated = value_range is not None
    if not stated and x.dtype.kind == "f" and not np.array_equal(x, np.round(x)):
        return dict(FEATURES)
    if stated:
        values = np.asarray(value_range, dtype=np.float64).reshape(-1)
        if values.size != 2 or not np.all(np.isfinite(values)) or values[1] <= values[0]:
            raise DataError(f"{source}: value_range must be two finite numbers low < high, got {list(values)}")
        low, high = float(values[0]), float(values[1])
    else:
        low, high = float(x.min()), float(x.max())
        high = high if high > low else low + 1.0
    scale = 2.0 / (high - low)
    return {
        "kind": "affine",
        "scale": scale,
        "offset": -1.0 - low * scale,
        "value_range": [low, high],
        "range_from": "stated" if stated else "measured",
    }


def _preprocessed(x: np.ndarray, preprocessing: dict) -> np.ndarray:
    x = x.astype(np.float32)
    if preprocessing["kind"] == "affine":
        x = x * np.float32(preprocessing["scale"]) + np.float32(preprocessing["offset"])
    return x


def split_indices(
    labels: np.ndarray,
    fraction: float,
    seed: int,
    method: str = "stratified",
    *,
    at_least: int = 0,
    at_most: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held out) indices: a seeded share ``fraction`` held out, with every class in the same proportion
    when ``method`` is "stratified" (largest remainders, so the total is exact), else a plain shuffle.

    The one split rule of the workbench: the test split of single-file data and the validation split of
    training both come from here, from the seed and fractions stored in the run's training spec.
    """
    labels = np.asarray(labels)
    n = len(labels)
    rng = np.random.default_rng(seed)
    n_held = max(int(round(n * fraction)), at_least)
    n_held = min(n_held, n if at_most is None else at_most)
    if method == "random":
        order = rng.permutation(n)
        return order[n_held:], order[:n_held]
    classes, counts = np.unique(labels, return_counts=True)
    quotas = counts * (n_held / max(n, 1))
    taken = np.floor(quotas).astype(np.int64)
    for c in np.argsort(-(quotas - taken), kind="stable")[: n_held - int(taken.sum())]:
        taken[c] += 1
    kept, held = [], []
    for value, count in zip(classes, taken):
        members = rng.permutation(np.flatnonzero(labels == value))
        held.append(members[:count])
        kept.append(members[count:])
    kept, held = np.concatenate(kept), np.concatenate(held)
    return rng.permutation(kept), rng.permutation(held)


def _split(x, y, split: Split):
    """A seeded train/test split for user data that comes as one set."""
    if len(x) < 2:
        raise DataError(f"need at least 2 samples to split off a test set, got {len(x)}")
    kept, held = split_indices(y, split.test_fraction, split.seed, split.method, at_least=1, at_most=len(x) - 1)
    return x[kept], y[kept], x[held], y[held]


def make_dataset(
    name,
    x_train,
    y_train,
    x_test=None,
    y_test=None,
    *,
    class_names=None,
    split: Split = Split(),
    num_classes=None,
    source=None,
    input_shape=None,
    value_range=None,
) -> Dataset:
    """Check raw arrays and build a :class:`Dataset`: the sample shape is the arrays' own (or a declared
    ``input_shape``), the preprocessing follows :func:`intensity_preprocessing`, and a seeded test set is split
    off when none is given."""
    source = source or name
    y_train = _check_labels(y_train, source, num_classes)
    x_train = _samples(x_train, source, input_shape)
    if len(x_train) != len(y_train):
        raise DataError(f"{source}: {len(x_train)} samples but {len(y_train)} labels")
    if x_test is None:
        x_train, y_train, x_test, y_test = _split(x_train, y_train, split)
    else:
        y_test = _check_labels(y_test, f"{source} (test labels)", num_classes)
        x_test = _samples(x_test, f"{source} (test inputs)", input_shape)
        if len(x_test) != len(y_test):
            raise DataError(f"{source}: {len(x_test)} test samples but {len(y_test)} test labels")
        if x_test.shape[1:] != x_train.shape[1:]:
            raise DataError(
                f"{source}: test inputs have shape {x_test.shape[1:]} per sample, training inputs {x_train.shape[1:]}"
            )
    preprocessing = intensity_preprocessing(x_train, value_range, source)
    x_train, x_test = _preprocessed(x_train, preprocessing), _preprocessed(x_test, preprocessing)
    if num_classes is None:
        y_train, y_test, present = _classes_present(y_train, y_test, source)
        num_classes = len(present)
        if class_names is None and not np.array_equal(present, np.arange(num_classes)):
            class_names = [str(c) for c in present]  # the labels as they were, in order
    if num_classes < 2:
        raise DataError(f"{source}: need at least 2 classes, got labels all equal to {int(y_train[0])}")
    class_names = [str(c) for c in (class_names if class_names is not None else range(num_classes))]
    if len(class_names) != num_classes:
        raise DataError(f"{source}: {len(class_names)} class names for {num_classes} classes")
    return Dataset(
        name, x_train, y_train, x_test, y_test, tuple(x_train.shape[1:]), num_classes, class_names, preprocessing
    )


def _classes_present(y_train: np.ndarray, y_test: np.ndarray, source) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The classes are the labels that occur (never 0..the largest label): labels renumbered 0..K-1 in order
    when they are not already, so a label 10^9 costs one class, not a billion."""
    present = np.unique(np.concatenate([y_train, y_test]))
    if len(present) > MAX_CLASSES:
        raise DataError(f"{source}: {len(present):,} distinct labels; expected at most {MAX_CLASSES:,} classes")
    if np.array_equal(present, np.arange(len(present))):
        return y_train, y_test, present
    return np.searchsorted(present, y_train), np.searchsorted(present, y_test), present


def check_fits(network_spec: dict, dataset: Dataset) -> None:
    """DataError unless a (normalised) network spec can train on the dataset: input shape, class count, size."""
    expected = tuple(network_spec["input_shape"])
    if tuple(dataset.input_shape) != expected:
        raise DataError(
            f"dataset {dataset.name!r}: network input_shape is {list(expected)}, "
            f"the data has {list(dataset.input_shape)}"
        )
    if int(dataset.num_classes) > int(network_spec["num_classes"]):
        raise DataError(
            f"dataset {dataset.name!r}: network num_classes is {network_spec['num_classes']}, "
            f"the data has {dataset.num_classes} classes"
        )
    if len(dataset.x_train) < 2:
        raise DataError(f"dataset {dataset.name!r}: need at least 2 training samples, got {len(dataset.x_train)}")


def describe(dataset: Dataset) -> str:
    """One line on what training will see: sizes, sample shape, classes and the preprocessing (shown before a
    run starts and kept with it)."""
    pre = dataset.preprocessing
    if pre.get("kind") == "affine":
        low, high = pre.get("value_range", [None, None])
        how = (
            f"values {low:g}..{high:g} ({pre.get('range_from', 'stated')}) mapped to [-1, 1]"
            if low is not None
            else f"x = u * {pre['scale']:g} + {pre['offset']:g}"
        )
    else:
        how = "features used as given (not integer-valued, no value_range stated)"
    return (
        f"{dataset.name}: {len(dataset.x_train):,} training and {len(dataset.x_test):,} test samples of shape "
        f"{list(dataset.input_shape)}, {dataset.num_classes} classes; {how}"
    )


# ---------------------------------------------------------------- MNIST


def _mnist_file(directory: Path, stem: str, verify: bool) -> Path:
    for name in (stem + ".gz", stem):
        path = directory / name
        if path.exists():
            if verify:
                verify_md5(path, MNIST_MD5[name])
            return path
    raise DataError(f"{directory}: missing {stem}.gz (or {stem}); expected the four MNIST IDX files")


def load_mnist(directory: str | Path, verify: bool = True) -> Dataset:
    """Full MNIST from a folder of the official IDX files (gzip or raw), md5-verified against the published sums."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory}: not a folder (expected a folder with the MNIST IDX files)")
    paths = [_mnist_file(directory, stem, verify) for stem in MNIST_FILES]
    return _idx_dataset(f"mnist:{directory}", *paths)


def _idx_dataset(name, train_images, train_labels, test_images, test_labels) -> Dataset:
    x_train, y_train = _read_idx_pair(train_images, train_labels, 10)
    x_test, y_test = _read_idx_pair(test_images, test_labels, 10)
    return make_dataset(
        name, x_train, y_train, x_test, y_test, num_classes=10, source=str(train_images.parent), value_range=MNIST_RANGE
    )


def load_mnist_sample() -> Dataset:
    """The bundled class-balanced MNIST subset (see sample_data/LICENSES.md)."""
    paths = [SAMPLE_DIR / f"mnist-sample-{stem}.gz" for stem in MNIST_FILES]
    for path in paths:
        if not path.exists():
            raise DataError(f"{path}: bundled MNIST subset missing (run sample_data/make_subsets.py)")
        verify_md5(path, SAMPLE_MD5[path.name])
    return _idx_dataset("mnist-sample", *paths)


def download_mnist(dest_dir: str | Path, base_url: str = MNIST_URL, checksums: dict[str, str] | None = None) -> Path:
    """Fetch the four MNIST gzip files into ``dest_dir`` and verify their md5; files already verified are kept.

    ``base_url`` may be any URL urllib opens (``https://...``, ``file:///...``). A file whose md5 does not
    match is deleted and raises :class:`DataError`.
    """
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    checksums = checksums or MNIST_MD5
    for stem in MNIST_FILES:
        name = stem + ".gz"
        target = dest / name
        if target.exists() and md5sum(target) == checksums[name]:
            continue
        partial = dest / (name + ".part")
        url = base_url.rstrip("/") + "/" + name
        try:
            with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as out:
                shutil.copyfileobj(response, out)
        except OSError as error:
            partial.unlink(missing_ok=True)
            raise DataError(f"{url}: download failed ({error})") from None
        actual = md5sum(partial)
        if actual != checksums[name]:
            partial.unlink()
            raise DataError(f"{url}: md5 mismatch, expected {checksums[name]}, got {actual}; file not kept")
        partial.replace(target)
    return dest


# ---------------------------------------------------------------- synthetic 2-D sets


def _moons(n, rng):
    t = rng.uniform(0, np.pi, n)
    y = rng.integers(0, 2, n)
    x = np.where(y[:, None] == 0, np.c_[np.cos(t), np.sin(t)], np.c_[1 - np.cos(t), 0.5 - np.sin(t)])
    return x - [0.5, 0.25] + rng.normal(0, 0.1, (n, 2)), y


def _circles(n, rng):
    t = rng.uniform(0, 2 * np.pi, n)
    y = rng.integers(0, 2, n)
    radius = np.where(y == 0, 1.0, 0.5)
    return radius[:, None] * np.c_[np.cos(t), np.sin(t)] + rng.normal(0, 0.05, (n, 2)), y


def _spirals(n, rng):
    y = rng.integers(0, 2, n)
    r = rng.uniform(0.05, 1.0, n)
    angle = 3 * np.pi * r + np.pi * y
    return r[:, None] * np.c_[np.cos(angle), np.sin(angle)] + rng.normal(0, 0.02, (n, 2)), y


def _xor(n, rng):
    centers = np.array([[-0.5, -0.5], [0.5, 0.5], [-0.5, 0.5], [0.5, -0.5]])
    which = rng.integers(0, 4, n)
    return centers[which] + rng.normal(0, 0.15, (n, 2)), (which >= 2).astype(np.int64)


def make_synthetic(kind: str, n_train: int = 1000, n_test: int = 500, seed: int = 0) -> Dataset:
    """A seeded 2-D toy set (moons, circles, spirals, xor): the same seed gives the same points."""
    makers = {"moons": _moons, "circles": _circles, "spirals": _spirals, "xor": _xor}
    if kind not in makers:
        raise DataError(f"unknown synthetic dataset {kind!r}, expected one of {', '.join(makers)}")
    rng = np.random.default_rng(seed)
    x, y = makers[kind](n_train + n_test, rng)
    x = x.astype(np.float32)
    return make_dataset(kind, x[:n_train], y[:n_train], x[n_train:], y[n_train:], num_classes=2)


# ---------------------------------------------------------------- user files


def load_npz(path: str | Path, split: Split = Split()) -> Dataset:
    """``x``/``y`` arrays (optionally ``x_test``/``y_test``, ``class_names``) from an .npz, never unpickled."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            declared = sum(_npy_bytes(archive, member, path) for member in archive.infolist())
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
        raise DataError(f"{path}: not a readable .npz archive of plain arrays ({error})") from None
    if declared > MAX_DATA_BYTES:
        raise DataError(
            f"{path}: its arrays take {declared:,} bytes uncompressed; expected at most {MAX_DATA_BYTES:,} bytes"
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise DataError(f"{path}: not a readable .npz archive of plain arrays ({error})") from None
    missing = [key for key in ("x", "y") if key not in arrays]
    if missing:
        raise DataError(
            f"{path}: missing array(s) {', '.join(missing)}; expected keys x, y "
            f"(optional x_test, y_test, class_names, input_shape, value_range), "
            f"got {', '.join(arrays) or 'none'}"
        )
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise DataError(f"{path}: x_test and y_test must come together")
    names = arrays.get("class_names")
    return make_dataset(
        path.stem,
        arrays["x"],
        arrays["y"],
        arrays.get("x_test"),
        arrays.get("y_test"),
        class_names=None if names is None else list(names),
        split=split,
        source=str(path),
        input_shape=_declared(arrays.get("input_shape"), path, "input_shape"),
        value_range=_declared(arrays.get("value_range"), path, "value_range"),
    )


def _npy_bytes(archive: zipfile.ZipFile, member: zipfile.ZipInfo, path: Path) -> int:
    """The larger of a member's stored size and what its .npy header declares: np.load allocates the declared
    array before it reads the data, so a few bytes declaring shape (2**40,) would ask for terabytes."""
    if not member.filename.endswith(".npy"):
        return member.file_size
    with archive.open(member) as stream:
        version = np.lib.format.read_magic(stream)
        read = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}.get(version)
        if read is None:
            raise DataError(f"{path}: {member.filename}: .npy format version {version}; expected 1.0 or 2.0")
        shape, _, dtype = read(stream)
    return max(member.file_size, math.prod(int(dim) for dim in shape) * dtype.itemsize)


def _declared(value, path, name) -> list | None:
    """A declared input_shape or value_range (an npz array or a CSV '# name: a,b,c' line) as numbers."""
    if value is None:
        return None
    try:
        numbers = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise DataError(f"{path}: {name} must be numbers, got {value!r}") from None
    if name == "input_shape" and not np.array_equal(numbers, np.round(numbers)):
        raise DataError(f"{path}: input_shape must be whole numbers, got {numbers.tolist()}")
    return [int(n) for n in numbers] if name == "input_shape" else numbers.tolist()


def load_csv(path: str | Path, split: Split = Split()) -> Dataset:
    """A CSV with a header and a ``label`` column; the other columns are numeric features, one flat sample a row.

    Comment lines before the header may declare ``# input_shape: 1,8,8`` (the rows are C-order images of that
    shape) and ``# value_range: 0,16``; without them a row is a flat feature vector and the value range is
    measured (see :func:`intensity_preprocessing`).
    """
    path = Path(path)
    declared, comments = {}, 0
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    if size > MAX_CSV_BYTES:
        raise DataError(
            f"{path}: {size:,} bytes; expected a CSV of at most {MAX_CSV_BYTES:,} bytes (save larger data as .npz)"
        )
    try:
        with open(path, encoding="utf-8") as handle:
            header = handle.readline()
            while header.startswith("#"):
                key, _, value = header[1:].partition(":")
                if key.strip() in ("input_shape", "value_range"):
                    declared[key.strip()] = [v for v in value.replace("x", ",").split(",") if v.strip()]
                comments += 1
                header = handle.readline()
            header = header.strip()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a UTF-8 text CSV file") from None
    if not header:
        raise DataError(f"{path}: empty file, expected a header row with a 'label' column")
    if header.count(",") >= MAX_COLUMNS:
        raise DataError(f"{path}: {header.count(',') + 1:,} columns; expected at most {MAX_COLUMNS:,}")
    columns = [c.strip().strip('"') for c in header.split(",")]
    if "label" not in columns:
        raise DataError(f"{path}: no 'label' column in the header, got columns {columns[:8]}")
    try:
        with warnings.catch_warnings():  # an empty body is reported below, as a DataError
            warnings.simplefilter("ignore", UserWarning)
            table = np.loadtxt(path, delimiter=",", skiprows=comments + 1, ndmin=2, dtype=np.float64)
    except ValueError as error:
        raise DataError(f"{path}: {error}") from None
    if table.size == 0:
        raise DataError(f"{path}: no data rows below the header")
    if table.shape[1] != len(columns):
        raise DataError(f"{path}: rows have {table.shape[1]} values but the header names {len(columns)} columns")
    label = columns.index("label")
    y, x = table[:, label], np.delete(table, label, axis=1)
    if x.shape[1] == 0:
        raise DataError(f"{path}: no feature columns besides 'label'")
    return make_dataset(
        path.stem,
        x,
        y,
        split=split,
        source=str(path),
        input_shape=_declared(declared.get("input_shape"), path, "input_shape"),
        value_range=_declared(declared.get("value_range"), path, "value_range"),
    )


def _labels_path_for(images: Path) -> Path:
    """my-images-idx3-ubyte.gz -> my-labels-idx1-ubyte.gz, digits-images.idx -> digits-labels.idx."""
    name = images.name
    if "images" not in name:
        raise DataError(
            f"{images}: cannot find its labels file: the images file name must contain 'images' "
            f"(its labels are read from the same name with 'labels')"
        )
    candidate = images.with_name(name.replace("images", "labels").replace("idx3", "idx1"))
    if not candidate.exists():
        candidate_keep = images.with_name(name.replace("images", "labels"))
        if candidate_keep.exists():
            return candidate_keep
        raise DataError(f"{images}: matching labels file {candidate.name} not found in {images.parent}")
    return candidate


# ---------------------------------------------------------------- CIFAR-10, binary version
# ``cifar10:PATH``: the authors' "binary version (suitable for C programs)", never the pickled Python one: six
# files of records of 1 label byte and 3,072 pixel bytes (1,024 red, then green, then blue, each 32 x 32 row by
# row), 10,000 records each. PATH is the archive itself (read member by member, never extracted) or the folder
# cifar-10-batches-bin it unpacks to. The archive's md5 is the published one; the unpacked files have no
# published sums, so their exact sizes and the label range are checked.

CIFAR_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"  # https://www.cs.toronto.edu/~kriz/cifar.html
CIFAR_SHAPE = (3, 32, 32)
CIFAR_RECORD = 1 + 3 * 32 * 32
CIFAR_RECORDS_PER_FILE = 10_000
CIFAR_TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
CIFAR_TEST_FILE = "test_batch.bin"
CIFAR_META_FILE = "batches.meta.txt"
CIFAR_FOLDER = "cifar-10-batches-bin"
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def load_cifar10(path: str | Path, verify: bool = True) -> Dataset:
    """The official 50,000 training and 10,000 test images, as uint8 pixels stated to range over 0..255.

    ``verify`` checks the archive's md5 (or each unpacked file's exact size); tests of the record format
    turn it off for small files made the same way.
    """
    path = Path(path)
    if path.is_dir():
        folder = path / CIFAR_FOLDER if (path / CIFAR_FOLDER).is_dir() else path
        read = {name: _read_cifar_file(folder / name, verify) for name in (*CIFAR_TRAIN_FILES, CIFAR_TEST_FILE)}
        meta = (
            (folder / CIFAR_META_FILE).read_text(encoding="utf-8", errors="replace")
            if (folder / CIFAR_META_FILE).is_file()
            else ""
        )
    elif path.is_file():
        if verify:
            verify_md5(path, CIFAR_MD5)
        read, meta = _read_cifar_archive(path, verify)
    else:
        raise DataError(f"cifar10:{path}: no such file or folder (expected cifar-10-binary.tar.gz or its folder)")
    x_train, y_train = _cifar_records(b"".join(read[name] for name in CIFAR_TRAIN_FILES), f"cifar10:{path}")
    x_test, y_test = _cifar_records(read[CIFAR_TEST_FILE], f"cifar10:{path} ({CIFAR_TEST_FILE})")
    names = [line.strip() for line in meta.splitlines() if line.strip()] or list(CIFAR_CLASSES)
    if len(names) != len(CIFAR_CLASSES):
        raise DataError(f"cifar10:{path}: {CIFAR_META_FILE} names {len(names)} classes, expected {len(CIFAR_CLASSES)}")
    return make_dataset(
        f"cifar10:{path}",
        x_train,
        y_train,
        x_test,
        y_test,
        class_names=names,
        num_classes=len(CIFAR_CLASSES),
        source=str(path),
        value_range=MNIST_RANGE,
    )


def _check_cifar_size(size: int, name: str, verify: bool) -> None:
    expected = CIFAR_RECORDS_PER_FILE * CIFAR_RECORD
    if verify and size != expected:
        raise DataError(
            f"{name}: {size:,} bytes, expected {expected:,} ({CIFAR_RECORDS_PER_FILE:,} records of {CIFAR_RECORD})"
        )
    if size == 0 or size % CIFAR_RECORD or size > expected:
        raise DataError(
            f"{name}: {size:,} bytes is not a whole number of {CIFAR_RECORD}-byte records (at most {expected:,})"
        )


def _read_cifar_file(path: Path, verify: bool) -> bytes:
    if not path.is_file():
        raise DataError(f"{path}: missing (expected the six files of cifar-10-batches-bin)")
    _check_cifar_size(path.stat().st_size, str(path), verify)
    return path.read_bytes()


def _read_cifar_archive(path: Path, verify: bool) -> tuple[dict[str, bytes], str]:
    """The six record files and the class names, read from the archive's members without extracting it."""
    wanted = {f"{CIFAR_FOLDER}/{name}": name for name in (*CIFAR_TRAIN_FILES, CIFAR_TEST_FILE, CIFAR_META_FILE)}
    read, meta = {}, ""
    try:
        with tarfile.open(path, "r:gz") as archive:
            for member in archive:
                name = wanted.get(member.name)
                if name is None or not member.isfile():
                    continue
                if name == CIFAR_META_FILE:
                    if member.size > 4096:
                        raise DataError(f"{path}: {member.name} is {member.size:,} bytes, expected a few lines")
                    meta = archive.extractfile(member).read().decode("utf-8", errors="replace")
                    continue
                _check_cifar_size(member.size, f"{path}:{member.name}", verify)
                read[name] = archive.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError) as error:
        raise DataError(f"{path}: not a readable .tar.gz ({error})") from None
    missing = [name for name in (*CIFAR_TRAIN_FILES, CIFAR_TEST_FILE) if name not in read]
    if missing:
        raise DataError(f"{path}: the archive lacks {', '.join(f'{CIFAR_FOLDER}/{m}' for m in missing)}")
    return read, meta


def _cifar_records(data: bytes, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Split records into labels and (N, 3, 32, 32) uint8 images; labels must be 0..9."""
    rows = np.frombuffer(data, dtype=np.uint8).reshape(-1, CIFAR_RECORD)
    labels = rows[:, 0].astype(np.int64)
    if labels.max(initial=0) >= len(CIFAR_CLASSES):
        bad = int(np.argmax(labels >= len(CIFAR_CLASSES)))
        raise DataError(f"{source}: record {bad} has label {labels[bad]}, expected 0..9 (is this CIFAR-100?)")
    return rows[:, 1:].reshape(-1, *CIFAR_SHAPE), labels


# ---------------------------------------------------------------- references


def load_idx(path: str | Path, split: Split = Split()) -> Dataset:
    """An IDX images file and the labels file with the same name ('images' -> 'labels'); test set split off."""
    path = Path(path)
    images, labels = _read_idx_pair(path, _labels_path_for(path))
    return make_dataset(path.name, images, labels, split=split, source=str(path))


def is_idx_name(name: str) -> bool:
    """Whether a file name says IDX: ``.idx``/``.idx.gz``, or MNIST's ``*-idx3-ubyte`` style."""
    return name.endswith((".idx", ".idx.gz")) or "-idx" in name and "ubyte" in name


def check_ref(ref: str) -> None:
    """Raise :class:`DataError` for a reference that cannot name a dataset, without loading it."""
    if ref in BUILTIN_DATASETS:
        return
    if ref.startswith("mnist:"):
        if not Path(ref[6:]).is_dir():
            raise DataError(f"{ref}: {ref[6:]!r} is not a folder (expected mnist:DIR with the MNIST IDX files)")
        return
    if ref.startswith("cifar10:"):
        if not Path(ref[8:]).exists():
            raise DataError(f"{ref}: {ref[8:]!r} not found (expected cifar-10-binary.tar.gz or its folder)")
        return
    path = Path(ref)
    if path.suffix in (".npz", ".csv") or is_idx_name(path.name):
        if not path.is_file():
            raise DataError(f"{ref}: file not found")
        return
    raise DataError(
        f"unknown dataset {ref!r}: expected one of {', '.join(BUILTIN_DATASETS)}, "
        f"mnist:DIR, cifar10:PATH, or a .npz, .csv or .idx file"
    )


def load_dataset(ref: str, *, seed: int = 0, split: Split | None = None) -> Dataset:
    """Resolve a dataset reference (see :data:`BUILTIN_DATASETS`, ``mnist:DIR``, ``cifar10:PATH``, or a file path).

    ``split`` says how one-set data is split into train and test (default: stratified, 20% test, ``seed``);
    the synthetic sets are generated from its seed. For a run, use :func:`load_run_data`.
    """
    split = split if split is not None else Split(seed)
    check_ref(ref)
    if ref == "mnist-sample":
        return load_mnist_sample()
    if ref in SYNTHETIC:
        return make_synthetic(ref, seed=split.seed)
    if ref.startswith("mnist:"):
        return load_mnist(ref[6:])
    if ref.startswith("cifar10:"):
        return load_cifar10(ref[8:])
    path = Path(ref)
    loader = {".npz": load_npz, ".csv": load_csv}.get(path.suffix, load_idx)
    return loader(path, split=split)


def load_run_data(data_ref: str, training_spec: dict) -> Dataset:
    """The dataset exactly as a run saw it: the split (seed, test share, method) its training spec stores."""
    return load_dataset(data_ref, split=Split.of(training_spec))
