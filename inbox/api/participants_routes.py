"""/leads/{id}/subscribers, /notifications and /access/explain."""

from __future__ import annotations

import orjson
from aiohttp import web

from ..actions import records
from ..actions.access import load_subject
from ..keys import DB
from ..store import records as rows
from ..store import users as user_rows
from . import record_models as m
from .common import actor, iso, subject_of
from .problems import invalid, not_found
from .record_responses import Explanation, Marked, NotificationPage, SubscriberList
from .routing import Access, body, int_id, json_response, query, registry

route = registry.route


async def _subscribers_body(request: web.Request, lead_id: int) -> web.Response:
    db = request.app[DB]
    ids = await rows.subscribers(db, lead_id)
    users = await user_rows.cards(db, ids)
    return json_response({"items": [{"user_id": u, "name": users[u]["name"], "avatar": users[u]["avatar"]}
                                    for u in ids]})


@route("GET", "/api/v1/leads/{id}/subscribers", response=SubscriberList, access=Access.USER, tag="leads",
       summary="List a lead's subscribers (participants)")
async def list_subscribers(request: web.Request) -> web.Response:
    lead_id = int_id(request)
    await records.require_visible(request.app[DB], await subject_of(request), "leads", lead_id)
    return await _subscribers_body(request, lead_id)


@route("POST", "/api/v1/leads/{id}/subscribers", response=SubscriberList, access=Access.USER, tag="leads",
       body=m.SubscriberIn, status=200,
       summary="Subscribe yourself to a lead you can see, or another user if you may edit it")
async def add_subscriber(request: web.Request) -> web.Response:
    lead_id = int_id(request)
    data: m.SubscriberIn = await body(request)
    await records.do_subscribe(request.app[DB], actor(request), await subject_of(request), lead_id, data.user_id,
                               add=True)
    return await _subscribers_body(request, lead_id)


@route("DELETE", "/api/v1/leads/{id}/subscribers/{user_id}", response=SubscriberList, access=Access.USER, tag="leads",
       status=200, summary="Unsubscribe yourself, or another user if you may edit the lead")
async def remove_subscriber(request: web.Request) -> web.Response:
    lead_id, user_id = int_id(request), int_id(request, "user_id")
    await records.do_subscribe(request.app[DB], actor(request), await subject_of(request), lead_id, user_id,
                               add=False)
    return await _subscribers_body(request, lead_id)


def _notification_json(row) -> dict:
    return {"id": row["id"], "type": row["type"], "lead_id": row["lead_id"], "data": orjson.loads(row["data"]),
            "created_at": iso(row["created_at"]), "read_at": iso(row["read_at"])}


@route("GET", "/api/v1/notifications", response=NotificationPage, access=Access.USER, tag="notifications",
       query=m.NotificationList, summary="Your notifications, newest first (changes to leads you are subscribed to)")
async def list_notifications(request: web.Request) -> web.Response:
    q: m.NotificationList = query(request)
    found = await rows.list_notifications(request.app[DB], actor(request).user_id, unread=q.unread,
                                          before=q.cursor, limit=q.limit + 1)
    more = len(found) > q.limit
    found = found[:q.limit]
    return json_response({"items": [_notification_json(r) for r in found], "limit": q.limit,
                          "next_cursor": found[-1]["id"] if more else None})


@route("POST", "/api/v1/notifications/read", response=Marked, access=Access.USER, tag="notifications",
       body=m.NotificationsRead, summary="Mark your notifications read (the given ids, or all)")
async def mark_read(request: web.Request) -> web.Response:
    data: m.NotificationsRead = await body(request)
    me = actor(request)

    async def job(tx):
        return await rows.mark_read(tx, me.user_id, data.ids, me.now)

    return json_response({"marked": await request.app[DB].write(job)})


@route("GET", "/api/v1/access/explain", response=Explanation, access=Access.ADMIN, tag="access", query=m.ExplainQuery,
       summary="Why a user can or cannot do an action on a record: the deciding rule and source (admin)")
async def explain(request: web.Request) -> web.Response:
    q: m.ExplainQuery = query(request)
    db = request.app[DB]
    user = await user_rows.get_user(db, q.user_id)
    if user is None:
        raise not_found("user")
    subject = await load_subject(db, q.user_id, is_admin=bool(user["is_admin"]))
    if q.entity == "tasks":
        if q.action not in ("view", "edit", "delete"):
            raise invalid("tasks have the actions view, edit and delete",
                          [{"path": "action", "message": "not a task action"}])
        task = await rows.get(db, "tasks", q.record_id)
        if task is None:
            raise not_found("task")
        if q.action == "view":
            attached = await records.attached_viewable(db, subject, task)
            allowed = subject.task_visible(task["responsible_user_id"], attached_viewable=attached)
            rule = ("task_responsible" if task["responsible_user_id"] == q.user_id else
                    "task_edit_level" if subject.can_task("edit", task["responsible_user_id"]) else
                    "attached_record" if attached else "task_edit_level")
        else:
            allowed = subject.can_task(q.action, task["responsible_user_id"])
            rule = f"task_{q.action}_level"
        out = {"allowed": allowed or subject.is_admin, "rule": "admin" if subject.is_admin else rule}
    else:
        if q.action == "add":
            record = {"pipeline_id": q.pipeline_id}
            subscribed = False
        else:
            record = await rows.get(db, q.entity, q.record_id)
            if record is None:
                raise not_found(records.SINGULAR[q.entity])
            subscribed = q.entity == "leads" and bool(await rows.subscribed_among(db, q.user_id, [q.record_id]))
        out = subject.explain(q.entity, q.action, record, subscribed=subscribed)
    return json_response({"user_id": q.user_id, "entity": q.entity, "action": q.action, "record_id": q.record_id,
                          **out})
