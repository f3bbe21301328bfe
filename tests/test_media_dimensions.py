"""The pixel cap holds for every image type served inline (issue 13, point 8): dimensions are read
the way decoders read them (fill bytes and stray bytes before JPEG markers, progressive frames, WebP
VP8/VP8L/VP8X and animation frames, GIF frames past the logical screen), an image whose size cannot
be read is refused, and the reader, fed arbitrary or mutated bytes, only ever answers a size or its
documented refusal. Pillow, which decoders agree with, is the oracle for the images it writes."""

from __future__ import annotations

import base64
import io
import json
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from conftest import FAST_HASHING
from test_ingest import deliver, make_channel, message

from inbox.keys import MEDIA
from media.dimensions import MAX_STEPS, Unmeasurable, size
from media.sniff import INLINE, sniff


@pytest.fixture
def config_overrides() -> dict:
    return {**FAST_HASHING}


# --- images as Pillow writes them ---------------------------------------------------------------

def pillow(fmt: str, width: int, height: int, **options) -> bytes:
    mode = "RGBA" if options.pop("alpha", False) else "RGB"
    frames = options.pop("frames", 1)
    first = Image.new(mode, (width, height), (200, 30, 60, 128)[:len(mode)])
    out = io.BytesIO()
    if frames > 1:
        rest = [Image.new(mode, (width, height), (k * 40 % 256, 90, 10, 255)[:len(mode)]) for k in range(1, frames)]
        first.save(out, fmt, save_all=True, append_images=rest, **options)
    else:
        first.save(out, fmt, **options)
    return out.getvalue()


VARIANTS = {
    "png": ("PNG", {}),
    "jpeg baseline": ("JPEG", {}),
    "jpeg progressive (SOF2)": ("JPEG", {"progressive": True}),
    "jpeg with exif": ("JPEG", {"exif": b"Exif\x00\x00" + b"MM\x00\x2a\x00\x00\x00\x08" + b"\x00" * 8}),
    "gif": ("GIF", {}),
    "gif animated": ("GIF", {"frames": 3}),
    "webp lossy (VP8)": ("WEBP", {"quality": 50}),
    "webp lossless (VP8L)": ("WEBP", {"lossless": True}),
    "webp with alpha (VP8X)": ("WEBP", {"alpha": True, "quality": 50}),
    "webp animated (VP8X, ANMF)": ("WEBP", {"frames": 3}),
}


def kind_of(data: bytes) -> str:
    kind = sniff(data)
    assert kind in INLINE
    return kind


@settings(max_examples=60, deadline=None)
@given(variant=st.sampled_from(sorted(VARIANTS)), width=st.integers(1, 300), height=st.integers(1, 300))
def test_every_inline_format_is_measured_as_pillow_reads_it(variant, width, height):
    fmt, options = VARIANTS[variant]
    data = pillow(fmt, width, height, **dict(options))
    assert size(data, kind_of(data)) == (width, height) == Image.open(io.BytesIO(data)).size


def jpeg_segments(data: bytes) -> list[tuple[int, bytes]]:
    """A JPEG's header segments (marker, payload with its length) up to and including SOS, then the rest."""
    out, i = [], 2
    while True:
        marker = data[i + 1]
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        out.append((marker, data[i + 2:i + 2 + length]))
        i += 2 + length
        if marker == 0xDA:
            out.append((-1, data[i:]))
            return out


def rebuild(segments, before: callable) -> bytes:
    """SOI, then each segment with ``before(marker)`` bytes put in front of its 0xFF."""
    parts = [b"\xff\xd8"]
    for marker, payload in segments:
        parts.append(payload if marker == -1 else before(marker) + bytes([0xFF, marker]) + payload)
    return b"".join(parts)


def sof_declaring(width: int, height: int, segments) -> list:
    """The same segments with the frame header's size replaced."""
    out = []
    for marker, payload in segments:
        if marker in (0xC0, 0xC2):
            payload = payload[:3] + struct.pack(">HH", height, width) + payload[7:]
        out.append((marker, payload))
    return out


@settings(max_examples=40, deadline=None)
@given(fill=st.integers(1, 40), progressive=st.booleans(), only_sof=st.booleans(),
       width=st.integers(1, 65535), height=st.integers(1, 65535))
def test_jpeg_fill_bytes_before_any_marker_do_not_hide_the_frame_header(fill, progressive, only_sof, width, height):
    base = jpeg_segments(pillow("JPEG", 8, 8, progressive=progressive))
    data = rebuild(sof_declaring(width, height, base),
                   lambda m: b"\xff" * fill if (m in (0xC0, 0xC2) or not only_sof) else b"")
    assert size(data, "image/jpeg") == (width, height)


def test_jpeg_stray_bytes_and_two_frame_headers_count_as_libjpeg_would_see_them():
    base = jpeg_segments(pillow("JPEG", 8, 8))
    # Bytes that are not a marker before the frame header: libjpeg warns, skips them, and reads on.
    stray = rebuild(sof_declaring(65000, 65000, base), lambda m: b"\x00\x13\x37" if m == 0xC0 else b"")
    assert size(stray, "image/jpeg") == (65000, 65000)
    # A second frame header: libjpeg refuses the file; the reader counts each side's largest.
    sof = next(p for m, p in base if m == 0xC0)
    tall = sof[:3] + struct.pack(">HH", 60000, 1) + sof[7:]  # height, width
    second = b"\xff\xd8\xff\xc0" + tall + rebuild(sof_declaring(60000, 1, base), lambda m: b"")[2:]
    assert size(second, "image/jpeg") == (60000, 60000)


@pytest.mark.parametrize("data, reason", [
    (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9", "no frame header"),
    (b"\xff\xd8\xff", "nothing after SOI"),
    (b"\xff\xd8\xff\xc0\x00\x11\x08\x00\x00\x00\x10\x03", "height left to DNL"),
    (b"\xff\xd8\xff\xe0\x00\x01", "segment length below 2"),
    (b"\xff\xd8" + b"\xff\xd0" * (MAX_STEPS + 1), "more markers than the walk's budget"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00\x00\x00\x00\x00\x00\x05", "zero width"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHD", "truncated IHDR"),
    (b"GIF89a\x00\x00\x00\x00\x00\x00\x00;", "empty GIF"),
    (b"RIFF\x04\x00\x00\x00WEBP", "WebP without chunks"),
    (b"RIFF\x20\x00\x00\x00WEBPVP8 \x10\x00\x00\x00\x00\x00\x00\x00\x00\x00", "VP8 without start code"),
    (b"RIFF\x20\x00\x00\x00WEBPVP8L\x05\x00\x00\x00\x00\x00\x00\x00\x00\x00", "VP8L without signature"),
    (b"RIFF\x20\x00\x00\x00WEBPVP8X\x0a\x00\x00\x00\x00\x00", "truncated VP8X"),
])
def test_what_cannot_be_measured_is_refused(data, reason):
    with pytest.raises(Unmeasurable):
        size(data, sniff(data))


def webp(*chunks: bytes) -> bytes:
    body = b"WEBP" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def chunk(fourcc: bytes, payload: bytes) -> bytes:
    return fourcc + struct.pack("<I", len(payload)) + payload + (b"\x00" if len(payload) & 1 else b"")


def u24(n: int) -> bytes:
    return n.to_bytes(3, "little")


def vp8x(width: int, height: int) -> bytes:
    return chunk(b"VP8X", b"\x02\x00\x00\x00" + u24(width - 1) + u24(height - 1))


def vp8(width: int, height: int) -> bytes:
    return chunk(b"VP8 ", b"\x10\x02\x00\x9d\x01\x2a" + struct.pack("<HH", width, height) + b"\x00" * 8)


def vp8l(width: int, height: int) -> bytes:
    return chunk(b"VP8L", b"\x2f" + struct.pack("<I", (width - 1) | (height - 1) << 14) + b"\x00" * 5)


def test_webp_sizes_come_from_every_chunk_that_carries_one():
    assert size(webp(vp8(16383, 16383)), "image/webp") == (16383, 16383)
    assert size(webp(vp8l(16384, 16384)), "image/webp") == (16384, 16384)
    assert size(webp(vp8x(65000, 65000), vp8(1, 1)), "image/webp") == (65000, 65000)
    # A still image whose bitstream is larger than its canvas, and an animation frame placed past it.
    assert size(webp(vp8x(2, 2), vp8l(9000, 7000)), "image/webp") == (9000, 7000)
    frame = chunk(b"ANMF", u24(5000) + u24(0) + u24(99) + u24(99) + u24(0) + b"\x00" + vp8(100, 100))
    assert size(webp(vp8x(100, 100), frame), "image/webp") == (10100, 100)


def gif(screen: tuple[int, int], *frames: tuple[int, int, int, int]) -> bytes:
    out = b"GIF89a" + struct.pack("<HHBBB", *screen, 0, 0, 0)
    for left, top, w, h in frames:
        out += b"\x2c" + struct.pack("<HHHHB", left, top, w, h, 0) + b"\x02\x02\x4c\x01\x00"
    return out + b"\x3b"


def test_gif_frames_past_the_logical_screen_count():
    assert size(gif((10, 10), (0, 0, 10, 10)), "image/gif") == (10, 10)
    assert size(gif((10, 10), (0, 0, 10, 10), (60000, 0, 5000, 10), (0, 0, 1, 40000)), "image/gif") == (65000, 40000)


# --- hostile bytes: a size or the documented refusal, nothing else ----------------------------------

SEEDS = [pillow(fmt, 17, 11, **dict(options)) for fmt, options in VARIANTS.values()]


def measured_or_refused(data: bytes, kind: str) -> None:
    try:
        width, height = size(data, kind)
    except Unmeasurable:
        return
    assert isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0


@settings(max_examples=500, deadline=None)
@given(kind=st.sampled_from(sorted(INLINE)), data=st.binary(max_size=400))
def test_arbitrary_bytes_are_measured_or_refused(kind, data):
    measured_or_refused(data, kind)


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(sorted(INLINE)), prefix=st.sampled_from([b"\x89PNG\r\n\x1a\n", b"\xff\xd8", b"GIF89a",
                                                                     b"RIFF\xff\xff\xff\x7fWEBP"]),
       tail=st.lists(st.sampled_from([b"\xff", b"\x00", b"\xc0", b"\xda", b"\xd9", b"\x2c", b"\x21", b"VP8X",
                                      b"ANMF", b"VP8 ", b"VP8L", b"IHDR", b"\x10\x00\x00\x00", b"\x9d\x01\x2a"]),
                     max_size=60).map(b"".join))
def test_structured_garbage_is_measured_or_refused(kind, prefix, tail):
    measured_or_refused(prefix + tail, kind)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, len(SEEDS) - 1), edits=st.lists(
    st.tuples(st.sampled_from(["flip", "insert", "delete", "cut"]), st.integers(0, 10_000), st.integers(0, 255)),
    min_size=1, max_size=8))
def test_mutated_images_are_measured_or_refused(seed, edits):
    data = bytearray(SEEDS[seed])
    kind = sniff(bytes(data))
    for op, where, value in edits:
        at = where % (len(data) + 1)
        if op == "flip" and at < len(data):
            data[at] ^= value or 1
        elif op == "insert":
            data[at:at] = bytes([value])
        elif op == "delete":
            del data[at:at + 1 + value % 4]
        elif op == "cut":
            del data[at:]
    measured_or_refused(bytes(data), kind)


# --- through the server: uploads and webhooks ----------------------------------------------------

def bomb_jpeg() -> bytes:
    """A small valid JPEG whose frame header says 65000 x 65000, with a fill byte in front of it."""
    base = jpeg_segments(pillow("JPEG", 8, 8))
    return rebuild(sof_declaring(65000, 65000, base), lambda m: b"\xff" if m == 0xC0 else b"")


BOMBS = {
    "jpeg with a fill byte": bomb_jpeg(),
    "webp VP8X": webp(vp8x(65000, 65000), vp8(1, 1)),
    "webp VP8L": webp(vp8l(16384, 16384)),
    "webp VP8": webp(vp8(16383, 16383)),
}


async def stored(api) -> tuple[int, int]:
    files = [p for p in api.app[MEDIA].root.rglob("*") if p.is_file()] if api.app[MEDIA].root.exists() else []
    return (await api.rows("SELECT count(*) FROM media"))[0][0], len(files)


@pytest.mark.parametrize("label", sorted(BOMBS))
async def test_images_over_the_pixel_cap_are_refused_whatever_their_format(api, admin, label):
    r = await api.call("POST", "/api/v1/media?name=photo", data=BOMBS[label], who=admin)
    assert r.status == 422 and r.content_type == "application/problem+json", (r.status, r.text)
    assert "pixels" in r.body["detail"]
    assert await stored(api) == (0, 0)


async def test_an_image_whose_size_cannot_be_read_is_refused_with_a_problem(api, admin):
    for data in (b"\xff\xd8\xff\xe0\x00\x04ab\xff\xd9", webp(chunk(b"ICCP", b"xx"))):
        r = await api.call("POST", "/api/v1/media?name=photo", data=data, who=admin)
        assert r.status == 422 and r.content_type == "application/problem+json", (r.status, r.text)
        assert r.body["errors"] == [{"path": "file", "message": "image size cannot be read"}]
    assert await stored(api) == (0, 0)


async def test_real_images_of_every_inline_format_are_accepted_and_served_inline(api, admin):
    for variant, (fmt, options) in VARIANTS.items():
        data = pillow(fmt, 640, 480, **dict(options))
        r = await api.call("POST", "/api/v1/media?name=photo", data=data, who=admin)
        assert r.status == 201, (variant, r.text)
        got = await api.get(f"/api/v1/media/{r.body['id']}", who=admin)
        assert got.headers["Content-Disposition"].startswith("inline"), variant


async def test_a_webhook_attachment_over_the_cap_refuses_the_delivery(api, admin):
    channel, secret = await make_channel(api, admin)
    before = (await api.rows("SELECT (SELECT count(*) FROM messages), (SELECT count(*) FROM contacts)"))[0]
    files = [{"name": "ok.png", "data": base64.b64encode(pillow("PNG", 4, 4)).decode()},
             {"name": "photo.webp", "data": base64.b64encode(BOMBS["webp VP8X"]).decode()}]
    r = await deliver(api, channel["id"], secret, message("m1", attachments=files))
    assert r.status == 422 and "pixels" in json.dumps(r.body), r.text
    assert (await api.rows("SELECT (SELECT count(*) FROM messages), (SELECT count(*) FROM contacts)"))[0] == before
    assert await stored(api) == (0, 0)
