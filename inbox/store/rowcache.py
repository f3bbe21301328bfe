"""Rows read on every signed webhook (channels and inboxes: who signs, with which secrets), kept in
memory so a delivery needs no database read before its signature check.

Why it cannot go stale: temporary triggers on the writer's connection report every INSERT, UPDATE
and DELETE of these tables, by any job or statement, at the moment it happens in the writer thread.
From then until the event loop has seen that batch finish, the cache is bypassed, and afterwards it
is emptied. A read that was in flight across a change is used for its own request (it raced the
change) but never stored. Rotation, deletion and any future change of a signing row are covered
without each action having to remember an invalidation call. Writes made by another process (an
``sqlite3`` shell on the live file) are not seen: restart the server after such an edit.

Time-based rules (a rotated-away secret's grace) are not cached: callers apply them to the row on
every request, with the current clock.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .db import Database

CACHED_TABLES = ("channels", "inboxes")


class RowCache:
    def __init__(self) -> None:
        self._rows: dict[tuple[str, int], sqlite3.Row] = {}
        self._changing = False  # set in the writer thread by a trigger; cleared on the loop by settle()
        self._generation = 0

    def install(self, conn: sqlite3.Connection) -> None:
        """Add the triggers to the writer connection (in the writer thread, after migrations)."""
        conn.create_function("inbox_cached_row_changed", 0, self._changed)
        for table in CACHED_TABLES:
            for event in ("INSERT", "UPDATE", "DELETE"):  # INSERT too: INSERT OR REPLACE fires no DELETE trigger
                conn.execute(f"CREATE TEMP TRIGGER IF NOT EXISTS rowcache_{table}_{event.lower()} AFTER {event} ON "
                             f"main.{table} BEGIN SELECT inbox_cached_row_changed(); END")

    def _changed(self) -> None:
        self._changing = True

    def settle(self) -> None:
        """On the loop, after each write batch (committed or not): forget what a change may have touched."""
        if self._changing:
            self._rows.clear()
            self._generation += 1
            self._changing = False

    async def get(self, db: Database, table: str, row_id: int) -> sqlite3.Row | None:
        if table not in CACHED_TABLES:  # only tables with triggers: anything else could go stale
            raise ValueError(f"{table} is not a cached table")
        key = (table, row_id)
        if not self._changing:
            row = self._rows.get(key)
            if row is not None:
                return row
        generation = self._generation
        row = await db.fetchone(f"SELECT * FROM {table} WHERE id = ?", (row_id,))
        # Unknown ids are not remembered: anyone can send them, and they would only fill memory.
        if row is not None and not self._changing and generation == self._generation:
            self._rows[key] = row
        return row
