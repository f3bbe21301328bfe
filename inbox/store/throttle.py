"""Failure counters behind throttling: failed sign-ins per account and per address, wrong second-factor
codes per user. One row per failure, keyed ``email:<address>``, ``ip:<address>`` or ``totp:<user id>``.

Deciding and counting must be one step (a black-box test sent 200 parallel guesses and all were
checked, because each read the count before any had written its failure). The callers therefore
read ``failures`` and ``record`` inside one write job: the writer runs jobs one at a time, so no
other attempt can slip between the count and the row that makes it count.
"""

from __future__ import annotations

from collections.abc import Iterable

from .db import Tx


async def failures(tx: Tx, key: str, since: float) -> list[float]:
    """When each failure of ``key`` since ``since`` happened."""
    return [r[0] for r in await tx.fetchall("SELECT at FROM login_failures WHERE key = ? AND at >= ?", (key, since))]


async def record(tx: Tx, keys: Iterable[str], now: float) -> list[int]:
    """Count a failure against each key; returns the rows, so a reservation can be taken back."""
    return [await tx.insert("INSERT INTO login_failures (key, at) VALUES (?, ?)", (key, now)) for key in keys]


async def take_back(tx: Tx, rows: Iterable[int]) -> None:
    """Un-count reserved failures (the attempt they reserved turned out right)."""
    await tx.executemany("DELETE FROM login_failures WHERE rowid = ?", [(r,) for r in rows])


async def first_refusal(tx: Tx, key: str, *, locked_since: float, now: float) -> bool:
    """Whether this refused attempt is the first since ``key`` was locked (and mark it). A refusal is
    logged once per lock, not once per attempt: a client refused thousands of times a second must not
    grow the append-only activity log by a row each (a black-box test added 4 MB in 18 s)."""
    marker = f"refused:{key}"
    if await tx.fetchval("SELECT 1 FROM login_failures WHERE key = ? AND at >= ? LIMIT 1", (marker, locked_since)):
        return False
    await record(tx, (marker,), now)
    return True


async def clear(tx: Tx, key: str) -> None:
    await tx.execute("DELETE FROM login_failures WHERE key = ?", (key,))


async def prune(tx: Tx, before: float) -> None:
    await tx.execute("DELETE FROM login_failures WHERE at < ?", (before,))
