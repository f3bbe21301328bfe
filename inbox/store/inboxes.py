"""Shared inboxes and their members."""

from __future__ import annotations

from typing import Iterable

from .db import Database, Tx


async def get(db: Database | Tx, inbox_id: int):
    return await db.fetchone("SELECT * FROM inboxes WHERE id = ?", (inbox_id,))


async def exists(db: Database | Tx, inbox_id: int) -> bool:
    return await db.fetchone("SELECT 1 FROM inboxes WHERE id = ?", (inbox_id,)) is not None


async def many(db: Database, ids: list[int]) -> list:
    """Inboxes by id, in the order given (missing ones left out)."""
    if not ids:
        return []
    rows = {r["id"]: r for r in await db.fetchall(
        f"SELECT * FROM inboxes WHERE id IN ({','.join('?' * len(ids))})", ids)}
    return [rows[i] for i in ids if i in rows]


async def all_ids(db: Database) -> list[int]:
    return [r[0] for r in await db.fetchall("SELECT id FROM inboxes ORDER BY id")]


async def ids_of_member(db: Database, user_id: int) -> list[int]:
    return [r[0] for r in await db.fetchall("SELECT inbox_id FROM inbox_members WHERE user_id = ? ORDER BY inbox_id",
                                            (user_id,))]


async def members_of(db: Database | Tx, inbox_id: int) -> list[int]:
    rows = await db.fetchall("SELECT user_id FROM inbox_members WHERE inbox_id = ? ORDER BY user_id", (inbox_id,))
    return [r[0] for r in rows]


async def insert(tx: Tx, name: str, secret_sealed: str, now: float) -> int:
    return await tx.insert("INSERT INTO inboxes (name, secret_sealed, created_at, updated_at) VALUES (?,?,?,?)",
                           (name, secret_sealed, now, now))


async def set_members(tx: Tx, inbox_id: int, user_ids: Iterable[int]) -> None:
    await tx.execute("DELETE FROM inbox_members WHERE inbox_id = ?", (inbox_id,))
    await tx.executemany("INSERT INTO inbox_members (inbox_id, user_id) VALUES (?, ?)",
                         [(inbox_id, u) for u in sorted(set(user_ids))])


async def rename(tx: Tx, inbox_id: int, name: str, now: float) -> None:
    await tx.execute("UPDATE inboxes SET name = ?, updated_at = ? WHERE id = ?", (name, now, inbox_id))


async def delete(tx: Tx, inbox_id: int) -> None:
    await tx.execute("DELETE FROM inboxes WHERE id = ?", (inbox_id,))
