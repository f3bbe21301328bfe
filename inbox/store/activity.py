"""The activity log: append-only, each row chained to the previous one by SHA-256.

hash(n) = sha256(hash(n-1) + canonical JSON of row n's content, id included), so editing, deleting or
inserting a row in the middle breaks the chain at that row; ``verify_chain`` names the first bad row.
The writer task is the only appender, so "the previous row" is well defined.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from .db import Database, Tx

GENESIS = "0" * 64


def _row_hash(prev_hash: str, row_id: int, at: float, actor_id: int | None, ip: str, type_: str,
              object_type: str, object_id: int | None, data: str) -> str:
    canonical = orjson.dumps([row_id, at, actor_id, ip, type_, object_type, object_id, data])
    return hashlib.sha256(prev_hash.encode() + canonical).hexdigest()


async def append(tx: Tx, *, at: float, actor_id: int | None, ip: str, type: str,
                 object_type: str = "", object_id: int | None = None, data: dict[str, Any] | None = None) -> int:
    last = await tx.fetchone("SELECT id, hash FROM activity ORDER BY id DESC LIMIT 1")
    row_id, prev = (last["id"] + 1, last["hash"]) if last else (1, GENESIS)
    body = orjson.dumps(data or {}, option=orjson.OPT_SORT_KEYS).decode()
    digest = _row_hash(prev, row_id, at, actor_id, ip, type, object_type, object_id, body)
    await tx.execute(
        "INSERT INTO activity (id, at, actor_id, ip, type, object_type, object_id, data, prev_hash, hash)"
        " VALUES (?,?,?,?,?,?,?,?,?,?)",
        (row_id, at, actor_id, ip, type, object_type, object_id, body, prev, digest),
    )
    return row_id


async def verify_chain(db: Database) -> int | None:
    """The id of the first row whose chain is broken, or None when the whole log is intact."""
    prev = GENESIS
    expected_id = 1
    async with db.reader() as conn:
        async with conn.execute("SELECT * FROM activity ORDER BY id") as cur:
            async for r in cur:
                if r["id"] != expected_id or r["prev_hash"] != prev:
                    return r["id"]
                digest = _row_hash(prev, r["id"], r["at"], r["actor_id"], r["ip"], r["type"],
                                   r["object_type"], r["object_id"], r["data"])
                if digest != r["hash"]:
                    return r["id"]
                prev = r["hash"]
                expected_id += 1
    return None


async def query(db: Database, *, actor_id: int | None = None, type_prefix: str | None = None,
                object_type: str | None = None, object_id: int | None = None, since: float | None = None,
                until: float | None = None, before_id: int | None = None, limit: int = 50) -> list[dict]:
    where, params = [], []
    if actor_id is not None:
        where.append("actor_id = ?"); params.append(actor_id)
    if type_prefix:
        where.append("(type = ? OR type LIKE ? ESCAPE '\\')")
        params += [type_prefix, type_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + ".%"]
    if object_type:
        where.append("object_type = ?"); params.append(object_type)
    if object_id is not None:
        where.append("object_id = ?"); params.append(object_id)
    if since is not None:
        where.append("at >= ?"); params.append(since)
    if until is not None:
        where.append("at < ?"); params.append(until)
    if before_id is not None:
        where.append("id < ?"); params.append(before_id)
    sql = "SELECT id, at, actor_id, ip, type, object_type, object_id, data FROM activity"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY id DESC LIMIT ?"
    params.append(limit)
    rows = await db.fetchall(sql, params)
    return [{**dict(r), "data": orjson.loads(r["data"])} for r in rows]
