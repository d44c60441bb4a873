"""Uploaded datasets, stored by content: ``<runs dir>/uploads/<sha256>/<name>``, under a size cap.

A run keeps the path of its data, so the bytes behind a path must never change: an upload lives in a folder
named by the sha256 of what was uploaded (of the file's bytes; for an IDX pair, of the pair's ``sha256sum``
lines), and two uploads that share a name but not their bytes get two folders. The folder holds at most
:func:`uploads_cap` bytes; to make room for a new upload the oldest uploads that no run refers to are removed
(never one touched in the last :data:`RECENT_SECONDS`: a page may be about to start a run on it). What kind of
file an upload is (npz, CSV, IDX, raw or gzip) is read from its first bytes, not its name, so a raw IDX file
without an extension (``train-images-idx3-ubyte``) is accepted and a misnamed file gets a clear message.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import time
import zlib
from pathlib import Path

from workbench.core.data import is_idx_name
from workbench.runs.store import RunStore, RunStoreDamagedError

UPLOADS_FOLDER = "uploads"
DEFAULT_CAP_BYTES = 4 << 30  # what the uploads folder may hold ($BNN_WORKBENCH_UPLOADS_MAX_BYTES overrides)
CAP_ENV = "BNN_WORKBENCH_UPLOADS_MAX_BYTES"
RECENT_SECONDS = 600.0  # an upload saved or reused this recently is never removed to make room
KINDS = {"npz": ".npz", "csv": ".csv", "idx": ".idx"}  # kind -> the suffix a stored name gets when it has none
_IDX_TYPES = (0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E)
_SNIFF_BYTES = 4096


class UploadError(ValueError):
    """An upload that cannot be stored or used; the message names the file and what was expected."""


def uploads_cap() -> int:
    """Bytes the uploads folder may hold: $BNN_WORKBENCH_UPLOADS_MAX_BYTES (a positive integer) or 4 GiB."""
    value = os.environ.get(CAP_ENV, "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else DEFAULT_CAP_BYTES


def uploads_folder(runs_dir: str | os.PathLike) -> Path:
    return Path(runs_dir) / UPLOADS_FOLDER


def safe_name(name: str) -> str:
    """The file's own name (no folders) with only [A-Za-z0-9._-], never hidden."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", Path(name).name).lstrip(".") or "upload"


def sniff_kind(name: str, content: bytes) -> str:
    """'npz', 'csv' or 'idx' from the first bytes (IDX may be gzipped); UploadError for anything else."""
    head = content[:_SNIFF_BYTES]
    if not head:
        raise UploadError(f"{name}: empty file; expected a .npz, a .csv or an IDX file")
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "npz"
    gzipped = head[:2] == b"\x1f\x8b"
    if gzipped:
        try:  # the first 4 bytes of the inflated stream are all we need, and all that is inflated
            head = zlib.decompressobj(wbits=31).decompress(content[: 1 << 16], 4)
        except zlib.error as error:
            raise UploadError(f"{name}: corrupt gzip data ({error})") from None
    if len(head) >= 4 and head[0] == 0 and head[1] == 0 and head[2] in _IDX_TYPES and head[3] > 0:
        return "idx"
    if gzipped:
        raise UploadError(
            f"{name}: a gzip file whose contents are not IDX (magic 00 00 08 0n); only IDX may be gzipped"
        )
    if b"\0" not in head:
        try:
            head.decode("utf-8")
            return "csv"
        except UnicodeDecodeError as error:
            if error.start >= len(head) - 3:  # a character cut by the sniffed window
                return "csv"
    raise UploadError(
        f"{name}: not a dataset file: expected a .npz (zip) archive, CSV text or an IDX file "
        f"(magic 00 00 08 0n, raw or gzip); it starts with {content[:8].hex(' ')}"
    )


def stored_name(name: str, content: bytes) -> str:
    """The name an upload is stored under: its safe name, with the suffix its contents call for when it has none.

    UploadError when the name promises another kind than the contents (a zip named .csv)."""
    safe, kind = safe_name(name), sniff_kind(name, content)
    claimed = (
        "npz" if safe.endswith(".npz") else "csv" if safe.endswith(".csv") else "idx" if is_idx_name(safe) else None
    )
    if claimed is None:
        return safe + KINDS[kind]  # an IDX file is read gzipped or raw by its magic, whatever its suffix
    if claimed != kind:
        raise UploadError(f"{name}: named like a {claimed.upper()} file but its contents are {kind.upper()}")
    return safe


def _digest(files: list[tuple[str, bytes]]) -> str:
    """One file: sha256 of its bytes. Several: sha256 of their ``sha256sum`` lines, sorted by name."""
    sums = [(name, hashlib.sha256(content).hexdigest()) for name, content in files]
    if len(sums) == 1:
        return sums[0][1]
    return hashlib.sha256("".join(f"{s}  {n}\n" for n, s in sorted(sums)).encode()).hexdigest()


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def referenced_entries(runs_dir: str | os.PathLike) -> set[str]:
    """Names of the entries in the uploads folder that some run's data reference points into."""
    folder = uploads_folder(runs_dir).resolve()
    store = RunStore(runs_dir)
    try:
        refs = [record.data_ref for record in store.list_runs()]
    finally:
        store.close()
    names = set()
    for ref in refs:
        try:
            names.add(Path(ref).resolve().relative_to(folder).parts[0])
        except (ValueError, IndexError, OSError):
            continue
    return names


def make_room(runs_dir: str | os.PathLike, needed: int, cap: int | None = None, now: float | None = None) -> list[str]:
    """Remove the oldest unreferenced, not recent uploads until ``needed`` more bytes fit under the cap.

    Returns the names removed; UploadError, with nothing removed, when they cannot fit.
    A damaged run store removes nothing: which uploads its runs use cannot be known."""
    cap = uploads_cap() if cap is None else cap
    folder = uploads_folder(runs_dir)
    if needed > cap:
        raise UploadError(f"{needed:,} bytes; the uploads folder {folder} holds at most {cap:,} bytes (${CAP_ENV})")
    now = time.time() if now is None else now
    entries = sorted(
        ((path.stat().st_mtime, path, _size(path)) for path in folder.iterdir() if path.name != ".lock"),
        key=lambda entry: entry[0],
    )
    total = sum(size for _, _, size in entries)
    if total + needed <= cap:
        return []
    try:
        referenced = referenced_entries(runs_dir)
    except RunStoreDamagedError as error:  # which uploads its runs use cannot be known: remove none
        raise UploadError(f"no room for {needed:,} more bytes in {folder}, and nothing is removed: {error}") from None
    chosen = []
    for mtime, path, size in entries:
        if total + needed <= cap:
            break
        if path.name in referenced or now - mtime < RECENT_SECONDS:
            continue
        chosen.append(path)
        total -= size
    if total + needed > cap:  # decided before anything is removed: a refused upload costs no other upload
        raise UploadError(
            f"the uploads folder {folder} would hold {total + needed:,} bytes with this upload; at most {cap:,} "
            f"(${CAP_ENV}). The rest is used by runs or was uploaded in the last {RECENT_SECONDS / 60:.0f} "
            f"minutes: delete runs you no longer need, or raise the cap"
        )
    for path in chosen:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return [path.name for path in chosen]


def _intact(target: Path, files: list[tuple[str, bytes]]) -> bool:
    return all((target / name).is_file() and (target / name).read_bytes() == content for name, content in files)


def save_uploads(runs_dir: str | os.PathLike, files: list[tuple[str, bytes]], cap: int | None = None) -> str:
    """Store uploaded files (name, bytes) by content and return the data reference for load_dataset.

    One .npz, one .csv, or an IDX images file with its labels file (names with 'images' and 'labels')."""
    if not files:
        raise UploadError("no file uploaded")
    named = [(stored_name(name, content), content) for name, content in files]
    ref_name = _reference_name([name for name, _ in named], [name for name, _ in files])
    folder = uploads_folder(runs_dir)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / _digest(named)
    with open(folder / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one save or cleanup at a time per uploads folder
        if target.is_dir() and _intact(target, named):
            os.utime(target)  # reused: recent again
            return str(target / ref_name)
        if target.exists():  # a damaged copy: replaced, it cannot be what any run trained on
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        make_room(runs_dir, sum(len(content) for _, content in named), cap)
        partial = folder / f".{target.name}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
        try:
            for name, content in named:
                (partial / name).write_bytes(content)
            partial.rename(target)
        except OSError as error:
            shutil.rmtree(partial, ignore_errors=True)
            raise UploadError(f"cannot store the upload in {folder}: {error.strerror or error}") from None
    return str(target / ref_name)


def _reference_name(stored: list[str], given: list[str]) -> str:
    """The file a data reference names: the one file, or of an IDX pair the images file."""
    if len(stored) == 1:
        return stored[0]
    images = [name for name in stored if "images" in name]
    labels = [name for name in stored if "labels" in name]
    if len(stored) != 2 or len(images) != 1 or len(labels) != 1 or not all(is_idx_name(n) for n in stored):
        raise UploadError(
            "upload: give one .npz or .csv file, or an IDX images file with its labels file "
            f"(names with 'images' and 'labels'); got {', '.join(given)}"
        )
    expected = images[0].replace("images", "labels")
    if labels[0] not in (expected, expected.replace("idx3", "idx1")):
        raise UploadError(
            f"upload: the labels file for {images[0]} must be named {expected.replace('idx3', 'idx1')}; got {labels[0]}"
        )
    return images[0]
