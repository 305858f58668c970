"""The generated PNG images: valid files, deterministic per prompt."""

from __future__ import annotations

import struct
import zlib

from hypothesis import given, settings
from hypothesis import strategies as st

from rungen_async.emulator import read_png_header, render_prompt
from rungen_async.emulator._png import PNG_SIGNATURE, image_size


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    chunks, offset = [], len(PNG_SIGNATURE)
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert crc == zlib.crc32(kind + body)
        chunks.append((kind, body))
        offset += 12 + length
    return chunks


def test_png_is_a_valid_file() -> None:
    """Signature, IHDR, one IDAT that inflates to the right size, IEND, good CRCs."""
    data = render_prompt("a lighthouse at dawn", 40, 30)

    chunks = _chunks(data)

    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert [kind for kind, _ in chunks] == [b"IHDR", b"IDAT", b"IEND"]
    assert read_png_header(data) == (40, 30, 8, 2)
    assert len(zlib.decompress(chunks[1][1])) == 30 * (1 + 40 * 3)


def test_png_is_deterministic_per_prompt() -> None:
    """The same prompt gives the same bytes; another prompt gives other pixels."""
    assert render_prompt("fox", 32, 32) == render_prompt("fox", 32, 32)
    assert render_prompt("fox", 32, 32) != render_prompt("owl", 32, 32)


@settings(max_examples=30, deadline=None)
@given(st.text(max_size=50), st.integers(1, 64), st.integers(1, 64))
def test_png_any_prompt_and_size(prompt: str, width: int, height: int) -> None:
    """Any prompt and size gives a well-formed image of that size."""
    data = render_prompt(prompt, width, height)

    assert read_png_header(data)[:2] == (width, height)
    assert len(zlib.decompress(_chunks(data)[1][1])) == height * (1 + width * 3)


def test_image_size_keeps_proportions() -> None:
    """Sizes are scaled down to at most 256 and default to 128 square."""
    assert image_size({"width": 1024, "height": 768}) == (256, 192)
    assert image_size({"width": 64, "height": 32}) == (64, 32)
    assert image_size({}) == (128, 128)
    assert image_size({"width": True, "height": "x"}) == (128, 128)
