"""Rows of leads, contacts, companies and tasks, lead links, subscriptions and notifications.

Records cross this boundary as plain dicts with JSON columns decoded, so the permission core and
the renderers never see SQLite types.
"""

from __future__ import annotations

from typing import Any, Iterable

import orjson

from .db import Database, Tx

COLUMNS = {
    "leads": ("name", "price", "pipeline_id", "stage_id", "responsible_user_id", "company_id", "custom"),
    "contacts": ("name", "avatar", "emails", "phones", "company_id", "responsible_user_id", "custom"),
    "companies": ("name", "responsible_user_id", "custom"),
    "tasks": ("text", "due_at", "responsible_user_id", "entity_type", "entity_id", "is_done"),
}
JSON_COLUMNS = frozenset({"custom", "emails", "phones"})


def decode(row) -> dict[str, Any] | None:
    if row is None:
        return None
    out = dict(row)
    for key in JSON_COLUMNS & out.keys():
        out[key] = orjson.loads(out[key])
    if "is_done" in out:
        out["is_done"] = bool(out["is_done"])
    return out


def _encode(column: str, value: Any) -> Any:
    if column in JSON_COLUMNS:
        return orjson.dumps(value).decode()
    return int(value) if isinstance(value, bool) else value


async def get(db: Database | Tx, table: str, record_id: int) -> dict[str, Any] | None:
    assert table in COLUMNS
    return decode(await db.fetchone(f"SELECT * FROM {table} WHERE id = ?", (record_id,)))


async def get_many(db: Database | Tx, table: str, ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    assert table in COLUMNS
    ids = sorted(set(ids))
    if not ids:
        return {}
    rows = await db.fetchall(f"SELECT * FROM {table} WHERE id IN ({','.join('?' * len(ids))})", ids)
    return {r["id"]: decode(r) for r in rows}


def _insert_sql(table: str, values: dict[str, Any], now: float) -> tuple[str, list]:
    cols = [c for c in COLUMNS[table] if c in values]
    marks = ",".join("?" * (len(cols) + 2))
    return (f"INSERT INTO {table} ({', '.join(cols)}, created_at, updated_at) VALUES ({marks})",
            [*(_encode(c, values[c]) for c in cols), now, now])


async def insert(tx: Tx, table: str, values: dict[str, Any], now: float) -> int:
    return await tx.insert(*_insert_sql(table, values, now))


async def insert_row(tx: Tx, table: str, values: dict[str, Any], now: float) -> dict[str, Any]:
    """``insert``, answering the stored row as ``get`` would: one statement where two were needed."""
    sql, params = _insert_sql(table, values, now)
    return decode(await tx.fetchone(sql + " RETURNING *", params))


async def update(tx: Tx, table: str, record_id: int, changes: dict[str, Any], now: float) -> None:
    unknown = set(changes) - set(COLUMNS[table])
    if unknown:  # column names come from this allow-list only, never from a client
        raise ValueError(f"not {table} columns: {sorted(unknown)}")
    assignments = "".join(f"{c} = ?, " for c in changes)
    await tx.execute(f"UPDATE {table} SET {assignments}updated_at = ? WHERE id = ?",
                     [*(_encode(c, v) for c, v in changes.items()), now, record_id])


async def delete(tx: Tx, table: str, record_id: int) -> None:
    assert table in COLUMNS
    if table in ("leads", "contacts", "companies"):
        # Tasks outlive the record they were about: detached, never silently deleted.
        await tx.execute("UPDATE tasks SET entity_type = NULL, entity_id = NULL WHERE entity_type = ? AND entity_id = ?",
                         (table, record_id))
    await tx.execute(f"DELETE FROM {table} WHERE id = ?", (record_id,))


# --- lead <-> contact links ---

async def lead_contacts(db: Database | Tx, lead_ids: Iterable[int]) -> dict[int, list[int]]:
    ids = sorted(set(lead_ids))
    out: dict[int, list[int]] = {i: [] for i in ids}
    if ids:
        for r in await db.fetchall(f"SELECT lead_id, contact_id FROM lead_contacts WHERE lead_id IN "
                                   f"({','.join('?' * len(ids))}) ORDER BY contact_id", ids):
            out[r[0]].append(r[1])
    return out


async def set_lead_contacts(tx: Tx, lead_id: int, contact_ids: Iterable[int]) -> None:
    await tx.execute("DELETE FROM lead_contacts WHERE lead_id = ?", (lead_id,))
    await tx.executemany("INSERT INTO lead_contacts (lead_id, contact_id) VALUES (?, ?)",
                         [(lead_id, c) for c in sorted(set(contact_ids))])


# --- subscriptions (rule 5) ---

async def subscribed_among(db: Database | Tx, user_id: int, lead_ids: Iterable[int]) -> set[int]:
    ids = sorted(set(lead_ids))
    if not ids:
        return set()
    rows = await db.fetchall(f"SELECT lead_id FROM lead_subscribers WHERE user_id = ? AND lead_id IN "
                             f"({','.join('?' * len(ids))})", [user_id, *ids])
    return {r[0] for r in rows}


async def subscribers(db: Database | Tx, lead_id: int) -> list[int]:
    rows = await db.fetchall("SELECT user_id FROM lead_subscribers WHERE lead_id = ? ORDER BY user_id", (lead_id,))
    return [r[0] for r in rows]


async def subscribe(tx: Tx, lead_id: int, user_id: int, now: float) -> bool:
    cur = await tx.execute("INSERT OR IGNORE INTO lead_subscribers (lead_id, user_id, created_at) VALUES (?,?,?)",
                           (lead_id, user_id, now))
    return cur.rowcount == 1


async def unsubscribe(tx: Tx, lead_id: int, user_id: int) -> bool:
    cur = await tx.execute("DELETE FROM lead_subscribers WHERE lead_id = ? AND user_id = ?", (lead_id, user_id))
    return cur.rowcount == 1


# --- notifications ---

async def notify(tx: Tx, user_ids: Iterable[int], lead_id: int | None, type_: str, data: dict,
                 now: float) -> list[tuple[int, int]]:
    """One notification per user; returns (user id, notification id) pairs."""
    payload = orjson.dumps(data).decode()
    out = []
    for user_id in sorted(set(user_ids)):
        out.append((user_id, await tx.insert("INSERT INTO notifications (user_id, lead_id, type, data, created_at)"
                                             " VALUES (?,?,?,?,?)", (user_id, lead_id, type_, payload, now))))
    return out


async def list_notifications(db: Database, user_id: int, *, unread: bool, before: int | None, limit: int) -> list:
    sql = "SELECT * FROM notifications WHERE user_id = ?"
    params: list = [user_id]
    if unread:
        sql += " AND read_at IS NULL"
    if before is not None:
        sql += " AND id < ?"
        params.append(before)
    return await db.fetchall(sql + " ORDER BY id DESC LIMIT ?", [*params, limit])


async def mark_read(tx: Tx, user_id: int, ids: list[int] | None, now: float) -> int:
    if ids is None:
        cur = await tx.execute("UPDATE notifications SET read_at = ? WHERE user_id = ? AND read_at IS NULL",
                               (now, user_id))
    else:
        marks = ",".join("?" * len(ids))
        cur = await tx.execute(f"UPDATE notifications SET read_at = ? WHERE user_id = ? AND read_at IS NULL"
                               f" AND id IN ({marks})", [now, user_id, *ids])
    return cur.rowcount
