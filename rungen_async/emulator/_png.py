"""
Small, real PNG images drawn from a prompt: a two-colour sky, a sun and a horizon band.

The same prompt and size always give the same bytes. Written with `zlib` and `struct` only:
eight-bit RGB, one IDAT chunk, filter type 0 on every row.
"""

from __future__ import annotations

import hashlib
import math
import struct
import zlib
from typing import Any, Final

PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
MAX_SIDE: Final = 256  # images are scaled down to this; the docs' 1024x1024 would be slow
DEFAULT_SIDE: Final = 128


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_png(width: int, height: int, rows: list[bytes]) -> bytes:
    """Encode *rows* of packed RGB pixels as a PNG file."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    raw = b"".join(b"\x00" + row for row in rows)
    return (
        PNG_SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw, 6))
        + _chunk(b"IEND", b"")
    )


def image_size(job_input: dict[str, Any]) -> tuple[int, int]:
    """The output size for a job's *width* and *height*, kept in proportion, at most 256."""
    width, height = job_input.get("width"), job_input.get("height")
    if not isinstance(width, int | float) or isinstance(width, bool) or width <= 0:
        width = DEFAULT_SIDE
    if not isinstance(height, int | float) or isinstance(height, bool) or height <= 0:
        height = DEFAULT_SIDE
    scale = min(1.0, MAX_SIDE / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _lerp(a: bytes, b: bytes, t: float) -> bytes:
    return bytes(round(x + (y - x) * t) for x, y in zip(a, b, strict=True))


def render_prompt(prompt: str, width: int = DEFAULT_SIDE, height: int = DEFAULT_SIDE) -> bytes:
    """Draw *prompt* as a *width* x *height* PNG; deterministic in all three."""
    seed = hashlib.sha256(prompt.encode()).digest()
    top, bottom, sun, band = seed[0:3], seed[3:6], seed[6:9], seed[9:12]
    cx = width * (0.2 + 0.6 * seed[12] / 255)
    cy = height * (0.15 + 0.4 * seed[13] / 255)
    radius = min(width, height) * (0.08 + 0.17 * seed[14] / 255)
    horizon = int(height * (0.6 + 0.3 * seed[15] / 255))
    rows: list[bytes] = []
    for y in range(height):
        colour = band if y >= horizon else _lerp(top, bottom, y / max(1, height - 1))
        row = bytearray(colour * width)
        dy = y + 0.5 - cy
        if abs(dy) < radius and y < horizon:
            half = math.sqrt(radius * radius - dy * dy)
            start, stop = max(0, round(cx - half)), min(width, round(cx + half))
            if stop > start:
                row[start * 3 : stop * 3] = sun * (stop - start)
        rows.append(bytes(row))
    return encode_png(width, height, rows)


def read_png_header(data: bytes) -> tuple[int, int, int, int]:
    """Return ``(width, height, bit_depth, colour_type)`` from a PNG's IHDR chunk."""
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG file")
    length, kind = struct.unpack(">I4s", data[8:16])
    if kind != b"IHDR" or length != 13:
        raise ValueError("PNG does not start with an IHDR chunk")
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    return width, height, depth, colour
