"""Session rows. Only SHA-256(token) is stored (SECURITY-CHECKLIST 4)."""

from __future__ import annotations

from typing import Any

from . import users
from .db import Database, Tx


async def insert_session(tx: Tx, *, user_id: int, token_hash: str, user_agent: str, ip: str, now: float) -> int:
    return await tx.insert(
        "INSERT INTO sessions (user_id, token_hash, user_agent, ip, created_at, last_seen_at) VALUES (?,?,?,?,?,?)",
        (user_id, token_hash, user_agent[:512], ip, now, now))


_SESSION = (
    # One read per request gives the session, the user, their 2FA state and the workspace policy.
    "SELECT s.id AS session_id, s.created_at AS session_created_at, s.last_seen_at, u.*,"
    " (SELECT confirmed_at IS NOT NULL FROM user_totp t WHERE t.user_id = u.id) AS has_2fa,"
    " (SELECT settings FROM workspace WHERE id = 1) AS workspace_settings"
    " FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = ?")


async def session_with_rights(db: Database, token_hash: str) -> tuple[Any, list, list[int]]:
    """The session row (None if there is none), with the facts the user's ``Subject`` is built from:
    their rights sources and group co-members. Read together, in one trip to a reader thread (each
    trip costs ~0.1 ms of latency), and in one read transaction, so they agree with each other."""
    def read(conn) -> tuple[Any, list, list[int]]:
        conn.execute("BEGIN")
        try:
            row = conn.execute(_SESSION, (token_hash,)).fetchone()
            if row is None:
                return None, [], []
            uid = {"uid": row["id"]}
            return (row, conn.execute(users.RIGHTS_SOURCES, uid).fetchall(),
                    [r[0] for r in conn.execute(users.COMEMBERS, uid).fetchall()])
        finally:
            conn.execute("COMMIT")

    return await db.read(read)


async def touch(tx: Tx, session_id: int, now: float) -> None:
    await tx.execute("UPDATE sessions SET last_seen_at = ? WHERE id = ?", (now, session_id))


async def list_sessions(db: Database, user_id: int) -> list:
    return await db.fetchall(
        "SELECT id, user_id, user_agent, ip, created_at, last_seen_at FROM sessions WHERE user_id = ? ORDER BY id",
        (user_id,))


async def get_session(db: Database | Tx, session_id: int):
    return await db.fetchone("SELECT id, user_id FROM sessions WHERE id = ?", (session_id,))


async def delete_session(tx: Tx, session_id: int) -> None:
    await tx.execute("DELETE FROM sessions WHERE id = ?", (session_id,))


async def delete_user_sessions(tx: Tx, user_id: int, *, keep: int | None = None) -> list[int]:
    rows = await tx.fetchall("SELECT id FROM sessions WHERE user_id = ? AND id IS NOT ?", (user_id, keep))
    await tx.execute("DELETE FROM sessions WHERE user_id = ? AND id IS NOT ?", (user_id, keep))
    return [r[0] for r in rows]


async def delete_by_token(tx: Tx, token_hash: str) -> None:
    await tx.execute("DELETE FROM sessions WHERE token_hash = ?", (token_hash,))
