"""The outbox: deliveries still to be made, and the state of each target (channel or inbox) they go to.

A row is written in the same transaction as the message it sends, and removed in the transaction
that records the message sent or failed for good; so after a crash every row still here is retried
(at least once), and an item never leaves twice except as a retry carrying the same webhook id (an
attempt cut short by the crash). The worker (``inbox/outbound/worker.py``) keeps what is in flight
in memory and never starts a row whose attempt ended after it began reading.
"""

from __future__ import annotations

from typing import Any

import orjson

from .db import Database, Tx

OUTBOX = "outbox"  # the name the delivery worker is nudged by (``Tx.nudge``) when rows are added

# A row's due time, or where it waits without being due, so that what the worker scans is only what
# it could start: the head of each lane (a later reply in a conversation waits BEHIND the one being
# sent, and is promoted when that one leaves), and not a paused target's rows (HELD until resumed).
HELD = 1e17
BEHIND = 2e17


async def enqueue(tx: Tx, *, kind: str, target_id: int, item_id: int, lane: int, webhook_id: str,
                  now: float) -> int:
    """Queue an item: due now when it heads its lane, else behind the lane's earlier items (held
    while its target is paused)."""
    row_id = await tx.insert(
        "INSERT INTO outbox (kind, target_id, item_id, lane, webhook_id, queued_at, due_at) VALUES (?1,?2,?3,?4,?5,?6,"
        " CASE WHEN EXISTS (SELECT 1 FROM outbox WHERE kind = ?1 AND lane = ?4) THEN ?7 WHEN EXISTS (SELECT 1 FROM"
        " outbound_targets WHERE kind = ?1 AND target_id = ?2 AND paused_at IS NOT NULL) THEN ?8 ELSE ?6 END)",
        (kind, target_id, item_id, lane, webhook_id, now, BEHIND, HELD))
    await tx.execute("INSERT INTO outbound_targets (kind, target_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
                     (kind, target_id))
    tx.nudge(OUTBOX)
    return row_id


async def due(db: Database, now: float, limit: int, *, per_target: int, busy: list[str]) -> list:
    """Rows whose time has come, at most ``per_target`` of each target that is neither paused nor
    ``busy`` (``kind:id`` of targets whose attempts in flight are at their limit), each the oldest of
    its lane. Read target by target (the registry in ``outbound_targets``, then an index range each),
    so however many conversations a dead channel has waiting, leaving it out costs nothing and
    every other target's rows are in the answer."""
    return await db.fetchall(
        "SELECT o.* FROM outbound_targets t JOIN outbox o ON o.id IN (SELECT p.id FROM outbox p WHERE"
        " p.kind = t.kind AND p.target_id = t.target_id AND p.due_at <= ?1 AND NOT EXISTS (SELECT 1 FROM outbox q"
        " WHERE q.kind = p.kind AND q.lane = p.lane AND q.id < p.id) ORDER BY p.due_at, p.id LIMIT ?3)"
        " WHERE t.paused_at IS NULL AND (t.kind || ':' || t.target_id) NOT IN (SELECT value FROM json_each(?2))"
        " ORDER BY o.due_at, o.id LIMIT ?4", (now, orjson.dumps(busy).decode(), per_target, limit))


async def next_due(db: Database, now: float) -> float | None:
    """When the next row not yet due falls due (rows behind others or held by a pause are not)."""
    return await db.fetchval("SELECT min(due_at) FROM outbox WHERE due_at > ? AND due_at < ?", (now, HELD))


async def get(tx: Tx, row_id: int):
    return await tx.fetchone("SELECT * FROM outbox WHERE id = ?", (row_id,))


async def reschedule(tx: Tx, row_id: int, due_at: float) -> None:
    await tx.execute("UPDATE outbox SET due_at = ?, attempts = attempts + 1 WHERE id = ?", (due_at, row_id))


async def remove(tx: Tx, row_id: int, now: float) -> None:
    """Take a row out, and make the next one of its lane due (now, or held if its target is paused)."""
    row = await tx.fetchone("DELETE FROM outbox WHERE id = ? RETURNING kind, lane, target_id", (row_id,))
    if row is not None:
        await _promote(tx, row["kind"], row["lane"], row["target_id"], now)


async def remove_item(tx: Tx, kind: str, item_id: int, now: float) -> None:
    row = await tx.fetchone("SELECT id FROM outbox WHERE kind = ? AND item_id = ?", (kind, item_id))
    if row is not None:
        await remove(tx, row["id"], now)


async def _promote(tx: Tx, kind: str, lane: int, target_id: int, now: float) -> None:
    cur = await tx.execute(
        "UPDATE outbox SET due_at = CASE WHEN EXISTS (SELECT 1 FROM outbound_targets WHERE kind = ?1 AND"
        " target_id = ?3 AND paused_at IS NOT NULL) THEN ?4 ELSE ?5 END WHERE id = (SELECT min(id) FROM outbox"
        " WHERE kind = ?1 AND lane = ?2) AND due_at >= ?6", (kind, lane, target_id, HELD, now, BEHIND))
    if cur.rowcount:
        tx.nudge(OUTBOX)


# --- targets: consecutive failures and pauses ---

async def target(db: Database | Tx, kind: str, target_id: int) -> dict[str, Any]:
    row = await db.fetchone("SELECT failures, paused_at, last_error FROM outbound_targets WHERE kind = ? AND"
                            " target_id = ?", (kind, target_id))
    return dict(row) if row else {"failures": 0, "paused_at": None, "last_error": None}


async def targets(db: Database, kind: str) -> dict[int, dict[str, Any]]:
    rows = await db.fetchall("SELECT target_id, failures, paused_at, last_error FROM outbound_targets WHERE kind = ?",
                             (kind,))
    return {r["target_id"]: dict(r) for r in rows}


async def succeeded(tx: Tx, kind: str, target_id: int) -> None:
    await tx.execute("UPDATE outbound_targets SET failures = 0, last_error = NULL WHERE kind = ? AND target_id = ?"
                     " AND failures > 0", (kind, target_id))


async def failed(tx: Tx, kind: str, target_id: int, error: str) -> int:
    """Count one more consecutive failure; returns the count."""
    return await tx.fetchval(
        "INSERT INTO outbound_targets (kind, target_id, failures, last_error) VALUES (?, ?, 1, ?)"
        " ON CONFLICT DO UPDATE SET failures = failures + 1, last_error = excluded.last_error RETURNING failures",
        (kind, target_id, error))


async def pause(tx: Tx, kind: str, target_id: int, now: float) -> bool:
    """Pause a target, holding its rows; False when it already was paused."""
    cur = await tx.execute("UPDATE outbound_targets SET paused_at = ? WHERE kind = ? AND target_id = ? AND"
                           " paused_at IS NULL", (now, kind, target_id))
    if cur.rowcount != 1:
        return False
    await tx.execute("UPDATE outbox SET due_at = ? WHERE kind = ? AND target_id = ? AND due_at < ?",
                     (HELD, kind, target_id, HELD))
    return True


async def resume(tx: Tx, kind: str, target_id: int, now: float) -> bool:
    """Unpause a target and make its waiting rows due now; False when it was not paused."""
    cur = await tx.execute("UPDATE outbound_targets SET paused_at = NULL, failures = 0 WHERE kind = ? AND"
                           " target_id = ? AND paused_at IS NOT NULL", (kind, target_id))
    await tx.execute("UPDATE outbox SET due_at = ? WHERE kind = ? AND target_id = ? AND due_at > ? AND due_at < ?",
                     (now, kind, target_id, now, BEHIND))
    tx.nudge(OUTBOX)
    return cur.rowcount == 1
