"""Users, groups and roles: the rows the identity and rights code reads and writes."""

from __future__ import annotations

from typing import Any, Iterable

import orjson

from auth.rights import Rights

from .db import Database, Tx

USER_COLUMNS = ("email", "name", "avatar", "password_hash", "is_admin", "is_active", "is_partner", "role_id", "rights")
# What a user can be responsible for (a channel owns what it creates for them); removing a user
# moves all of it in one transaction.
OWNED_TABLES = ("leads", "contacts", "companies", "tasks", "channels")


def _json_or_none(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


async def count_users(tx: Tx) -> int:
    return await tx.fetchval("SELECT count(*) FROM users")


async def insert_user(tx: Tx, *, email: str, name: str, password_hash: str, is_admin: bool, is_partner: bool,
                      role_id: int | None, rights: dict | None, avatar: str | None, now: float) -> int:
    return await tx.insert(
        "INSERT INTO users (email, name, avatar, password_hash, is_admin, is_partner, role_id, rights,"
        " created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
        (email, name, avatar, password_hash, int(is_admin), int(is_partner), role_id, _json_or_none(rights), now, now),
    )


async def update_user(tx: Tx, user_id: int, changes: dict[str, Any], now: float) -> None:
    unknown = set(changes) - set(USER_COLUMNS)
    if unknown:  # column names come from this allow-list only, never from a client
        raise ValueError(f"not user columns: {sorted(unknown)}")
    if not changes:
        return
    values = [_json_or_none(v) if k == "rights" else (int(v) if isinstance(v, bool) else v) for k, v in changes.items()]
    assignments = ", ".join(f"{k} = ?" for k in changes)
    await tx.execute(f"UPDATE users SET {assignments}, updated_at = ? WHERE id = ?", (*values, now, user_id))


async def get_user(db: Database | Tx, user_id: int):
    return await db.fetchone("SELECT * FROM users WHERE id = ?", (user_id,))


async def get_user_by_email(db: Database | Tx, email: str):
    return await db.fetchone("SELECT * FROM users WHERE email = ?", (email,))


async def list_users(db: Database, *, offset: int, limit: int) -> tuple[list, int]:
    rows = await db.fetchall("SELECT * FROM users ORDER BY id LIMIT ? OFFSET ?", (limit, offset))
    total = await db.fetchval("SELECT count(*) FROM users")
    return rows, total


async def group_ids_of(db: Database | Tx, user_id: int) -> list[int]:
    rows = await db.fetchall("SELECT group_id FROM group_members WHERE user_id = ? ORDER BY group_id", (user_id,))
    return [r[0] for r in rows]


async def group_ids_by_user(db: Database, user_ids: Iterable[int]) -> dict[int, list[int]]:
    ids = list(user_ids)
    out: dict[int, list[int]] = {u: [] for u in ids}
    if not ids:
        return out
    marks = ",".join("?" * len(ids))
    for r in await db.fetchall(
            f"SELECT user_id, group_id FROM group_members WHERE user_id IN ({marks}) ORDER BY group_id", ids):
        out[r[0]].append(r[1])
    return out


async def set_user_groups(tx: Tx, user_id: int, group_ids: Iterable[int]) -> None:
    await tx.execute("DELETE FROM group_members WHERE user_id = ?", (user_id,))
    await tx.executemany("INSERT INTO group_members (group_id, user_id) VALUES (?, ?)",
                         [(g, user_id) for g in sorted(set(group_ids))])


async def missing_ids(tx: Tx | Database, table: str, ids: Iterable[int]) -> list[int]:
    assert table in {"groups", "roles", "users", "pipelines", "stages"}
    wanted = sorted(set(ids))
    if not wanted:
        return []
    marks = ",".join("?" * len(wanted))
    found = {r[0] for r in await tx.fetchall(f"SELECT id FROM {table} WHERE id IN ({marks})", wanted)}
    return [i for i in wanted if i not in found]


async def other_active_admins(tx: Tx, user_id: int) -> int:
    return await tx.fetchval(
        "SELECT count(*) FROM users WHERE is_admin = 1 AND is_active = 1 AND id != ?", (user_id,))


async def owned_records(tx: Tx, user_id: int) -> dict[str, int]:
    counts = {}
    for table in OWNED_TABLES:
        counts[table] = await tx.fetchval(f"SELECT count(*) FROM {table} WHERE responsible_user_id = ?", (user_id,))
    return counts


async def reassign_records(tx: Tx, from_user: int, to_user: int, now: float) -> None:
    for table in OWNED_TABLES:
        await tx.execute(f"UPDATE {table} SET responsible_user_id = ?, updated_at = ? WHERE responsible_user_id = ?",
                         (to_user, now, from_user))


async def delete_user(tx: Tx, user_id: int) -> None:
    await tx.execute("DELETE FROM users WHERE id = ?", (user_id,))


# --- groups ---

async def list_groups(db: Database) -> list:
    return await db.fetchall(
        "SELECT g.*, (SELECT json_group_array(user_id) FROM (SELECT user_id FROM group_members m"
        " WHERE m.group_id = g.id ORDER BY user_id)) AS member_ids FROM groups g ORDER BY g.id")


async def get_group(db: Database | Tx, group_id: int):
    return await db.fetchone(
        "SELECT g.*, (SELECT json_group_array(user_id) FROM (SELECT user_id FROM group_members m"
        " WHERE m.group_id = g.id ORDER BY user_id)) AS member_ids FROM groups g WHERE g.id = ?", (group_id,))


async def insert_group(tx: Tx, *, name: str, role_id: int | None, now: float) -> int:
    return await tx.insert("INSERT INTO groups (name, role_id, created_at, updated_at) VALUES (?,?,?,?)",
                           (name, role_id, now, now))


async def update_group(tx: Tx, group_id: int, *, name: str | None, role_id: int | None, set_role: bool,
                       now: float) -> None:
    if name is not None:
        await tx.execute("UPDATE groups SET name = ?, updated_at = ? WHERE id = ?", (name, now, group_id))
    if set_role:
        await tx.execute("UPDATE groups SET role_id = ?, updated_at = ? WHERE id = ?", (role_id, now, group_id))


async def set_group_members(tx: Tx, group_id: int, user_ids: Iterable[int]) -> None:
    await tx.execute("DELETE FROM group_members WHERE group_id = ?", (group_id,))
    await tx.executemany("INSERT INTO group_members (group_id, user_id) VALUES (?, ?)",
                         [(group_id, u) for u in sorted(set(user_ids))])


async def delete_group(tx: Tx, group_id: int) -> None:
    await tx.execute("DELETE FROM groups WHERE id = ?", (group_id,))


# --- roles ---

async def list_roles(db: Database) -> list:
    return await db.fetchall("SELECT * FROM roles ORDER BY id")


async def get_role(db: Database | Tx, role_id: int):
    return await db.fetchone("SELECT * FROM roles WHERE id = ?", (role_id,))


async def insert_role(tx: Tx, *, name: str, rights: dict, now: float) -> int:
    return await tx.insert("INSERT INTO roles (name, rights, created_at, updated_at) VALUES (?,?,?,?)",
                           (name, orjson.dumps(rights).decode(), now, now))


async def update_role(tx: Tx, role_id: int, *, name: str | None, rights: dict | None, now: float) -> None:
    if name is not None:
        await tx.execute("UPDATE roles SET name = ?, updated_at = ? WHERE id = ?", (name, now, role_id))
    if rights is not None:
        await tx.execute("UPDATE roles SET rights = ?, updated_at = ? WHERE id = ?",
                         (orjson.dumps(rights).decode(), now, role_id))


async def role_in_use(tx: Tx, role_id: int) -> dict[str, int]:
    return {
        "users": await tx.fetchval("SELECT count(*) FROM users WHERE role_id = ?", (role_id,)),
        "groups": await tx.fetchval("SELECT count(*) FROM groups WHERE role_id = ?", (role_id,)),
    }


async def delete_role(tx: Tx, role_id: int) -> None:
    await tx.execute("DELETE FROM roles WHERE id = ?", (role_id,))


# Rows (kind, role_id, group_id, rights JSON, role name, group name) that feed a user's effective
# rights (rule 2). Own rights count only when set: NULL is "no own rights", so a user with neither a
# role nor own rights brings no source of their own (a stored object, even all D, is a source).
RIGHTS_SOURCES = (
    "SELECT 'own' AS kind, NULL AS role_id, NULL AS group_id, u.rights AS rights, NULL AS role_name,"
    "  NULL AS group_name FROM users u WHERE u.id = :uid AND u.role_id IS NULL AND u.rights IS NOT NULL"
    " UNION ALL SELECT 'role', r.id, NULL, r.rights, r.name, NULL FROM users u JOIN roles r ON r.id = u.role_id"
    "  WHERE u.id = :uid"
    " UNION ALL SELECT 'group_role', r.id, g.id, r.rights, r.name, g.name FROM group_members m"
    "  JOIN groups g ON g.id = m.group_id JOIN roles r ON r.id = g.role_id WHERE m.user_id = :uid"
    " ORDER BY 1 DESC, 3")
# Everyone who shares at least one group with the user (the reach of level G).
COMEMBERS = ("SELECT DISTINCT b.user_id FROM group_members a JOIN group_members b"
             " ON a.group_id = b.group_id WHERE a.user_id = :uid")


async def forget_in_rights(tx: Tx, *, pipeline_id: int | None = None, stage_id: int | None = None,
                           field: tuple[str, int] | None = None) -> int:
    """Drop what names a deleted pipeline, stage or custom field from every stored rights object
    (roles, and users' own rights). SQLite gives a deleted row's id to the next row, so an entry left
    behind would silently apply to a new stage or field: a stage right of view A on a deleted stage
    would open every lead of the next stage created. Returns how many rights objects changed."""
    changed = 0
    for table in ("roles", "users"):
        for row_id, text in await tx.fetchall(f"SELECT id, rights FROM {table} WHERE rights IS NOT NULL"):
            rights = Rights.from_json(orjson.loads(text))
            kept = rights.without(pipeline_id=pipeline_id, stage_id=stage_id, field=field)
            if kept != rights:
                await tx.execute(f"UPDATE {table} SET rights = ? WHERE id = ?",
                                 (orjson.dumps(kept.to_json()).decode(), row_id))
                changed += 1
    return changed


async def rights_sources(db: Database | Tx, user_id: int) -> list:
    return await db.fetchall(RIGHTS_SOURCES, {"uid": user_id})


async def group_comembers(db: Database | Tx, user_id: int) -> list[int]:
    rows = await db.fetchall(COMEMBERS, {"uid": user_id})
    return [r[0] for r in rows]


async def active_admin_ids(db: Database | Tx) -> list[int]:
    return [r[0] for r in await db.fetchall("SELECT id FROM users WHERE is_admin = 1 AND is_active = 1 ORDER BY id")]


async def existing(db: Database | Tx, user_ids: list[int]) -> set[int]:
    if not user_ids:
        return set()
    rows = await db.fetchall(f"SELECT id FROM users WHERE id IN ({','.join('?' * len(user_ids))})", user_ids)
    return {r[0] for r in rows}


async def activity_of(db: Database | Tx, user_id: int):
    """(is_admin, is_active) of a user, or None."""
    return await db.fetchone("SELECT is_admin, is_active FROM users WHERE id = ?", (user_id,))


async def is_active(db: Database | Tx, user_id: int) -> bool | None:
    """Whether a user is active; None for no such user."""
    row = await db.fetchone("SELECT is_active FROM users WHERE id = ?", (user_id,))
    return None if row is None else bool(row[0])


async def set_password_hash(tx: Tx, user_id: int, password_hash: str, now: float | None = None) -> None:
    if now is None:  # a rehash at login is not a change the user made
        await tx.execute("UPDATE users SET password_hash = ? WHERE id = ?", (password_hash, user_id))
    else:
        await tx.execute("UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ?",
                         (password_hash, now, user_id))


async def name_taken(tx: Tx, table: str, name: str, except_id: int | None = None) -> bool:
    """Whether a group or role already has this name (another one than ``except_id``)."""
    if table not in ("groups", "roles"):
        raise ValueError(f"{table} has no unique names")
    return bool(await tx.fetchval(f"SELECT 1 FROM {table} WHERE name = ? AND id != ?", (name, except_id or 0)))


async def cards(db: Database | Tx, user_ids: list[int]) -> dict[int, Any]:
    """Name and avatar of each user, by id."""
    if not user_ids:
        return {}
    rows = await db.fetchall(f"SELECT id, name, avatar FROM users WHERE id IN ({','.join('?' * len(user_ids))})",
                             user_ids)
    return {r["id"]: r for r in rows}


async def live_sessions(db: Database, session_ids: list[int]) -> set[int]:
    """Which of these sessions still exist and belong to an active user."""
    if not session_ids:
        return set()
    rows = await db.fetchall(f"SELECT s.id FROM sessions s JOIN users u ON u.id = s.user_id WHERE u.is_active = 1"
                             f" AND s.id IN ({','.join('?' * len(session_ids))})", session_ids)
    return {r[0] for r in rows}
