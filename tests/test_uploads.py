"""Uploads stored by content under a size cap (workbench.runs.uploads)."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import time
from pathlib import Path

import numpy as np
import pytest

from workbench.core.data import load_dataset, write_idx
from workbench.runs.store import RunStore
from workbench.runs.uploads import RECENT_SECONDS, UploadError, save_uploads, sniff_kind, stored_name


def _csv(offset: int) -> bytes:
    rows = ["label,x0,x1"] + [f"{i % 2},{i + offset},{-i}" for i in range(40)]
    return "\n".join(rows).encode()


def _idx(tmp_path: Path, array: np.ndarray, compress: bool = False) -> bytes:
    return write_idx(tmp_path / "scratch", array, compress=compress).read_bytes()


def _age(path: str | Path, seconds: float) -> None:
    """Make an upload's folder look ``seconds`` old."""
    folder = Path(path).parent
    stamp = time.time() - seconds
    os.utime(folder, (stamp, stamp))


def test_two_uploads_of_one_name_keep_their_own_bytes(tmp_path):
    first = save_uploads(tmp_path, [("../../etc/my data.csv", _csv(0))])
    second = save_uploads(tmp_path, [("my data.csv", _csv(100))])
    assert Path(first) == tmp_path / "uploads" / hashlib.sha256(_csv(0)).hexdigest() / "my_data.csv"
    assert first != second
    assert Path(first).read_bytes() == _csv(0) and Path(second).read_bytes() == _csv(100)
    # a run on the first upload still sees its own data after the second one
    ranges = [load_dataset(ref, seed=0).preprocessing["value_range"] for ref in (first, second)]
    assert ranges == [[-39.0, 39.0], [-39.0, 139.0]]
    assert save_uploads(tmp_path, [("renamed-later.csv", _csv(0))]) != first  # same bytes, its own name beside
    assert save_uploads(tmp_path, [("my data.csv", _csv(0))]) == first  # same bytes and name: the same file


def test_raw_idx_files_without_an_extension_are_accepted_and_load(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(30, 4, 4), dtype=np.uint8)
    labels = (np.arange(30) % 3).astype(np.uint8)
    ref = save_uploads(
        tmp_path,
        [("train-labels-idx1-ubyte", _idx(tmp_path, labels)), ("train-images-idx3-ubyte", _idx(tmp_path, images))],
    )
    assert Path(ref).name == "train-images-idx3-ubyte"
    dataset = load_dataset(ref, seed=0)
    assert dataset.num_classes == 3 and len(dataset.x_train) + len(dataset.x_test) == 30
    # names that do not say IDX get the suffix their contents call for; gzip is read through
    ref = save_uploads(
        tmp_path,
        [("digits-images", _idx(tmp_path, images, compress=True)), ("digits-labels", _idx(tmp_path, labels))],
    )
    assert Path(ref).name == "digits-images.idx" and (Path(ref).parent / "digits-labels.idx").is_file()
    assert load_dataset(ref, seed=0).num_classes == 3


def test_the_kind_is_read_from_the_contents(tmp_path):
    buffer = io.BytesIO()
    np.savez(buffer, x=np.zeros((2, 2)), y=np.zeros(2))
    npz = buffer.getvalue()
    assert sniff_kind("a", npz) == "npz" and stored_name("a", npz) == "a.npz"
    assert sniff_kind("a", _csv(0)) == "csv" and stored_name("points", _csv(0)) == "points.csv"
    assert sniff_kind("a", "é".encode() * 3000) == "csv"  # a character cut at the sniffed window's end
    with pytest.raises(UploadError, match=r"data\.csv: named like a CSV file but its contents are NPZ"):
        stored_name("data.csv", npz)
    with pytest.raises(UploadError, match=r"photo\.png: not a dataset file: expected .* it starts with 89 50 4e 47"):
        sniff_kind("photo.png", b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(UploadError, match=r"x\.gz: a gzip file whose contents are not IDX"):
        sniff_kind("x.gz", gzip.compress(b"label,x\n0,1\n"))
    with pytest.raises(UploadError, match=r"empty\.csv: empty file"):
        sniff_kind("empty.csv", b"")


def test_a_pair_must_be_images_with_its_labels(tmp_path):
    labels = _idx(tmp_path, np.zeros(3, dtype=np.uint8))
    with pytest.raises(UploadError, match="give one .npz or .csv file, or an IDX images file with its labels"):
        save_uploads(tmp_path, [("a.csv", _csv(0)), ("b-labels.idx", labels)])
    with pytest.raises(UploadError, match="the labels file for a-images.idx must be named a-labels.idx; got b-labels"):
        save_uploads(tmp_path, [("a-images.idx", _idx(tmp_path, np.zeros((3, 2), np.uint8))), ("b-labels.idx", labels)])
    assert not list((tmp_path / "uploads").glob("[0-9a-f]*"))  # nothing stored for a refused upload


def test_the_cap_removes_the_oldest_unreferenced_uploads_only(tmp_path):
    size = len(_csv(0))
    cap = 3 * size + size // 2  # room for three
    used = save_uploads(tmp_path, [("used.csv", _csv(0))], cap=cap)
    old = save_uploads(tmp_path, [("old.csv", _csv(1))], cap=cap)
    newer = save_uploads(tmp_path, [("newer.csv", _csv(2))], cap=cap)
    store = RunStore(tmp_path)
    store.create_run("r", {"name": "n"}, {}, used)
    store.close()
    _age(used, 3 * RECENT_SECONDS)
    _age(old, 2 * RECENT_SECONDS)
    _age(newer, 1.5 * RECENT_SECONDS)
    fourth = save_uploads(tmp_path, [("fourth.csv", _csv(3))], cap=cap)
    assert Path(used).is_file() and Path(newer).is_file() and Path(fourth).is_file()
    assert not Path(old).parent.exists()  # the oldest one no run uses went
    # removing the one old unused upload would not make room: the fifth is refused with the reason, nothing removed
    with pytest.raises(UploadError, match=r"would hold .* bytes with this upload; at most .*BNN_WORKBENCH_UPLOADS"):
        save_uploads(tmp_path, [("fifth.csv", _csv(4))], cap=2 * size + size // 2)
    assert Path(used).is_file() and Path(newer).is_file() and Path(fourth).is_file()
    with pytest.raises(UploadError, match=rf"{size:,} bytes; the uploads folder .* holds at most {size - 1:,} bytes"):
        save_uploads(tmp_path, [("big.csv", _csv(0))], cap=size - 1)


def test_a_damaged_copy_is_replaced(tmp_path):
    ref = save_uploads(tmp_path, [("p.csv", _csv(0))])
    Path(ref).write_bytes(b"label,x\n")
    assert save_uploads(tmp_path, [("p.csv", _csv(0))]) == ref and Path(ref).read_bytes() == _csv(0)


def test_a_damaged_run_store_removes_no_upload(tmp_path):
    size = len(_csv(0))
    old = save_uploads(tmp_path, [("old.csv", _csv(1))], cap=2 * size)
    _age(old, 2 * RECENT_SECONDS)
    (tmp_path / "runs.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(UploadError, match=r"nothing is removed: .*runs\.db"):
        save_uploads(
            tmp_path,
            [
                ("new.csv", _csv(2)),
            ],
            cap=size + size // 2,
        )
    assert Path(old).is_file()


def test_train_accepts_a_raw_idx_pair_without_extensions_and_names_a_bad_file(isolated_runs_dir, tmp_path):
    """The page's uploader has no type= list (it filtered out names without an extension); the library decides."""
    from streamlit.testing.v1 import AppTest

    from workbench.core.presets import preset
    from workbench.ui import state

    images = _idx(tmp_path, np.random.default_rng(0).integers(0, 256, (30, 4, 4), dtype=np.uint8))
    labels = _idx(tmp_path, (np.arange(30) % 3).astype(np.uint8))
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=60).run()
    at.session_state[state.SPEC_KEY] = preset("toy-mlp")
    at.switch_page("pages/train.py").run()
    at.radio(key="train_data_source").set_value("Upload a file").run()
    uploader = at.get("file_uploader")[0]
    uploader.set_value([("train-images-idx3-ubyte", images, None), ("train-labels-idx1-ubyte", labels, None)])
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    stored = list((isolated_runs_dir / "uploads").glob("*/train-images-idx3-ubyte"))
    assert len(stored) == 1 and stored[0].read_bytes() == images
    at.get("file_uploader")[0].set_value([("photo.png", b"\x89PNG\r\n\x1a\n" + bytes(40), None)])
    at.run()
    assert not at.exception
    assert [e.value for e in at.error] == [
        "photo.png: not a dataset file: expected a .npz (zip) archive, CSV text or an IDX file "
        "(magic 00 00 08 0n, raw or gzip); it starts with 89 50 4e 47 0d 0a 1a 0a"
    ]
