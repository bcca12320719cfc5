"""Hand-made image bytes for tests (imported by test modules; pytest puts tests/ on sys.path)."""

from __future__ import annotations

import struct
import zlib


def png_header_only(width: int, height: int) -> bytes:
    """A PNG declaring width x height (1-bit grey) with a tiny pixel stream: a classic bomb shape."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + chunk(b"IEND", b""))
