"""Uploads and downloads: types sniffed from the bytes, every download asked of the permission core
(rule 9: files_access, plus access to a chat or email the file belongs to)."""

from __future__ import annotations

import asyncio
from typing import Any

from auth.access import chat_visible, email_visible
from auth.policy import Subject
from media.dimensions import Unmeasurable
from media.sniff import extension_mismatch, pixels, sniff
from media.storage import MediaStore

from ..errors import Problem, forbidden, invalid, not_found
from ..store import chats as chat_rows
from ..store import media as media_rows
from ..store.db import Database, Tx
from . import chats  # the module, not its names: chats imports this one back
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


insert_media = media_rows.insert


async def do_upload(db: Database, store: MediaStore, actor: Actor, data: bytes, name: str, *,
                    max_pixels: int) -> int:
    kind = check_file(data, name, max_pixels=max_pixels)
    digest = await store_file(store, data)  # durable before the row that points at it
    return await db.write(lambda tx: insert_media(tx, sha256=digest, kind=kind, name=name, size=len(data),
                                                  user_id=actor.user_id, now=actor.now))


async def reachable(db: Database | Tx, subject: Subject, row) -> bool:
    """Where a file may be seen from: admins, its uploader, readers of a chat or an email it belongs to."""
    if subject.is_admin or row["created_by"] == subject.user_id:
        return True
    for link in await media_rows.links(db, row["id"]):
        if link["conversation_id"] is not None:
            conversation = await chat_rows.get_conversation(db, link["conversation_id"])
            if conversation is not None and chat_visible(subject, await chats.chat_facts(db, conversation)):
                return True
        if link["email_id"] is not None:
            if email_visible(subject, await media_rows.email_members(db, link["email_id"])):
                return True
    return False


async def require_download(db: Database | Tx, subject: Subject, media_id: int) -> Any:
    """The file's row for a download, or a problem. Without files_access every id is refused alike
    (rule 9), before the lookup: that 403 is about the user, so it tells nothing about the id. A file
    out of reach is then exactly a missing one (rule 14)."""
    if not subject.rights.files_access:
        raise forbidden("Downloading files needs files access.")
    row = await media_rows.get(db, media_id)
    if row is None or not await reachable(db, subject, row):
        raise not_found("file")
    return row


async def require_attachable(db: Database | Tx, subject: Subject, media_ids: list[int],
                             field: str = "attachments") -> list[dict[str, Any]]:
    """Attachments for a message: what one may attach is what one may download (the same answers
    for the same cases, but 422 since the ids are in the body); each as a message stores it."""
    if not subject.rights.files_access:
        raise forbidden("Attaching files needs files access.")
    found = await chat_rows.media_rows(db, media_ids)
    unseen = [i for i, m in enumerate(media_ids) if m not in found or not await reachable(db, subject, found[m])]
    if unseen:
        # Neither the ids nor anything of the files is echoed: a refusal reads the same for every id.
        raise invalid("no file with that id is visible to you",
                      [{"path": f"{field}.{i}", "message": "no file with that id is visible to you"}
                       for i in unseen])
    return [{"media_id": m, "type": found[m]["type"], "name": found[m]["name"], "size": found[m]["size"]}
            for m in media_ids]
