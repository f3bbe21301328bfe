"""Rows of stored files and where each is used (a chat, an email)."""

from __future__ import annotations

from .db import Database, Tx


async def insert(tx: Tx, *, sha256: str, kind: str, name: str, size: int, user_id: int | None, now: float) -> int:
    return await tx.insert("INSERT INTO media (sha256, type, name, size, created_by, created_at) VALUES (?,?,?,?,?,?)",
                           (sha256, kind, name, size, user_id, now))


async def get(db: Database | Tx, media_id: int):
    return await db.fetchone("SELECT * FROM media WHERE id = ?", (media_id,))


async def links(db: Database | Tx, media_id: int) -> list:
    """Where a file is used: rows of (conversation_id, email_id)."""
    return await db.fetchall("SELECT conversation_id, email_id FROM media_links WHERE media_id = ?", (media_id,))


async def email_members(db: Database | Tx, email_id: int) -> list[int]:
    """The members of the inbox an email is in."""
    return [r[0] for r in await db.fetchall(
        "SELECT m.user_id FROM emails e JOIN inbox_members m ON m.inbox_id = e.inbox_id WHERE e.id = ?", (email_id,))]
