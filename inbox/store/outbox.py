"""The outbox: deliveries still to be made, and the state of each target (channel or inbox) they go to.

A row is written in the same transaction as the message it sends, and removed in the transaction
that records the message sent or failed for good; so after a crash every row still here is retried
(at least once), and an item never leaves twice except as a retry carrying the same webhook id.
"""

from __future__ import annotations

from typing import Any

from .db import Database, Tx

OUTBOX = "outbox"  # the name the delivery worker is nudged by (``Tx.nudge``) when rows are added


async def enqueue(tx: Tx, *, kind: str, target_id: int, item_id: int, lane: int, webhook_id: str,
                  now: float) -> int:
    row_id = await tx.insert("INSERT INTO outbox (kind, target_id, item_id, lane, webhook_id, queued_at, due_at)"
                             " VALUES (?,?,?,?,?,?,?)", (kind, target_id, item_id, lane, webhook_id, now, now))
    tx.nudge(OUTBOX)
    return row_id


async def due(db: Database, now: float, limit: int) -> list:
    """Rows whose time has come, on targets that are not paused, each the oldest of its lane: a
    conversation's replies leave in the order they were written, a later one waiting while an
    earlier one is retried."""
    return await db.fetchall(
        "SELECT o.* FROM outbox o WHERE o.due_at <= ? AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.kind = o.kind"
        " AND p.lane = o.lane AND p.id < o.id) AND NOT EXISTS (SELECT 1 FROM outbound_targets t WHERE"
        " t.kind = o.kind AND t.target_id = o.target_id AND t.paused_at IS NOT NULL) ORDER BY o.due_at, o.id LIMIT ?",
        (now, limit))


async def next_due(db: Database, now: float) -> float | None:
    """When the next row not yet due falls due (paused targets' rows included: resuming nudges)."""
    return await db.fetchval("SELECT min(due_at) FROM outbox WHERE due_at > ?", (now,))


async def get(tx: Tx, row_id: int):
    return await tx.fetchone("SELECT * FROM outbox WHERE id = ?", (row_id,))


async def reschedule(tx: Tx, row_id: int, due_at: float) -> None:
    await tx.execute("UPDATE outbox SET due_at = ?, attempts = attempts + 1 WHERE id = ?", (due_at, row_id))


async def remove(tx: Tx, row_id: int) -> None:
    await tx.execute("DELETE FROM outbox WHERE id = ?", (row_id,))


async def remove_item(tx: Tx, kind: str, item_id: int) -> None:
    await tx.execute("DELETE FROM outbox WHERE kind = ? AND item_id = ?", (kind, item_id))


async def pending_for(db: Database | Tx, kind: str, item_id: int) -> bool:
    return await db.fetchval("SELECT 1 FROM outbox WHERE kind = ? AND item_id = ?", (kind, item_id)) is not None


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
    """Pause a target; False when it already was."""
    cur = await tx.execute("UPDATE outbound_targets SET paused_at = ? WHERE kind = ? AND target_id = ? AND"
                           " paused_at IS NULL", (now, kind, target_id))
    return cur.rowcount == 1


async def resume(tx: Tx, kind: str, target_id: int, now: float) -> bool:
    """Unpause a target and make its waiting rows due now; False when it was not paused."""
    cur = await tx.execute("UPDATE outbound_targets SET paused_at = NULL, failures = 0 WHERE kind = ? AND"
                           " target_id = ? AND paused_at IS NOT NULL", (kind, target_id))
    await tx.execute("UPDATE outbox SET due_at = ? WHERE kind = ? AND target_id = ? AND due_at > ?",
                     (now, kind, target_id, now))
    tx.nudge(OUTBOX)
    return cur.rowcount == 1
