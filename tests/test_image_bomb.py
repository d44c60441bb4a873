"""A small image file that declares a huge picture is refused before it is decoded (Deploy's upload and drawing)."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from workbench.ui.deploy_view import MAX_IMAGE_PIXELS, MAX_IMAGE_SIDE, image_input

pytestmark = pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # ours is the refusal


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def bomb_png(side: int) -> bytes:
    """A grayscale side x side PNG of zeros, compressed as it streams (13300: about 172 KB, 177 MB decoded)."""
    compressor = zlib.compressobj(9)
    row = bytes(side + 1)  # filter byte + pixels
    idat = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def _jpeg_declaring(width: int, height: int) -> bytes:
    """A real 8 x 8 JPEG whose frame header (SOF0) is patched to declare width x height."""
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(buffer, format="JPEG")
    data = bytearray(buffer.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def test_the_png_bomb_of_the_audit_is_refused_before_decoding():
    data = bomb_png(13300)
    assert len(data) < 200_000
    with pytest.raises(ValueError, match=r"bomb\.png: the picture is 13300 x 13300 pixels; expected at most"):
        image_input(data, (1, 28, 28), "bomb.png")


def test_past_pillow_s_own_limit_the_message_is_ours():
    header = struct.pack(">IIBBBBB", 20000, 20000, 8, 0, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IEND", b"")
    with pytest.raises(ValueError, match=rf"big\.png: the picture has more than {MAX_IMAGE_PIXELS:,} pixels"):
        image_input(data, (1, 28, 28), "big.png")


def test_a_jpeg_declaring_a_huge_frame_is_refused_and_the_limit_itself_is_read():
    with pytest.raises(ValueError, match=r"scan\.jpg: the picture is 13300 x 13300 pixels"):
        image_input(_jpeg_declaring(13300, 13300), (1, 28, 28), "scan.jpg")
    side = bomb_png(MAX_IMAGE_SIDE)  # exactly at the limit: decoded
    assert image_input(side, (1, 28, 28), "edge.png").shape == (1, 28, 28)


def test_only_png_and_jpeg_decoders_are_reached():
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(buffer, format="GIF")
    with pytest.raises(ValueError, match=r"x\.gif: not an image Pillow can read \(expected PNG or JPEG\)"):
        image_input(buffer.getvalue(), (1, 28, 28), "x.gif")
