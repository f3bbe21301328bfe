"""Width and height of an image served inline, read from its headers without decoding it. Pure.

The pixel cap is only as good as this reader: a decoder allocates what the file declares, so every
place where a decoder could find a size must be read the way the decoder reads it, and a file whose
size cannot be read is refused (``Unmeasurable``) rather than served. Where a format lets a frame
reach past the declared canvas (GIF, WebP), the largest extent counts.
"""

from __future__ import annotations

import re
import struct

# Headers are walked in Python on the upload's path, so the walk has a budget: a file built of
# millions of one-byte blocks is refused instead of holding the event loop. A 25 MB GIF of full
# 255-byte sub-blocks takes about 100,000 steps; each step costs about a microsecond.
MAX_STEPS = 200_000
_MARKER = re.compile(rb"\xff+([^\xff])")  # any number of fill bytes, then the marker byte


class Unmeasurable(ValueError):
    """The bytes claim an image type, but its dimensions cannot be read from them."""


class _Budget:
    __slots__ = ("left",)

    def __init__(self) -> None:
        self.left = MAX_STEPS

    def step(self) -> None:
        self.left -= 1
        if self.left < 0:
            raise Unmeasurable(f"the header takes more than {MAX_STEPS} steps to walk")


def size(data: bytes, kind: str) -> tuple[int, int]:
    """(width, height) of a PNG, JPEG, GIF or WebP image; ``Unmeasurable`` for anything else."""
    reader = _READERS.get(kind)
    if reader is None:
        raise Unmeasurable(f"{kind} is not an image type this server measures")
    try:
        width, height = reader(data, _Budget())
    except (struct.error, IndexError):
        raise Unmeasurable("the header ends early") from None
    if width <= 0 or height <= 0:
        raise Unmeasurable("the header declares an empty image")
    return width, height


def _png(data: bytes, budget: _Budget) -> tuple[int, int]:
    # IHDR must be the first chunk (PNG 11.2.2); APNG frames must fit inside it.
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise Unmeasurable("a PNG without its IHDR chunk first")
    return struct.unpack(">II", data[16:24])


# Frame headers: SOF0-3, 5-7, 9-11, 13-15 (C4 is DHT, C8 JPG, CC DAC). Markers without a length.
_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM, RST0-7


def _jpeg(data: bytes, budget: _Budget) -> tuple[int, int]:
    """Walk the markers as libjpeg does: skip stray bytes and any number of 0xFF fill bytes before a
    marker (ITU T.81 B.1.1.2), skip each segment by its length, and read every frame header before
    the first scan (libjpeg refuses a frame header after it). Two frame headers (which libjpeg also
    refuses) count as the larger of each side."""
    if data[:2] != b"\xff\xd8":
        raise Unmeasurable("a JPEG without its start-of-image marker")
    best: tuple[int, int] | None = None
    i = 2
    while (found := _MARKER.search(data, i)) is not None:
        budget.step()
        marker, i = found[1][0], found.end()
        if marker == 0x00 or marker in _STANDALONE or marker == 0xD8:
            continue  # a stray FF00, or a marker without a segment
        if marker in (0xD9, 0xDA):  # end of image, or start of scan: no frame header can follow
            break
        if i + 2 > len(data):
            break
        length = struct.unpack(">H", data[i:i + 2])[0]
        if length < 2:
            raise Unmeasurable("a JPEG segment with an impossible length")
        if marker in _SOF:
            height, width = struct.unpack(">HH", data[i + 3:i + 7])
            if height == 0:  # the height would come later in a DNL segment: not measurable up front
                raise Unmeasurable("a JPEG whose height is left to a DNL marker")
            best = _larger(best, (width, height))
        i += length
    if best is None:
        raise Unmeasurable("a JPEG without a frame header")
    return best


def _gif(data: bytes, budget: _Budget) -> tuple[int, int]:
    """The logical screen, grown by every image descriptor's extent (decoders enlarge the canvas to
    fit a frame that reaches past it). A walk that meets anything else stops, as a decoder does."""
    if data[:6] not in (b"GIF87a", b"GIF89a"):
        raise Unmeasurable("a GIF without its signature")
    best = struct.unpack("<HH", data[6:10])
    flags = data[10]
    i = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    while i < len(data):
        budget.step()
        block = data[i]
        if block == 0x21:  # extension: label, then sub-blocks
            i = _skip_sub_blocks(data, i + 2, budget)
        elif block == 0x2C:  # image descriptor
            left, top, w, h, flags = struct.unpack("<HHHHB", data[i + 1:i + 10])
            best = _larger(best, (left + w, top + h))
            i += 10 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
            i = _skip_sub_blocks(data, i + 1, budget)  # after the LZW minimum code size
        else:  # the trailer (0x3B), or bytes no decoder reads past
            break
    return best


def _skip_sub_blocks(data: bytes, i: int, budget: _Budget) -> int:
    while i < len(data) and data[i]:
        budget.step()
        i += data[i] + 1
    return i + 1


def _webp(data: bytes, budget: _Budget) -> tuple[int, int]:
    """Every chunk that carries a size: the VP8X canvas, each VP8 and VP8L bitstream, and each ANMF
    frame's extent on the canvas (its own bitstream is read too). The largest counts."""
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise Unmeasurable("a WebP without its RIFF header")
    best = _webp_chunks(data, 12, len(data), budget, in_frame=False)
    if best is None:
        raise Unmeasurable("a WebP without a chunk that gives its size")
    return best


def _webp_chunks(data: bytes, i: int, end: int, budget: _Budget, *, in_frame: bool) -> tuple[int, int] | None:
    best: tuple[int, int] | None = None
    while i + 8 <= end:
        budget.step()
        fourcc = data[i:i + 4]
        length = struct.unpack("<I", data[i + 4:i + 8])[0]
        body, nxt = i + 8, min(i + 8 + length + (length & 1), end)
        if fourcc == b"VP8X":
            best = _larger(best, (_u24(data, body + 4) + 1, _u24(data, body + 7) + 1))
        elif fourcc == b"ANMF" and not in_frame:  # frames do not nest
            x, y = 2 * _u24(data, body), 2 * _u24(data, body + 3)
            best = _larger(best, (x + _u24(data, body + 6) + 1, y + _u24(data, body + 9) + 1))
            best = _larger(best, _webp_chunks(data, body + 16, nxt, budget, in_frame=True))
        elif fourcc == b"VP8 ":
            # A key frame: 3-byte frame tag, start code 9D 01 2A, then 14-bit width and height.
            if data[body + 3:body + 6] != b"\x9d\x01\x2a":
                raise Unmeasurable("a VP8 bitstream without its start code")
            w, h = struct.unpack("<HH", data[body + 6:body + 10])
            best = _larger(best, (w & 0x3FFF, h & 0x3FFF))
        elif fourcc == b"VP8L":
            if data[body] != 0x2F:
                raise Unmeasurable("a VP8L bitstream without its signature")
            bits = struct.unpack("<I", data[body + 1:body + 5])[0]
            best = _larger(best, ((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1))
        i = nxt if nxt > i else end
    return best


def _u24(data: bytes, i: int) -> int:
    if i + 3 > len(data):
        raise IndexError(i)
    return int.from_bytes(data[i:i + 3], "little")


def _larger(a: tuple[int, int] | None, b: tuple[int, int] | None) -> tuple[int, int] | None:
    """The canvas that holds both: a decoder that grows its canvas to fit a frame grows each side."""
    if a is None or b is None:
        return a or b
    return max(a[0], b[0]), max(a[1], b[1])


_READERS = {"image/png": _png, "image/jpeg": _jpeg, "image/gif": _gif, "image/webp": _webp}
