"""Read and write .bnn files: magic, version, a JSON header, 64-byte aligned little-endian arrays, SHA-256.

The layout is specified in docs/FORMAT.md; this module is its reference implementation and needs NumPy
only (no torch, never pickle). The reader treats every file as hostile: it caps the header, checks every
declared offset and size against the file size before it allocates anything, refuses bytes the layout does
not account for, then checks the program as the engine will run it (``PackedModel.check``: attrs, array
shapes and values, limits), and reports what is wrong as a ``BnnFormatError`` that names the field or array.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pathlib
import struct

import numpy as np

from workbench.deploy.packed import (
    ALLOWED_DTYPES,
    OPS,
    PackedLayer,
    PackedModel,
    PackedModelError,
)

MAGIC = b"\x89BNN\r\n\x1a\n"
VERSION = 1
ALIGN = 64
PREFIX = struct.Struct("<8sII")  # magic, version, header length
DIGEST_BYTES = 32
MAX_HEADER_BYTES = 16 * 1024 * 1024
MAX_NDIM = 8
MAX_ARRAYS = 100_000


class BnnFormatError(ValueError):
    """A .bnn file that is truncated, corrupted, of another version or otherwise not what FORMAT.md says."""


def _aligned(offset: int) -> int:
    return (offset + ALIGN - 1) // ALIGN * ALIGN


def to_bytes(packed: PackedModel) -> bytes:
    """Serialise a packed model (checked first) into the bytes of a .bnn file."""
    packed.check()
    arrays: list[np.ndarray] = []
    layers_json = []
    for layer in packed.layers:
        entries = {}
        for key, array in layer.arrays.items():
            entries[key] = {
                "dtype": array.dtype.str,
                "shape": list(array.shape),
                "offset": 0,
                "nbytes": int(array.nbytes),
            }
            arrays.append(np.ascontiguousarray(array))
        layers_json.append({"name": layer.name, "op": layer.op, "attrs": layer.attrs, "arrays": entries})
    header = {"meta": packed.meta, "layers": layers_json}
    # Offsets depend on the header length and the header holds the offsets: lay out until it is stable.
    data_start = 0
    while True:
        offset = _aligned(PREFIX.size + len(json.dumps(header).encode()))
        if offset == data_start:
            break
        data_start = offset
        for entry in (e for layer in layers_json for e in layer["arrays"].values()):
            entry["offset"] = offset
            offset = _aligned(offset + entry["nbytes"])
    header_bytes = json.dumps(header).encode()
    out = bytearray(PREFIX.pack(MAGIC, VERSION, len(header_bytes)) + header_bytes)
    for entry, array in zip((e for layer in layers_json for e in layer["arrays"].values()), arrays):
        out += bytes(entry["offset"] - len(out))
        out += array.tobytes()
    out += bytes(_aligned(len(out)) - len(out))
    out += hashlib.sha256(out).digest()
    return bytes(out)


def save(packed: PackedModel, path: str | os.PathLike) -> int:
    """Write ``packed`` to ``path`` atomically (temp file + rename); returns the file size in bytes."""
    path = pathlib.Path(path)
    data = to_bytes(packed)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)
    return len(data)


def load(path: str | os.PathLike) -> PackedModel:
    """Read a .bnn file; raises BnnFormatError (a ValueError) naming the file and what is wrong."""
    path = pathlib.Path(path)
    try:
        data = path.read_bytes()
    except IsADirectoryError as error:
        raise BnnFormatError(f"{path}: is a folder, expected a .bnn file") from error
    try:
        return from_bytes(data)
    except BnnFormatError as error:
        raise BnnFormatError(f"{path}: {error}") from None


def from_bytes(data: bytes) -> PackedModel:
    """Parse the bytes of a .bnn file (see ``load``)."""
    size = len(data)
    if size < PREFIX.size + DIGEST_BYTES:
        raise BnnFormatError(f"file is {size} bytes, too short for a .bnn file (at least {PREFIX.size + DIGEST_BYTES})")
    magic, version, header_length = PREFIX.unpack_from(data, 0)
    if magic != MAGIC:
        raise BnnFormatError(f"not a .bnn file: magic bytes are {magic!r}, expected {MAGIC!r}")
    if version != VERSION:
        raise BnnFormatError(f"format version {version} is not supported, expected {VERSION}")
    if header_length > MAX_HEADER_BYTES:
        raise BnnFormatError(f"header length {header_length} bytes exceeds the limit of {MAX_HEADER_BYTES}")
    data_end = size - DIGEST_BYTES
    if PREFIX.size + header_length > data_end:
        raise BnnFormatError(
            f"header of {header_length} bytes at offset {PREFIX.size} lies beyond the end of "
            f"the data ({data_end} bytes before the checksum): the file is truncated"
        )
    header = _parse_header(data[PREFIX.size : PREFIX.size + header_length])
    data_start = _aligned(PREFIX.size + header_length)
    layers, spans = _parse_layers(header, data_start, data_end)  # names what a truncated file lacks
    # then the checksum, before the padding bytes: a flipped byte is reported as damage, wherever it is
    digest = hashlib.sha256(memoryview(data)[:data_end]).digest()
    if digest != data[data_end:]:
        raise BnnFormatError("SHA-256 checksum mismatch: the file is corrupted")
    _check_padding(data, PREFIX.size + header_length, spans, data_end)
    for layer, entries in layers:
        for key, (dtype, shape, offset, nbytes) in entries.items():
            layer.arrays[key] = (
                np.frombuffer(data, dtype=dtype, count=nbytes // dtype.itemsize, offset=offset).reshape(shape).copy()
            )
    packed = PackedModel(meta=header["meta"], layers=[layer for layer, _ in layers])
    try:
        packed.check()
    except PackedModelError as error:
        raise BnnFormatError(str(error)) from None
    return packed


def _parse_header(raw: bytes) -> dict:
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise BnnFormatError(f"header is not valid UTF-8 JSON: {error}") from None
    if not isinstance(header, dict):
        raise BnnFormatError(f"header must be a JSON object, got {type(header).__name__}")
    meta = header.get("meta")
    if not isinstance(meta, dict):
        raise BnnFormatError(f"header field 'meta' must be an object, got {type(meta).__name__}")
    # the meta fields themselves (input_shape, num_classes, ...) are PackedModel.check's, after the arrays
    if not isinstance(header.get("layers"), list):
        raise BnnFormatError(f"header field 'layers' must be a list, got {type(header.get('layers')).__name__}")
    return header


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse_layers(header: dict, data_start: int, data_end: int) -> tuple[list[tuple[PackedLayer, dict]], list]:
    """Check every layer entry and array declaration against the file size; allocate nothing yet.

    Returns the layers with their array declarations, and the arrays' (offset, nbytes, name) in file order.
    """
    layers = []
    spans = []
    count = 0
    for index, entry in enumerate(header["layers"]):
        where = f"layer {index}"
        if not isinstance(entry, dict):
            raise BnnFormatError(f"{where}: must be an object, got {type(entry).__name__}")
        name, op, attrs, arrays = entry.get("name"), entry.get("op"), entry.get("attrs"), entry.get("arrays")
        if not isinstance(name, str):
            raise BnnFormatError(f"{where}: field 'name' must be a string, got {name!r}")
        if not isinstance(op, str) or op not in OPS:
            raise BnnFormatError(f"{where} ({name!r}): field 'op' must be one of {sorted(OPS)}, got {op!r}")
        if not isinstance(attrs, dict) or not isinstance(arrays, dict):
            raise BnnFormatError(f"{where} ({name!r}): fields 'attrs' and 'arrays' must be objects")
        parsed = {}
        for key, declaration in arrays.items():
            count += 1
            if count > MAX_ARRAYS:
                raise BnnFormatError(f"more than {MAX_ARRAYS} arrays declared")
            parsed[key] = _parse_array(f"layers.{index}.{key}", declaration, data_start, data_end)
            spans.append((parsed[key][2], parsed[key][3], f"layers.{index}.{key}"))
        layers.append((PackedLayer(name=name, op=op, attrs=attrs), parsed))
    spans.sort()
    for (offset_a, nbytes_a, name_a), (offset_b, _, name_b) in zip(spans, spans[1:]):
        if offset_a + nbytes_a > offset_b:
            raise BnnFormatError(
                f"array {name_a!r} (offset {offset_a}, {nbytes_a} bytes) overlaps array {name_b!r} at offset {offset_b}"
            )
    return layers, spans


def _check_padding(data: bytes, header_end: int, spans: list, data_end: int) -> None:
    """Nothing the layout does not account for: zero bytes between the header, the arrays and the checksum, and
    the data section ending where the last array ends, padded to a multiple of 64."""
    last = max((offset + nbytes for offset, nbytes, _ in spans), default=header_end)
    if data_end != _aligned(last):
        raise BnnFormatError(
            f"the data section must end at byte {_aligned(last)} (the last array's end {last}, "
            f"padded to a multiple of {ALIGN}), got {data_end}: {data_end - _aligned(last)} "
            f"unaccounted bytes before the checksum"
        )
    view, position = memoryview(data), header_end
    for offset, nbytes, name in [*spans, (data_end, 0, None)]:
        gap = view[position:offset]
        if gap.nbytes and bytes(gap).count(0) != gap.nbytes:
            where = position + next(i for i, byte in enumerate(gap) if byte)
            before = f"array {name!r}" if name else "the checksum"
            raise BnnFormatError(f"non-zero byte at offset {where} in the padding before {before}: padding must be 0")
        position = max(position, offset + nbytes)


def _parse_array(name: str, declaration, data_start: int, data_end: int):
    if not isinstance(declaration, dict):
        raise BnnFormatError(f"array {name!r}: declaration must be an object, got {type(declaration).__name__}")
    dtype, shape = declaration.get("dtype"), declaration.get("shape")
    offset, nbytes = declaration.get("offset"), declaration.get("nbytes")
    if not isinstance(dtype, str) or dtype not in ALLOWED_DTYPES:
        raise BnnFormatError(f"array {name!r}: dtype must be one of {list(ALLOWED_DTYPES)}, got {dtype!r}")
    if not (isinstance(shape, list) and len(shape) <= MAX_NDIM and all(_is_int(v) and v >= 0 for v in shape)):
        raise BnnFormatError(
            f"array {name!r}: shape must be a list of at most {MAX_NDIM} non-negative integers, got {shape!r}"
        )
    if not (_is_int(offset) and _is_int(nbytes) and offset >= 0 and nbytes >= 0):
        raise BnnFormatError(
            f"array {name!r}: offset and nbytes must be non-negative integers, got {offset!r}, {nbytes!r}"
        )
    if offset % ALIGN:
        raise BnnFormatError(f"array {name!r}: offset {offset} is not a multiple of {ALIGN}")
    if offset < data_start:
        raise BnnFormatError(f"array {name!r}: offset {offset} lies inside the header (data starts at {data_start})")
    if offset + nbytes > data_end:
        raise BnnFormatError(
            f"offset {offset} + {nbytes} bytes of array {name!r} lies beyond the end of the data "
            f"({data_end} bytes before the checksum, file {data_end + DIGEST_BYTES} bytes)"
        )
    np_dtype = np.dtype(dtype)
    expected = math.prod(shape) * np_dtype.itemsize
    if expected != nbytes:
        raise BnnFormatError(
            f"array {name!r}: shape {shape} of {dtype} needs {expected} bytes, declared nbytes {nbytes}"
        )
    return np_dtype, tuple(shape), offset, nbytes
