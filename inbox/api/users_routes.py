"""/users: administrators manage people; everyone may see who their colleagues are."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from auth.passwords import password_problem

from ..actions import people
from ..actions.sessions import do_end_sessions, do_set_password
from ..keys import DB, HASHER
from ..store import sessions as session_rows
from ..store import users as rows
from .common import actor, iso, page_of
from .identity import identity
from .models import Page, PasswordReset, UserCreate, UserRemove, UserUpdate
from .problems import invalid, not_found
from .responses import AnyUser, EffectiveRights, Ended, SessionList, User, UserPage
from .routing import Access, body, int_id, json_response, query, registry

route = registry.route


def user_json(row, group_ids: list[int], *, full: bool) -> dict[str, Any]:
    """A colleague sees name and avatar; an administrator (or the user) sees the whole record (checklist 20)."""
    out = {"id": row["id"], "name": row["name"], "avatar": row["avatar"], "is_active": bool(row["is_active"])}
    if full:
        out.update({
            "email": row["email"], "is_admin": bool(row["is_admin"]), "is_partner": bool(row["is_partner"]),
            "role_id": row["role_id"], "rights": orjson.loads(row["rights"]) if row["rights"] else None,
            "group_ids": group_ids, "created_at": iso(row["created_at"]), "updated_at": iso(row["updated_at"]),
        })
    return out


def check_password(password: str, *, email: str, name: str, path: str = "password") -> None:
    problem = password_problem(password, email=email, name=name)
    if problem:
        raise invalid(problem, [{"path": path, "message": problem}])


@route("GET", "/api/v1/users", response=UserPage, access=Access.USER, tag="users", query=Page, summary="List users")
async def list_users(request: web.Request) -> web.Response:
    q = query(request)
    db = request.app[DB]
    found, total = await rows.list_users(db, offset=(q.page - 1) * q.limit, limit=q.limit)
    full = identity(request).is_admin
    groups = await rows.group_ids_by_user(db, [r["id"] for r in found]) if full else {}
    items = [user_json(r, groups.get(r["id"], []), full=full) for r in found]
    return json_response(page_of(items, page=q.page, limit=q.limit, total=total))


@route("POST", "/api/v1/users", response=User, access=Access.ADMIN, tag="users", body=UserCreate, status=201,
       summary="Add a user (admin)")
async def create_user(request: web.Request) -> web.Response:
    data: UserCreate = await body(request)
    check_password(data.password, email=data.email, name=data.name)
    db = request.app[DB]
    encoded = await request.app[HASHER].hash(data.password)
    uid = await people.do_create_user(
        db, actor(request), email=data.email, name=data.name, password_hash=encoded, avatar=data.avatar,
        is_admin=data.is_admin, is_partner=data.is_partner, role_id=data.role_id,
        rights=data.rights.model_dump() if data.rights else None, group_ids=data.group_ids)
    row = await rows.get_user(db, uid)
    return json_response(user_json(row, await rows.group_ids_of(db, uid), full=True), status=201)


@route("GET", "/api/v1/users/{id}", response=AnyUser, access=Access.USER, tag="users", summary="Get a user")
async def get_user(request: web.Request) -> web.Response:
    uid = int_id(request)
    db = request.app[DB]
    row = await rows.get_user(db, uid)
    if row is None:
        raise not_found("user")
    ident = identity(request)
    full = ident.is_admin or ident.user_id == uid
    return json_response(user_json(row, await rows.group_ids_of(db, uid) if full else [], full=full))


@route("PATCH", "/api/v1/users/{id}", response=User, access=Access.ADMIN, tag="users", body=UserUpdate,
       summary="Edit, disable, enable, promote or demote a user; set role or own rights (admin)")
async def update_user(request: web.Request) -> web.Response:
    uid = int_id(request)
    data: UserUpdate = await body(request)
    changes = {k: getattr(data, k) for k in data.model_fields_set if k != "group_ids"}
    if "rights" in changes and changes["rights"] is not None:
        changes["rights"] = data.rights.model_dump()
    db = request.app[DB]
    await people.do_update_user(db, actor(request), uid, changes, data.group_ids)
    row = await rows.get_user(db, uid)
    return json_response(user_json(row, await rows.group_ids_of(db, uid), full=True))


@route("DELETE", "/api/v1/users/{id}", access=Access.ADMIN, tag="users", query=UserRemove, status=204,
       summary="Remove a user, moving their records to reassign_to in the same transaction (admin)")
async def remove_user(request: web.Request) -> web.Response:
    uid = int_id(request)
    q: UserRemove = query(request)
    await people.do_remove_user(request.app[DB], actor(request), uid, q.reassign_to)
    return web.Response(status=204)


@route("GET", "/api/v1/users/{id}/rights", response=EffectiveRights, access=Access.ADMIN, tag="users",
       summary="Effective rights of a user, their sources and the conflicts between them (admin)")
async def effective_rights(request: web.Request) -> web.Response:
    uid = int_id(request)
    db = request.app[DB]
    row = await rows.get_user(db, uid)
    if row is None:
        raise not_found("user")
    eff = await people.load_effective(db, uid, is_admin=bool(row["is_admin"]))
    return json_response({"user_id": uid, "is_admin": bool(row["is_admin"]), **eff.to_json()})


@route("POST", "/api/v1/users/{id}/password", access=Access.ADMIN, tag="users", body=PasswordReset, status=204,
       summary="Set a new password for a user; ends all their sessions and clears the login throttle (admin)")
async def reset_password(request: web.Request) -> web.Response:
    uid = int_id(request)
    data: PasswordReset = await body(request)
    db = request.app[DB]
    row = await rows.get_user(db, uid)
    if row is None:
        raise not_found("user")
    check_password(data.new_password, email=row["email"], name=row["name"], path="new_password")
    await do_set_password(db, request.app[HASHER], actor(request), uid, data.new_password,
                          reason="user.password_reset", user_agent=request.headers.get("User-Agent", ""))
    return web.Response(status=204)


def session_json(row, current: int | None) -> dict[str, Any]:
    return {"id": row["id"], "user_id": row["user_id"], "device": row["user_agent"], "ip": row["ip"],
            "created_at": iso(row["created_at"]), "last_activity_at": iso(row["last_seen_at"]),
            "current": row["id"] == current}


@route("GET", "/api/v1/users/{id}/sessions", response=SessionList, access=Access.ADMIN, tag="sessions",
       summary="List any user's sessions (admin)")
async def user_sessions(request: web.Request) -> web.Response:
    uid = int_id(request)
    found = await session_rows.list_sessions(request.app[DB], uid)
    current = identity(request).session_id
    return json_response({"items": [session_json(r, current) for r in found]})


@route("DELETE", "/api/v1/users/{id}/sessions", response=Ended, access=Access.ADMIN, tag="sessions", status=200,
       summary="End all sessions of a user (admin)")
async def end_user_sessions(request: web.Request) -> web.Response:
    uid = int_id(request)
    ended = await do_end_sessions(request.app[DB], actor(request), uid, reason="session.ended_by_admin")
    return json_response({"ended": ended})
