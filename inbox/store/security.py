"""Rows behind account security: workspace settings, TOTP state, recovery codes, login challenges."""

from __future__ import annotations

from typing import Any

import orjson

from .db import Database, Tx


async def settings(db: Database | Tx) -> dict[str, Any]:
    return policy_of(await db.fetchval("SELECT settings FROM workspace WHERE id = 1"))


def policy_of(raw: str | None) -> dict[str, Any]:
    """The workspace policy from its stored JSON (read alone, or as ``workspace_settings`` beside a user)."""
    return orjson.loads(raw) if raw else {}


async def save_settings(tx: Tx, value: dict[str, Any]) -> None:
    await tx.execute("UPDATE workspace SET settings = ? WHERE id = 1", (orjson.dumps(value).decode(),))


async def totp(db: Database | Tx, user_id: int):
    return await db.fetchone("SELECT * FROM user_totp WHERE user_id = ?", (user_id,))


async def gate_facts(db: Database, user_id: int):
    """What the workspace gates need of a user outside a session (a signed link's holder): active,
    admin, second factor on, and the workspace policy. None if there is no such user."""
    return await db.fetchone(
        "SELECT u.is_admin, u.is_active,"
        " (SELECT confirmed_at IS NOT NULL FROM user_totp t WHERE t.user_id = u.id) AS has_2fa,"
        " (SELECT settings FROM workspace WHERE id = 1) AS workspace_settings"
        " FROM users u WHERE u.id = ?", (user_id,))


async def start_totp(tx: Tx, user_id: int, sealed: str, now: float) -> None:
    await tx.execute("INSERT OR REPLACE INTO user_totp (user_id, secret_sealed, confirmed_at, last_step, created_at)"
                     " VALUES (?, ?, NULL, -1, ?)", (user_id, sealed, now))


async def accept_step(tx: Tx, user_id: int, step: int) -> None:
    await tx.execute("UPDATE user_totp SET last_step = ? WHERE user_id = ?", (step, user_id))


async def confirm_totp(tx: Tx, user_id: int, now: float) -> None:
    await tx.execute("UPDATE user_totp SET confirmed_at = ? WHERE user_id = ?", (now, user_id))


async def enrolled(db: Database | Tx, user_id: int) -> bool:
    return bool(await db.fetchval("SELECT confirmed_at IS NOT NULL FROM user_totp WHERE user_id = ?", (user_id,)))


async def remove_totp(tx: Tx, user_id: int) -> bool:
    cur = await tx.execute("DELETE FROM user_totp WHERE user_id = ?", (user_id,))
    await tx.execute("DELETE FROM recovery_codes WHERE user_id = ?", (user_id,))
    return cur.rowcount == 1


async def replace_recovery_codes(tx: Tx, user_id: int, hashed: list[tuple[str, str]]) -> None:
    """A new set invalidates the old one (checklist 15)."""
    await tx.execute("DELETE FROM recovery_codes WHERE user_id = ?", (user_id,))
    await tx.executemany("INSERT INTO recovery_codes (user_id, salt, code_hash) VALUES (?, ?, ?)",
                         [(user_id, salt, h) for salt, h in hashed])


async def unused_recovery_codes(db: Database | Tx, user_id: int) -> list:
    return await db.fetchall("SELECT id, salt, code_hash FROM recovery_codes WHERE user_id = ? AND used_at IS NULL",
                             (user_id,))


async def use_recovery_code(tx: Tx, code_id: int, now: float) -> bool:
    cur = await tx.execute("UPDATE recovery_codes SET used_at = ? WHERE id = ? AND used_at IS NULL", (now, code_id))
    return cur.rowcount == 1


async def insert_challenge(tx: Tx, *, token_hash: str, user_id: int, ip: str, user_agent: str,
                           expires_at: float) -> None:
    await tx.execute("INSERT INTO login_challenges (token_hash, user_id, ip, user_agent, expires_at)"
                     " VALUES (?,?,?,?,?)", (token_hash, user_id, ip, user_agent, expires_at))


async def challenge(db: Database | Tx, token_hash: str):
    return await db.fetchone("SELECT * FROM login_challenges WHERE token_hash = ?", (token_hash,))


async def drop_challenge(tx: Tx, challenge_id: int, now: float) -> bool:
    """Use up a challenge (and sweep expired ones); False if it was already used."""
    cur = await tx.execute("DELETE FROM login_challenges WHERE id = ?", (challenge_id,))
    await tx.execute("DELETE FROM login_challenges WHERE expires_at < ?", (now,))
    return cur.rowcount == 1


async def workspace_exists(db: Database) -> bool:
    return bool(await db.fetchval("SELECT count(*) FROM workspace"))


async def create_workspace(tx: Tx, name: str, now: float) -> None:
    await tx.execute("INSERT INTO workspace (id, name, settings, created_at) VALUES (1, ?, ?, ?)",
                     (name, orjson.dumps({}).decode(), now))
