"""Users, groups and roles: every change is checked, written and logged in one transaction.

Verb prefixes follow zulip: ``check_`` validates, ``do_`` writes and logs, ``load_`` reads.
"""

from __future__ import annotations

from typing import Any

import orjson

from auth.rights import Effective, Rights, Source, admin_effective, effective

from ..errors import conflict, invalid, not_found
from ..store import activity, events
from ..store import sessions as session_rows
from ..store import users as rows
from ..store.db import Database, Tx
from .context import Actor


def clamp_rights(raw: dict[str, Any]) -> dict[str, Any]:
    """Rule 1: the stored and returned object is the clamped one."""
    return Rights.from_json(raw).clamped().to_json()


# Effective rights by their exact sources (kind, role, group, stored JSON). Users with the same role
# share one immutable object: every request and every open websocket needs one, and parsing and
# merging the JSON again for each would cost time and ~2 KB per socket. The key is the stored text,
# so an edited role or user simply makes a new key; bounded by clearing, as distinct keys are few.
_EFFECTIVE: dict[tuple, Effective] = {}
_EFFECTIVE_MAX = 4096


# Administrators see and do everything whatever their role, own rights or groups say (SPEC 1).
ADMIN_EFFECTIVE = admin_effective()


async def load_effective(db: Database | Tx, user_id: int, *, is_admin: bool = False) -> Effective:
    """What the user effectively holds, as shown to people: for an administrator, everything."""
    return ADMIN_EFFECTIVE if is_admin else effective_from(await rows.rights_sources(db, user_id))


def effective_from(found) -> Effective:
    """Effective rights from ``users.RIGHTS_SOURCES`` rows (shared, see ``_EFFECTIVE``)."""
    key = tuple((r["kind"], r["role_id"], r["group_id"], r["rights"], r["role_name"], r["group_name"])
                for r in found)
    cached = _EFFECTIVE.get(key)
    if cached is None:
        sources = [Source(kind, Rights.from_json(orjson.loads(text)), role_id, group_id, role_name, group_name)
                   for kind, role_id, group_id, text, role_name, group_name in key]
        if len(_EFFECTIVE) >= _EFFECTIVE_MAX:
            _EFFECTIVE.clear()
        cached = _EFFECTIVE[key] = effective(sources)
    return cached


async def access_changed(tx: Tx, actor: Actor, user_ids: list[int] | None) -> None:
    """Tell open websockets to reload these users' rights (None: everyone) before the next event."""
    await events.emit(tx, "access.changed", {"user_ids": user_ids}, actor.now)


async def _check_refs(tx: Tx, *, role_id: int | None = None, group_ids=(), user_ids=()) -> None:
    if role_id is not None and await rows.missing_ids(tx, "roles", [role_id]):
        raise invalid(f"role {role_id} does not exist", [{"path": "role_id", "message": "unknown role"}])
    missing = await rows.missing_ids(tx, "groups", group_ids)
    if missing:
        raise invalid(f"groups {missing} do not exist", [{"path": "group_ids", "message": f"unknown {missing}"}])
    missing = await rows.missing_ids(tx, "users", user_ids)
    if missing:
        raise invalid(f"users {missing} do not exist", [{"path": "user_ids", "message": f"unknown {missing}"}])


async def _check_email_free(tx: Tx, email: str, user_id: int | None = None) -> None:
    existing = await rows.get_user_by_email(tx, email)
    if existing is not None and existing["id"] != user_id:
        raise conflict(f"A user with email {email!r} already exists.")


def _public_user(row, group_ids: list[int]) -> dict[str, Any]:
    return {"email": row["email"], "name": row["name"], "is_admin": bool(row["is_admin"]),
            "is_active": bool(row["is_active"]), "is_partner": bool(row["is_partner"]), "role_id": row["role_id"],
            "rights": orjson.loads(row["rights"]) if row["rights"] else None, "group_ids": group_ids}


async def do_create_user(db: Database, actor: Actor, *, email: str, name: str, password_hash: str,
                         avatar: str | None = None, is_admin: bool = False, is_partner: bool = False,
                         role_id: int | None = None, rights: dict | None = None, group_ids=()) -> int:
    if rights is not None:
        rights = clamp_rights(rights)

    async def job(tx: Tx) -> int:
        await _check_email_free(tx, email)
        await _check_refs(tx, role_id=role_id, group_ids=group_ids)
        first = await rows.count_users(tx) == 0
        # The first user of a workspace is an administrator (SPEC 1).
        uid = await rows.insert_user(tx, email=email, name=name, password_hash=password_hash,
                                     is_admin=is_admin or first, is_partner=is_partner, role_id=role_id,
                                     rights=rights if role_id is None else None, avatar=avatar, now=actor.now)
        await rows.set_user_groups(tx, uid, group_ids)
        if group_ids:  # a new team-mate widens the reach of G for everyone in those groups
            await access_changed(tx, actor, None)
        after = _public_user(await rows.get_user(tx, uid), sorted(set(group_ids)))
        await activity.append(tx, at=actor.now, actor_id=actor.user_id or uid, ip=actor.ip, type="user.created",
                              object_type="user", object_id=uid, data={"after": after})
        return uid

    return await db.write(job)


async def do_update_user(db: Database, actor: Actor, user_id: int, changes: dict[str, Any],
                         group_ids: list[int] | None = None) -> list[int]:
    """Apply an admin's edit. Returns the ids of sessions ended (a disabled user loses all of them)."""
    changes = dict(changes)
    if "rights" in changes and changes["rights"] is not None:
        changes["rights"] = clamp_rights(changes["rights"])
        changes.setdefault("role_id", None)  # own rights replace the role
    if changes.get("role_id") is not None:
        changes["rights"] = None  # a role replaces own rights

    async def job(tx: Tx) -> list[int]:
        row = await rows.get_user(tx, user_id)
        if row is None:
            raise not_found("user")
        if "email" in changes:
            await _check_email_free(tx, changes["email"], user_id)
        await _check_refs(tx, role_id=changes.get("role_id"), group_ids=group_ids or ())
        losing_admin = (row["is_admin"] and row["is_active"]
                        and (changes.get("is_admin") is False or changes.get("is_active") is False))
        if losing_admin and await rows.other_active_admins(tx, user_id) == 0:
            raise conflict("This is the last active administrator; make another user an administrator first.")
        before = _public_user(row, await rows.group_ids_of(tx, user_id))
        await rows.update_user(tx, user_id, changes, actor.now)
        if group_ids is not None:
            await rows.set_user_groups(tx, user_id, group_ids)
        ended: list[int] = []
        if changes.get("is_active") is False:
            ended = await session_rows.delete_user_sessions(tx, user_id)
        after = _public_user(await rows.get_user(tx, user_id), await rows.group_ids_of(tx, user_id))
        kind = "user.disabled" if changes.get("is_active") is False and row["is_active"] else (
            "user.enabled" if changes.get("is_active") is True and not row["is_active"] else "user.updated")
        # Group membership moves the reach of G for every co-member, so then everyone reloads.
        await access_changed(tx, actor, None if group_ids is not None else [user_id])
        await activity.append(tx, at=actor.now, actor_id=actor.user_id, ip=actor.ip, type=kind,
                              object_type="user", object_id=user_id,
                              data={"before": {k: v for k, v in before.items() if before[k] != after[k]},
                                    "after": {k: v for k, v in after.items() if before[k] != after[k]}})
        return ended

    return await db.write(job)


async def do_remove_user(db: Database, actor: Actor, user_id: int, reassign_to: int | None) -> dict[str, int]:
    """Remove a user after moving all their records to another user, in one transaction (SPEC 1)."""

    async def job(tx: Tx) -> dict[str, int]:
        row = await rows.get_user(tx, user_id)
        if row is None:
            raise not_found("user")
        if row["is_admin"] and row["is_active"] and await rows.other_active_admins(tx, user_id) == 0:
            raise conflict("This is the last active administrator; it cannot be removed.")
        owned = await rows.owned_records(tx, user_id)
        if any(owned.values()):
            if reassign_to is None:
                raise conflict("This user is responsible for records; pass reassign_to=<user id> to move them "
                               "to another user in the same step.", owned=owned)
            target = await rows.get_user(tx, reassign_to)
            if target is None or reassign_to == user_id:
                raise invalid("reassign_to must be another existing user",
                              [{"path": "reassign_to", "message": "unknown or same user"}])
            if not target["is_active"]:
                raise conflict(f"User {reassign_to} is disabled; records must go to an active user.")
            await rows.reassign_records(tx, user_id, reassign_to, actor.now)
        before = _public_user(row, await rows.group_ids_of(tx, user_id))
        await rows.delete_user(tx, user_id)
        await access_changed(tx, actor, [user_id])
        await activity.append(tx, at=actor.now, actor_id=actor.user_id, ip=actor.ip, type="user.removed",
                              object_type="user", object_id=user_id,
                              data={"before": before, "reassigned_to": reassign_to, "records": owned})
        return owned

    return await db.write(job)


# --- groups ---

async def do_create_group(db: Database, actor: Actor, *, name: str, role_id: int | None, user_ids: list[int]) -> int:
    async def job(tx: Tx) -> int:
        await _check_refs(tx, role_id=role_id, user_ids=user_ids)
        if await rows.name_taken(tx, "groups", name):
            raise conflict(f"A group named {name!r} already exists.")
        gid = await rows.insert_group(tx, name=name, role_id=role_id, now=actor.now)
        await rows.set_group_members(tx, gid, user_ids)
        await access_changed(tx, actor, None)
        await activity.append(tx, at=actor.now, actor_id=actor.user_id, ip=actor.ip, type="group.created",
                              object_type="group", object_id=gid,
                              data={"after": {"name": name, "role_id": role_id, "user_ids": sorted(set(user_ids))}})
        return gid

    return await db.write(job)


async def do_update_group(db: Database, actor: Actor, group_id: int, *, name: str | None, role_id: int | None,
                          set_role: bool, user_ids: list[int] | None) -> None:
    async def job(tx: Tx) -> None:
        before = await rows.get_group(tx, group_id)
        if before is None:
            raise not_found("group")
        await _check_refs(tx, role_id=role_id if set_role else None, user_ids=user_ids or ())
        if name is not None and await rows.name_taken(tx, "groups", name, group_id):
            raise conflict(f"A group named {name!r} already exists.")
        await rows.update_group(tx, group_id, name=name, role_id=role_id, set_role=set_role, now=actor.now)
        if user_ids is not None:
            await rows.set_group_members(tx, group_id, user_ids)
        await access_changed(tx, actor, None)
        after = await rows.get_group(tx, group_id)
        await activity.append(tx, at=actor.now, actor_id=actor.user_id, ip=actor.ip, type="group.updated",
                              object_type="group", object_id=group_id,
                              data={"before": group_json(before), "after": group_json(after)})

    await db.write(job)


async def do_delete_group(db: Database, actor: Actor, group_id: int) -> None:
    async def job(tx: Tx) -> None:
        before = await rows.get_group(tx, group_id)
        if before is None:
            raise not_found("group")
        await rows.delete_group(tx, group_id)
        await access_changed(tx, actor, None)
        await activity.append(tx, at=actor.now, actor_id=actor.user_id, ip=actor.ip, type="group.deleted",
                              object_type="group", object_id=group_id, data={"before": group_json(before)})

    await db.write(job)


def group_json(row) -> dict[str, Any]:
    return {"id": row["id"], "name": row["name"], "role_id": row["role_id"],
            "user_ids": orjson.loads(row["member_ids"])}


# --- roles ---

def role_json(row) -> dict[str, Any]:
    return {"id": row["id"], "name": row["name"], "rights": orjson.loads(row["rights"])}


async def do_create_role(db: Database, actor: Actor, *, name: str, rights: dict) -> int:
    rights = clamp_rights(rights)

    async def job(tx: Tx) -> int:
        if await rows.name_taken(tx, "roles", name):
            raise conflict(f"A role named {name!r} already exists.")
        rid = await rows.insert_role(tx, name=name, rights=rights, now=actor.now)
        await activity.append(tx, at=actor.now, actor_id=actor.user_id, ip=actor.ip, type="role.created",
                              object_type="role", object_id=rid, data={"after": {"name": name, "rights": rights}})
        return rid

    return await db.write(job)


async def do_update_role(db: Database, actor: Actor, role_id: int, *, name: str | None, rights: dict | None) -> None:
    rights = clamp_rights(rights) if rights is not None else None

    async def job(tx: Tx) -> None:
        before = await rows.get_role(tx, role_id)
        if before is None:
            raise not_found("role")
        if name is not None and await rows.name_taken(tx, "roles", name, role_id):
            raise conflict(f"A role named {name!r} already exists.")
        await rows.update_role(tx, role_id, name=name, rights=rights, now=actor.now)
        await access_changed(tx, actor, None)
        after = await rows.get_role(tx, role_id)
        await activity.append(tx, at=actor.now, actor_id=actor.user_id, ip=actor.ip, type="role.updated",
                              object_type="role", object_id=role_id,
                              data={"before": role_json(before), "after": role_json(after)})

    await db.write(job)


async def do_delete_role(db: Database, actor: Actor, role_id: int) -> None:
    async def job(tx: Tx) -> None:
        before = await rows.get_role(tx, role_id)
        if before is None:
            raise not_found("role")
        used = await rows.role_in_use(tx, role_id)
        if any(used.values()):
            raise conflict("The role is still assigned; assign another role to its users and groups first.",
                           assigned=used)
        await rows.delete_role(tx, role_id)
        await activity.append(tx, at=actor.now, actor_id=actor.user_id, ip=actor.ip, type="role.deleted",
                              object_type="role", object_id=role_id, data={"before": role_json(before)})

    await db.write(job)
