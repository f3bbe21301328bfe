"""A file's type from its first bytes, never from the client (SPEC section 6). Pure."""

from __future__ import annotations

from . import dimensions

# (magic prefix, offset, MIME type)
_MAGIC = [
    (b"\x89PNG\r\n\x1a\n", 0, "image/png"),
    (b"\xff\xd8\xff", 0, "image/jpeg"),
    (b"GIF87a", 0, "image/gif"),
    (b"GIF89a", 0, "image/gif"),
    (b"%PDF-", 0, "application/pdf"),
    (b"PK\x03\x04", 0, "application/zip"),
    (b"OggS", 0, "audio/ogg"),
    (b"ID3", 0, "audio/mpeg"),
]
# Served inline; everything else is a download (checklist 29).
INLINE = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
EXTENSIONS = {
    "png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif", "webp": "image/webp",
    "pdf": "application/pdf", "zip": "application/zip", "ogg": "audio/ogg", "mp3": "audio/mpeg",
    "txt": "text/plain",
}


def sniff(data: bytes) -> str:
    for magic, offset, kind in _MAGIC:
        if data[offset:offset + len(magic)] == magic:
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    try:
        data[:4096].decode("utf-8")
        return "text/plain" if b"\x00" not in data[:4096] else "application/octet-stream"
    except UnicodeDecodeError:
        return "application/octet-stream"


def extension_mismatch(name: str, kind: str) -> str | None:
    """The type a known file extension promises, when the bytes say otherwise (checklist 28)."""
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    promised = EXTENSIONS.get(ext)
    if promised and promised != kind:
        return promised
    return None


def pixels(data: bytes, kind: str) -> int | None:
    """Width x height of an image served inline (``dimensions.Unmeasurable`` when it cannot be read);
    None for every other type, which is only ever downloaded."""
    if kind not in INLINE:
        return None
    width, height = dimensions.size(data, kind)
    return width * height
