"""The activity log: append-only, each row chained to the previous one by SHA-256.

hash(n) = sha256(hash(n-1) + canonical JSON of row n's content, id included), so editing or inserting a
row in the middle breaks the chain at that row, and deleting one breaks it at the row after the gap;
``verify_chain`` names the first bad row. The writer task is the only appender, so "the previous row"
is well defined.

Known limits (no secret goes into the hash): someone who can write the file can rewrite every hash
from the edited row on, and rows cut off the end leave an intact shorter chain. ``inbox audit verify``
prints the head hash so it can be kept elsewhere and compared.
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

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


# --- verification ---

# Column order the walker expects; positional, so plain sqlite3 tuples and sqlite3.Row both fit.
CHAIN_COLUMNS = "id, at, actor_id, ip, type, object_type, object_id, data, prev_hash, hash"


@dataclass(frozen=True)
class Break:
    row_id: int
    reason: str


class ChainWalk:
    """Feed rows in id order; ``feed`` returns the first broken link. No I/O, so the server (async)
    and the CLI (a read-only file) share it, and memory stays flat whatever the log's length."""

    def __init__(self) -> None:
        self.prev = GENESIS
        self.rows = 0

    def feed(self, r: Sequence[Any]) -> Break | None:
        row_id, at, actor_id, ip, type_, object_type, object_id, data, prev_hash, digest = r
        expected = self.rows + 1
        if row_id != expected:
            # ids are dense (append takes last + 1), so a gap is a deleted row.
            gone = f"row {expected}" if row_id == expected + 1 else f"rows {expected}-{row_id - 1}"
            return Break(row_id, f"{gone} missing: row {row_id} follows row {expected - 1}")
        if prev_hash != self.prev:
            return Break(row_id, f"its prev_hash is not the hash of row {row_id - 1} (row {row_id - 1} was "
                                 f"rewritten, or row {row_id} was)")
        if _row_hash(prev_hash, row_id, at, actor_id, ip, type_, object_type, object_id, data) != digest:
            return Break(row_id, "its content does not match its hash (edited in place)")
        self.prev = digest
        self.rows += 1
        return None


async def verify_chain(db: Database) -> int | None:
    """The id of the first row whose chain is broken, or None when the whole log is intact."""
    def walk_all(conn) -> int | None:
        walk = ChainWalk()
        for r in conn.execute(f"SELECT {CHAIN_COLUMNS} FROM activity ORDER BY id"):  # a lazy cursor: flat memory
            bad = walk.feed(r)
            if bad:
                return bad.row_id
        return None

    # In one reader thread, in one hop: a hop per row would cost far more than the hashing.
    return await db.read(walk_all)


def verify_file(path: Path, *, progress: Callable[[int], None] | None = None,
                every: int = 100_000) -> tuple[Break | None, ChainWalk]:
    """Walk the log of a database file opened read-only (``inbox audit verify``).

    Read-only on purpose: the file may be evidence, so no migration or checkpoint may touch it. One
    read transaction gives a consistent snapshot even while the server keeps appending.
    """
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        walk = ChainWalk()
        for r in conn.execute(f"SELECT {CHAIN_COLUMNS} FROM activity ORDER BY id"):  # a lazy cursor
            bad = walk.feed(r)
            if bad:
                return bad, walk
            if progress and walk.rows % every == 0:
                progress(walk.rows)
        return None, walk
    finally:
        conn.close()


# --- reading ---

# A type prefix is read as one index range per concrete type (each already in id order) merged with
# LIMIT, so a page costs the same however many rows match. Past this many types, one range + sort.
MAX_TYPE_BRANCHES = 64
COLUMNS = "id, at, actor_id, ip, type, object_type, object_id, data"


@dataclass(frozen=True)
class Filter:
    actor_id: int | None = None
    type: str | None = None          # exact, or every type under a prefix when it ends with "."
    object_type: str | None = None
    object_id: int | None = None     # only with object_type: the index is (object_type, object_id, id)
    since: float | None = None       # at >= since
    until: float | None = None       # at < until

    def where(self, type_: str | None = None) -> tuple[str, list]:
        """SQL terms; ``type_`` replaces a prefix by one concrete type (a branch of the merge)."""
        terms: list[tuple[str, list]] = []
        if self.actor_id is not None:
            terms.append(("actor_id = ?", [self.actor_id]))
        if type_ is not None or (self.type and not self.type.endswith(".")):
            terms.append(("type = ?", [type_ or self.type]))
        elif self.type:
            # "lead." .. "lead/": '/' sorts right after '.', so this is exactly the prefix, as a range.
            terms.append(("type >= ? AND type < ?", [self.type, self.type[:-1] + "/"]))
        if self.object_type is not None:
            terms.append(("object_type = ?", [self.object_type]))
        if self.object_id is not None:
            terms.append(("object_id = ?", [self.object_id]))
        # No index on at: time bounds filter whatever range the other terms (or the id order) pick.
        if self.since is not None:
            terms.append(("at >= ?", [self.since]))
        if self.until is not None:
            terms.append(("at < ?", [self.until]))
        params = [v for _, values in terms for v in values]
        return " AND ".join(t for t, _ in terms) or "1", params


async def types_under(db: Database, prefix: str, limit: int = MAX_TYPE_BRANCHES + 1) -> list[str]:
    """The distinct types starting with ``prefix``: a skip scan, one index seek per type."""
    rows = await db.fetchall(
        "WITH RECURSIVE t(type) AS ("
        " SELECT (SELECT min(type) FROM activity WHERE type >= ?1 AND type < ?2)"
        " UNION ALL"
        " SELECT (SELECT min(type) FROM activity WHERE type > t.type AND type < ?2) FROM t WHERE t.type IS NOT NULL"
        ") SELECT type FROM t WHERE type IS NOT NULL LIMIT ?3", (prefix, prefix[:-1] + "/", limit))
    return [r[0] for r in rows]


def page_query(flt: Filter, *, before: int | None, limit: int, offset: int = 0,
               types: list[str] | None = None) -> tuple[str, list]:
    """One page, newest first; ``types`` are a prefix's concrete types (exposed for plan tests)."""
    cursor = " AND id < ?" if before is not None else ""
    after = [before] if before is not None else []
    if not types:
        where, params = flt.where()
        return (f"SELECT {COLUMNS} FROM activity WHERE {where}{cursor} ORDER BY id DESC LIMIT ? OFFSET ?",
                [*params, *after, limit, offset])
    branches, params = [], []
    for t in types:
        where, p = flt.where(t)
        branches.append(f"SELECT id FROM (SELECT id FROM activity WHERE {where}{cursor} ORDER BY id DESC LIMIT ?)")
        params += [*p, *after, limit + offset]
    merged = " UNION ALL ".join(branches)
    return (f"SELECT {', '.join('a.' + c for c in COLUMNS.split(', '))} FROM ({merged} ORDER BY 1 DESC"
            f" LIMIT ? OFFSET ?) AS v JOIN activity a ON a.id = v.id ORDER BY a.id DESC", [*params, limit, offset])


def _decode(r) -> dict[str, Any]:
    return {**dict(r), "data": orjson.loads(r["data"])}


async def query(db: Database, flt: Filter, *, before: int | None = None, limit: int = 50,
                offset: int = 0) -> list[dict]:
    types = None
    if flt.type and flt.type.endswith("."):
        types = await types_under(db, flt.type)
        if not types:
            return []
        if len(types) > MAX_TYPE_BRANCHES:
            types = None
    sql, params = page_query(flt, before=before, limit=limit, offset=offset, types=types)
    return [_decode(r) for r in await db.fetchall(sql, params)]


async def count(db: Database, flt: Filter) -> int:
    where, params = flt.where()
    return await db.fetchval(f"SELECT count(*) FROM activity WHERE {where}", params)
