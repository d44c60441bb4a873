"""What the hostile-input audit (tools/audit.py) found, one test each; each failed on the code before its fix."""

from __future__ import annotations

import io
import struct
import zipfile

import numpy as np
import pytest

from workbench.core.data import DataError, load_dataset
from workbench.core.presets import preset
from workbench.core.spec import SpecError, default_training_spec, validate_spec, validate_training_spec
from workbench.deploy import kernels


def _npz_declaring(shape) -> bytes:
    header = repr({"descr": "<f4", "fortran_order": False, "shape": shape}).encode()
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("x.npy", b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + bytes(64))
        y = io.BytesIO()
        np.save(y, np.zeros(4, np.int64))
        archive.writestr("y.npy", y.getvalue())
    return buffer.getvalue()


def test_an_npz_header_declaring_terabytes_is_refused_before_allocating(tmp_path):
    path = tmp_path / "tiny.npz"
    path.write_bytes(_npz_declaring((2**40,)))  # 300 bytes; np.load allocated 4 TiB for it (MemoryError)
    with pytest.raises(DataError, match=r"tiny\.npz: its arrays take 4,398,046,511,\d+ bytes uncompressed"):
        load_dataset(str(path))


def test_an_idx_header_whose_size_overflows_int64_is_refused(tmp_path):
    (tmp_path / "d-images.idx").write_bytes(b"\x00\x00\x08\x03" + struct.pack(">3I", 2**32 - 1, 2**32 - 1, 1))
    (tmp_path / "d-labels.idx").write_bytes(b"\x00\x00\x08\x01" + struct.pack(">I", 0))
    with pytest.raises(DataError, match=r"d-images\.idx: IDX header declares shape \(4294967295, 4294967295, 1\)"):
        load_dataset(str(tmp_path / "d-images.idx"))  # was ValueError: read length must be non-negative


@pytest.mark.parametrize("value", [[], {}, ["dense"]])
def test_a_layer_type_that_is_not_a_string_is_a_spec_error(value):
    spec = preset("binary-cnn")
    spec["layers"][6]["type"] = value
    with pytest.raises(SpecError, match=r"layer 6 \(\?\): field 'type' must be one of dense"):
        validate_spec(spec)  # was TypeError: unhashable type


@pytest.mark.parametrize(
    "call",
    [
        lambda a, b: kernels.xnor_conv2d(a[None, None], b[None, None], 64, stride=1.5),
        lambda a, b: kernels.xnor_conv2d(a[None, None], b[None, None], 64, stride=None),
        lambda a, b: kernels.xnor_conv2d(a[None, None], b[None, None], 64, padding=None),
        lambda a, b: kernels.bind_gemm(b, 64, threads=1)("bits"),
        lambda a, b: kernels.bind_gemm(b, 64, np.zeros(2, np.int32), np.zeros(2, np.uint8), threads=1)([[1]]),
        lambda a, b: kernels.im2col_uint8(np.zeros((1, 1, 6, 6), np.uint8), 2**40, 3),
        lambda a, b: kernels.im2col_uint8(np.zeros((1, 1, 6, 6), np.uint8), 7, 7),
    ],
)
def test_kernel_arguments_of_the_wrong_kind_are_value_errors(call):
    a, b = np.zeros((3, 1), np.uint64), np.zeros((2, 1), np.uint64)
    with pytest.raises(ValueError):  # was TypeError, or for im2col an empty result for a kernel beyond the image
        call(a, b)


def test_a_thread_count_beyond_a_c_int_is_clamped_not_an_overflow():
    a, b = np.zeros((3, 1), np.uint64), np.zeros((2, 1), np.uint64)
    assert kernels.xnor_gemm(a, b, 64, threads=2**63).tolist() == [[64, 64]] * 3  # was OverflowError


def test_a_schedule_name_that_is_not_a_string_is_a_spec_error():
    spec = default_training_spec()
    spec["lr_schedule"] = {"name": []}
    with pytest.raises(SpecError, match=r"field 'lr_schedule.name' must be one of constant"):
        validate_training_spec(spec)  # was TypeError: unhashable type


def test_a_threshold_kernel_without_thresholds_is_refused():
    a, b = np.zeros((3, 1), np.uint64), np.zeros((2, 1), np.uint64)
    with pytest.raises(ValueError, match="xnor_gemm_threshold: thresholds: expected one integer per output channel"):
        kernels.xnor_gemm_threshold(a, b, 64, None, None)  # gave the plain function's int32 dot products
    with pytest.raises(ValueError, match="xnor_conv2d_threshold: thresholds"):
        kernels.xnor_conv2d_threshold(a[None, None], b[None, None], 64, None, None)
