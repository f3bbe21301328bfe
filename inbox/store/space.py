"""Telling a full disk from a crash. A full disk is an operating condition, not a bug: the request
is refused with 507 (nothing was stored), the log says so in one line, and the server goes on; it
recovers by itself once space frees (SQLite rolls the transaction back, media writes remove their
temporary file)."""

from __future__ import annotations

import errno
import sqlite3

SQLITE_FULL = 13  # "database or disk is full"; extended result codes keep it in the low byte
_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})


def out_of_space(exc: BaseException | None) -> str | None:
    """``"database"`` or ``"files"`` when ``exc`` is, or was raised while handling, a full disk;
    None otherwise. The chain matters: a failed rollback after SQLITE_FULL raises its own error."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, sqlite3.Error) and (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF == SQLITE_FULL:
            return "database"
        if isinstance(exc, OSError) and exc.errno in _NO_SPACE:
            return "files"
        exc = exc.__cause__ or exc.__context__
    return None
