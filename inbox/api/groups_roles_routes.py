"""/groups and /roles. Groups are visible to everyone (for "team" filters); roles to admins only."""

from __future__ import annotations

from aiohttp import web

from ..actions import people
from ..keys import DB
from ..store import users as rows
from .common import actor
from .models import GroupIn, GroupUpdate, RoleIn, RoleUpdate
from .problems import not_found
from .responses import Group, GroupList, Role, RoleList
from .routing import Access, body, int_id, json_response, registry

route = registry.route


@route("GET", "/api/v1/groups", response=GroupList, access=Access.USER, tag="groups",
       summary="List groups with their members")
async def list_groups(request: web.Request) -> web.Response:
    found = await rows.list_groups(request.app[DB])
    return json_response({"items": [people.group_json(r) for r in found]})


@route("POST", "/api/v1/groups", response=Group, access=Access.ADMIN, tag="groups", body=GroupIn, status=201,
       summary="Create a group (admin)")
async def create_group(request: web.Request) -> web.Response:
    data: GroupIn = await body(request)
    gid = await people.do_create_group(request.app[DB], actor(request), name=data.name, role_id=data.role_id,
                                       user_ids=data.user_ids)
    return json_response(people.group_json(await rows.get_group(request.app[DB], gid)), status=201)


@route("GET", "/api/v1/groups/{id}", response=Group, access=Access.USER, tag="groups", summary="Get a group")
async def get_group(request: web.Request) -> web.Response:
    row = await rows.get_group(request.app[DB], int_id(request))
    if row is None:
        raise not_found("group")
    return json_response(people.group_json(row))


@route("PATCH", "/api/v1/groups/{id}", response=Group, access=Access.ADMIN, tag="groups", body=GroupUpdate,
       summary="Rename a group, set its role or its members (admin)")
async def update_group(request: web.Request) -> web.Response:
    gid = int_id(request)
    data: GroupUpdate = await body(request)
    await people.do_update_group(request.app[DB], actor(request), gid, name=data.name, role_id=data.role_id,
                                 set_role="role_id" in data.model_fields_set, user_ids=data.user_ids)
    return json_response(people.group_json(await rows.get_group(request.app[DB], gid)))


@route("DELETE", "/api/v1/groups/{id}", access=Access.ADMIN, tag="groups", status=204,
       summary="Delete a group (admin)")
async def delete_group(request: web.Request) -> web.Response:
    await people.do_delete_group(request.app[DB], actor(request), int_id(request))
    return web.Response(status=204)


@route("GET", "/api/v1/roles", response=RoleList, access=Access.ADMIN, tag="roles", summary="List roles (admin)")
async def list_roles(request: web.Request) -> web.Response:
    return json_response({"items": [people.role_json(r) for r in await rows.list_roles(request.app[DB])]})


@route("POST", "/api/v1/roles", response=Role, access=Access.ADMIN, tag="roles", body=RoleIn, status=201,
       summary="Save a rights object as a named role; the stored rights are clamped (admin)")
async def create_role(request: web.Request) -> web.Response:
    data: RoleIn = await body(request)
    rid = await people.do_create_role(request.app[DB], actor(request), name=data.name,
                                      rights=data.rights.model_dump())
    return json_response(people.role_json(await rows.get_role(request.app[DB], rid)), status=201)


@route("GET", "/api/v1/roles/{id}", response=Role, access=Access.ADMIN, tag="roles", summary="Get a role (admin)")
async def get_role(request: web.Request) -> web.Response:
    row = await rows.get_role(request.app[DB], int_id(request))
    if row is None:
        raise not_found("role")
    return json_response(people.role_json(row))


@route("PATCH", "/api/v1/roles/{id}", response=Role, access=Access.ADMIN, tag="roles", body=RoleUpdate,
       summary="Rename a role or replace its rights; takes effect on the next request (admin)")
async def update_role(request: web.Request) -> web.Response:
    rid = int_id(request)
    data: RoleUpdate = await body(request)
    await people.do_update_role(request.app[DB], actor(request), rid, name=data.name,
                                rights=data.rights.model_dump() if data.rights else None)
    return json_response(people.role_json(await rows.get_role(request.app[DB], rid)))


@route("DELETE", "/api/v1/roles/{id}", access=Access.ADMIN, tag="roles", status=204,
       summary="Delete a role that no user or group holds (admin)")
async def delete_role(request: web.Request) -> web.Response:
    await people.do_delete_role(request.app[DB], actor(request), int_id(request))
    return web.Response(status=204)
