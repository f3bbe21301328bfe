"""Chat channels and their webhooks: the channel rows, signing secrets (channels and inboxes alike),
provider ids already handled, and who a sender is on a channel."""

from __future__ import annotations

from typing import Any

import orjson

from .db import Database, Tx

SIGNED_TABLES = ("channels", "inboxes")  # rows that carry a signing secret


async def get(db: Database | Tx, channel_id: int):
    return await db.fetchone("SELECT * FROM channels WHERE id = ?", (channel_id,))


async def all_rows(db: Database) -> list:
    return await db.fetchall("SELECT * FROM channels ORDER BY id")


async def insert(tx: Tx, *, name: str, pipeline_id: int, responsible_user_id: int, secret_sealed: str,
                 now: float) -> int:
    return await tx.insert("INSERT INTO channels (name, pipeline_id, responsible_user_id, secret_sealed, created_at,"
                           " updated_at) VALUES (?,?,?,?,?,?)",
                           (name, pipeline_id, responsible_user_id, secret_sealed, now, now))


async def update(tx: Tx, channel_id: int, *, name: str, outbound_url: str | None, now: float) -> None:
    await tx.execute("UPDATE channels SET name = ?, outbound_url = ?, updated_at = ? WHERE id = ?",
                     (name, outbound_url, now, channel_id))


async def has_conversations(tx: Tx, channel_id: int) -> bool:
    return bool(await tx.fetchval("SELECT count(*) FROM conversations WHERE channel_id = ?", (channel_id,)))


async def delete(tx: Tx, channel_id: int) -> None:
    await tx.execute("DELETE FROM channels WHERE id = ?", (channel_id,))


async def signed_exists(tx: Tx, table: str, row_id: int) -> bool:
    if table not in SIGNED_TABLES:
        raise ValueError(f"{table} has no signing secret")
    return await tx.fetchone(f"SELECT 1 FROM {table} WHERE id = ?", (row_id,)) is not None


async def rotate(tx: Tx, table: str, row_id: int, secret_sealed: str, previous_until: float, now: float) -> None:
    """A new secret; the current one becomes the previous, accepted until ``previous_until``."""
    if table not in SIGNED_TABLES:
        raise ValueError(f"{table} has no signing secret")
    await tx.execute(f"UPDATE {table} SET previous_sealed = secret_sealed, previous_until = ?, secret_sealed = ?,"
                     " updated_at = ? WHERE id = ?", (previous_until, secret_sealed, now, row_id))


# --- a delivery ---

async def delivery_facts(tx: Tx, channel_id: int, provider_id: str, handle: str) -> tuple[Any, Any, Any]:
    """(channel still there, the answer already given for this provider id, the sender's contact),
    in one statement: every delivery pays for each statement."""
    row = await tx.fetchone(
        "SELECT (SELECT 1 FROM channels WHERE id = ?1), (SELECT result FROM inbound_ids WHERE channel_id = ?1"
        " AND provider_id = ?2), (SELECT contact_id FROM contact_handles WHERE channel_id = ?1 AND handle = ?3)",
        (channel_id, provider_id, handle))
    assert row is not None  # a SELECT of scalar subqueries always has its row
    return row[0], row[1], row[2]


async def remember(tx: Tx, channel_id: int, provider_id: str, result: dict[str, Any], now: float) -> None:
    await tx.execute("INSERT INTO inbound_ids (channel_id, provider_id, result, created_at) VALUES (?,?,?,?)",
                     (channel_id, provider_id, orjson.dumps(result).decode(), now))


async def add_handle(tx: Tx, channel_id: int, handle: str, contact_id: int) -> None:
    await tx.execute("INSERT INTO contact_handles (channel_id, handle, contact_id) VALUES (?,?,?)",
                     (channel_id, handle, contact_id))
