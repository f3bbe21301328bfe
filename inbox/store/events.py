"""The event log: written in the same transaction as the change it describes, announced after commit.

Ids come from one writer in commit order, so every listener sees events in id order, and a client
that remembers the last id it saw can ask for exactly what came after (SPEC section 4).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from .db import Database, Tx


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    at: float
    type: str
    data: dict[str, Any]


async def emit(tx: Tx, type_: str, data: dict[str, Any], at: float) -> int:
    event_id = await tx.insert("INSERT INTO events (at, type, data) VALUES (?, ?, ?)",
                               (at, type_, orjson.dumps(data).decode()))
    event = Event(event_id, at, type_, data)
    tx.on_commit(lambda: tx.publish(event))
    return event_id


def _event(row) -> Event:
    return Event(row["id"], row["at"], row["type"], orjson.loads(row["data"]))


async def after(db: Database, last_id: int, limit: int = 500) -> list[Event]:
    rows = await db.fetchall("SELECT * FROM events WHERE id > ? ORDER BY id LIMIT ?", (last_id, limit))
    return [_event(r) for r in rows]


async def bounds(db: Database) -> tuple[int, int]:
    """(oldest retained id, newest id); (0, 0) when empty."""
    row = await db.fetchone("SELECT min(id), max(id) FROM events")
    if row is None or row[0] is None:
        newest = await db.fetchval("SELECT seq FROM sqlite_sequence WHERE name = 'events'")
        return (newest or 0) + 1, newest or 0
    return row[0], row[1]


async def prune(tx: Tx, before: float) -> int:
    cur = await tx.execute("DELETE FROM events WHERE at < ?", (before,))
    return cur.rowcount
