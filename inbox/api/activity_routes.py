"""/activity: the audit log, read-only and for administrators only (SPEC 3, SECURITY-CHECKLIST 30)."""

from __future__ import annotations

from typing import Annotated, Any

from aiohttp import web
from pydantic import StringConstraints, model_validator

from ..keys import DB
from ..store import activity
from .common import iso
from .models import Id
from .record_models import Cursor, Time
from .record_responses import ActivityPage
from .routing import Access, json_response, query, registry

route = registry.route

# Types are dotted lowercase words ("login.failed", "2fa.enabled"); a trailing "." asks for a prefix.
# The pattern also keeps the prefix range bound ("." -> "/") exact.
TypeFilter = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]+(\.[a-z0-9_]+)*\.?$", max_length=100)]
ObjectType = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]+$", max_length=40)]


class ActivityList(Cursor):
    user_id: Id | None = None
    type: TypeFilter | None = None
    object_type: ObjectType | None = None
    object_id: Id | None = None
    since: Time | None = None
    until: Time | None = None

    @model_validator(mode="after")
    def _coherent(self):
        # Object ids are per type, and the index is (object_type, object_id, id): alone, one would scan.
        if self.object_id is not None and self.object_type is None:
            raise ValueError("object_id needs object_type")
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ValueError("since must be before until")
        return self


def entry_json(r: dict[str, Any]) -> dict[str, Any]:
    return {"id": r["id"], "at": iso(r["at"]), "actor_id": r["actor_id"], "ip": r["ip"], "type": r["type"],
            "object_type": r["object_type"] or None, "object_id": r["object_id"], "data": r["data"]}


@route("GET", "/api/v1/activity", response=ActivityPage, access=Access.ADMIN, tag="activity", query=ActivityList,
       summary="The activity log, newest first (admin). Filters: user_id (actor), type (exact, or a prefix "
               "ending in '.' such as 'login.'), object_type + object_id, since/until (RFC 3339; since "
               "inclusive, until exclusive); cursor or page")
async def list_activity(request: web.Request) -> web.Response:
    q: ActivityList = query(request)
    db = request.app[DB]
    flt = activity.Filter(actor_id=q.user_id, type=q.type, object_type=q.object_type, object_id=q.object_id,
                          since=q.since, until=q.until)
    found = await activity.query(db, flt, before=q.cursor, limit=q.limit + 1, offset=(q.page - 1) * q.limit)
    has_more = len(found) > q.limit
    found = found[:q.limit]
    out: dict[str, Any] = {"items": [entry_json(r) for r in found], "limit": q.limit,
                           "next_cursor": found[-1]["id"] if has_more else None}
    if q.cursor is None:  # the convention of GET /leads: a count only for the first request of a walk
        out.update(page=q.page, total=await activity.count(db, flt))
    return json_response(out)
