"""Versioned SQL migrations: ``migrations/NNNN_name.sql``, each applied once, in order, in one transaction."""

from __future__ import annotations

import logging
import re
import sqlite3
from importlib import resources

log = logging.getLogger("inbox.store")
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def migration_files() -> list[tuple[int, str, str]]:
    folder = resources.files("inbox.store").joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        m = _NAME.match(entry.name)
        if m:
            found.append((int(m.group(1)), entry.name, entry.read_text("utf-8")))
    found.sort()
    versions = [v for v, _, _ in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migrations share a version number: {versions}")
    return found


def apply_migrations(conn: sqlite3.Connection) -> list[str]:
    """Run in the writer's thread, on its connection (see ``db.Database.open``)."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL)")
    done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations").fetchall()}
    applied = []
    for version, name, sql in migration_files():
        if version in done:
            continue
        # executescript commits implicitly, so wrap the migration in its own explicit transaction.
        conn.executescript(f"BEGIN IMMEDIATE;\n{sql}\nINSERT INTO schema_migrations VALUES ({version}, '{name}');\nCOMMIT;")
        log.info("applied migration", extra={"migration": name})
        applied.append(name)
    return applied
