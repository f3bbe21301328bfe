"""Uploads and downloads: types sniffed from the bytes, every download asked of the permission core
(rule 9: files_access, plus access to a chat or email the file belongs to)."""

from __future__ import annotations

import asyncio
from typing import Any

from auth.policy import Subject
from media.dimensions import Unmeasurable
from media.sniff import extension_mismatch, pixels, sniff
from media.storage import MediaStore

from ..api.problems import Problem, invalid, not_found
from ..realtime.views import chat_visible, email_visible
from ..store import chats as chat_rows
from ..store.db import Database, Tx
from .chats import chat_facts
from .context import Actor


def check_file(data: bytes, name: str, *, max_pixels: int) -> str:
    """The sniffed type, or a problem: a name that promises another type (415), too many pixels (422)."""
    kind = sniff(data)
    promised = extension_mismatch(name, kind)
    if promised:
        raise Problem(415, "unsupported-media-type", "File type does not match its name",
                      f"{name!r} says {promised}, but its content is {kind}.")
    try:
        count = pixels(data, kind)
    except Unmeasurable as exc:  # served inline, so it must be measured: a decoder would trust it
        raise invalid(f"the {kind} image's size cannot be read ({exc}), so it cannot be checked "
                      f"against the limit of {max_pixels} pixels",
                      [{"path": "file", "message": "image size cannot be read"}]) from None
    if count is not None and count > max_pixels:
        raise invalid(f"the image has {count} pixels; the limit is {max_pixels}",
                      [{"path": "file", "message": "too many pixels"}])
    return kind


async def store_file(store: MediaStore, data: bytes) -> str:
    return await asyncio.to_thread(store.save, data)


async def insert_media(tx: Tx, *, sha256: str, kind: str, name: str, size: int, user_id: int | None,
                       now: float) -> int:
    return await tx.insert("INSERT INTO media (sha256, type, name, size, created_by, created_at) VALUES (?,?,?,?,?,?)",
                           (sha256, kind, name, size, user_id, now))


async def do_upload(db: Database, store: MediaStore, actor: Actor, data: bytes, name: str, *,
                    max_pixels: int) -> int:
    kind = check_file(data, name, max_pixels=max_pixels)
    digest = await store_file(store, data)  # durable before the row that points at it
    return await db.write(lambda tx: insert_media(tx, sha256=digest, kind=kind, name=name, size=len(data),
                                                  user_id=actor.user_id, now=actor.now))


async def may_download(db: Database, subject: Subject, row) -> bool:
    if subject.is_admin:
        return True
    if not subject.rights.files_access:
        return False
    if row["created_by"] == subject.user_id:
        return True
    links = await db.fetchall("SELECT conversation_id, email_id FROM media_links WHERE media_id = ?", (row["id"],))
    for link in links:
        if link["conversation_id"] is not None:
            conversation = await chat_rows.get_conversation(db, link["conversation_id"])
            if conversation is not None and chat_visible(subject, await chat_facts(db, conversation)):
                return True
        if link["email_id"] is not None:
            members = [r[0] for r in await db.fetchall(
                "SELECT m.user_id FROM emails e JOIN inbox_members m ON m.inbox_id = e.inbox_id WHERE e.id = ?",
                (link["email_id"],))]
            if email_visible(subject, members):
                return True
    return False


async def require_download(db: Database, subject: Subject, media_id: int) -> Any:
    row = await db.fetchone("SELECT * FROM media WHERE id = ?", (media_id,))
    if row is None:
        raise not_found("file")
    if not await may_download(db, subject, row):
        raise Problem(403, "forbidden", "Not allowed", "You may not download this file.")
    return row
