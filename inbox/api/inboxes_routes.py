"""/inboxes: shared inboxes, their members and their email threads (rule 8), and a lead's emails."""

from __future__ import annotations

from aiohttp import web

from ..actions import inboxes, records
from ..actions.ingest import do_rotate_secret
from ..actions.render import email_json
from ..keys import CONFIG, DB, SEALER
from ..realtime.views import email_visible
from . import record_models as m
from .common import actor, iso, subject_of
from .problems import not_found
from .responses import EmailList, Inbox, InboxCreated, InboxList, Members, Secret, Thread, ThreadPage
from .routing import Access, body, int_id, json_response, query, registry

route = registry.route


@route("GET", "/api/v1/inboxes", response=InboxList, access=Access.USER, tag="inboxes",
       summary="Shared inboxes you may read (members with mail access; admins all)")
async def list_inboxes(request: web.Request) -> web.Response:
    db = request.app[DB]
    ids = await inboxes.visible_inbox_ids(db, await subject_of(request))
    rows = [await db.fetchone("SELECT * FROM inboxes WHERE id = ?", (i,)) for i in ids]
    return json_response({"items": [inboxes.inbox_json(r, await inboxes.members_of(db, r["id"])) for r in rows]})


@route("POST", "/api/v1/inboxes", response=InboxCreated, access=Access.ADMIN, tag="inboxes", body=m.InboxIn, status=201,
       summary="Create a shared inbox with members; its webhook secret is shown once (admin)")
async def create_inbox(request: web.Request) -> web.Response:
    data: m.InboxIn = await body(request)
    iid, secret = await inboxes.do_create(request.app[DB], request.app[SEALER], actor(request), data.name, data.user_ids)
    row = await request.app[DB].fetchone("SELECT * FROM inboxes WHERE id = ?", (iid,))
    return json_response({**inboxes.inbox_json(row, sorted(set(data.user_ids))), "secret": secret}, status=201)


@route("PATCH", "/api/v1/inboxes/{id}", response=Inbox, access=Access.ADMIN, tag="inboxes", body=m.InboxUpdate,
       summary="Rename an inbox (admin)")
async def rename_inbox(request: web.Request) -> web.Response:
    iid = int_id(request)
    data: m.InboxUpdate = await body(request)
    db = request.app[DB]
    if await db.fetchone("SELECT 1 FROM inboxes WHERE id = ?", (iid,)) is None:
        raise not_found("inbox")
    await db.write(lambda tx: tx.execute("UPDATE inboxes SET name = ? WHERE id = ?", (data.name, iid)))
    row = await db.fetchone("SELECT * FROM inboxes WHERE id = ?", (iid,))
    return json_response(inboxes.inbox_json(row, await inboxes.members_of(db, iid)))


@route("DELETE", "/api/v1/inboxes/{id}", access=Access.ADMIN, tag="inboxes", status=204,
       summary="Delete an inbox and its emails (admin)")
async def delete_inbox(request: web.Request) -> web.Response:
    await inboxes.do_delete(request.app[DB], actor(request), int_id(request))
    return web.Response(status=204)


@route("POST", "/api/v1/inboxes/{id}/rotate", response=Secret, access=Access.ADMIN, tag="inboxes",
       summary="A new webhook secret, shown once; the old one keeps working for a day (admin)")
async def rotate_inbox(request: web.Request) -> web.Response:
    secret = await do_rotate_secret(request.app[DB], request.app[SEALER], actor(request), "inboxes", int_id(request),
                                    request.app[CONFIG].secret_overlap_seconds)
    return json_response({"secret": secret})


@route("GET", "/api/v1/inboxes/{id}/members", response=Members, access=Access.USER, tag="inboxes",
       summary="An inbox's members")
async def get_members(request: web.Request) -> web.Response:
    iid = int_id(request)
    await inboxes.require_inbox(request.app[DB], await subject_of(request), iid)
    return json_response({"user_ids": await inboxes.members_of(request.app[DB], iid)})


@route("PUT", "/api/v1/inboxes/{id}/members", response=Members, access=Access.ADMIN, tag="inboxes", body=m.MembersIn,
       summary="Replace an inbox's members (admin); open websockets follow at once")
async def set_members(request: web.Request) -> web.Response:
    iid = int_id(request)
    data: m.MembersIn = await body(request)
    await inboxes.do_set_members(request.app[DB], actor(request), iid, data.user_ids)
    return json_response({"user_ids": await inboxes.members_of(request.app[DB], iid)})


@route("GET", "/api/v1/inboxes/{id}/emails", response=ThreadPage, access=Access.USER, tag="inboxes", query=m.ChatList,
       summary="An inbox's threads, most recent first, with their last email and whether you read them")
async def list_threads(request: web.Request) -> web.Response:
    iid = int_id(request)
    q: m.ChatList = query(request)
    db = request.app[DB]
    subject = await subject_of(request)
    await inboxes.require_inbox(db, subject, iid)
    cursor = " AND t.id < ?" if q.cursor else ""
    rows = await db.fetchall(
        "SELECT t.*, r.read_at FROM email_threads t LEFT JOIN email_thread_reads r ON r.thread_id = t.id AND"
        f" r.user_id = ? WHERE t.inbox_id = ?{cursor} ORDER BY t.id DESC LIMIT ?",
        [subject.user_id, iid, *([q.cursor] if q.cursor else []), q.limit + 1])
    more = len(rows) > q.limit
    rows = rows[:q.limit]
    items = [{"id": t["id"], "subject": t["subject"], "contact_id": t["contact_id"], "lead_id": t["lead_id"],
              "last_email_id": t["last_email_id"], "read": t["read_at"] is not None,
              "updated_at": iso(t["updated_at"])} for t in rows]
    return json_response({"items": items, "limit": q.limit, "next_cursor": rows[-1]["id"] if more else None})


async def _thread(request: web.Request):
    iid, tid = int_id(request), int_id(request, "thread_id")
    db = request.app[DB]
    await inboxes.require_inbox(db, await subject_of(request), iid)
    thread = await db.fetchone("SELECT * FROM email_threads WHERE id = ? AND inbox_id = ?", (tid, iid))
    if thread is None:
        raise not_found("thread")
    return thread


@route("GET", "/api/v1/inboxes/{id}/threads/{thread_id}", response=Thread, access=Access.USER, tag="inboxes",
       summary="A thread's emails, oldest first")
async def get_thread(request: web.Request) -> web.Response:
    thread = await _thread(request)
    subject = await subject_of(request)
    rows = await request.app[DB].fetchall("SELECT * FROM emails WHERE thread_id = ? ORDER BY id", (thread["id"],))
    return json_response({"id": thread["id"], "subject": thread["subject"], "contact_id": thread["contact_id"],
                          "lead_id": thread["lead_id"], "emails": [email_json(subject, r) for r in rows]})


@route("POST", "/api/v1/inboxes/{id}/threads/{thread_id}/read", access=Access.USER, tag="inboxes", status=204,
       summary="Mark a thread read (a new email makes it unread again)")
async def read_thread(request: web.Request) -> web.Response:
    thread = await _thread(request)
    me = actor(request)
    await request.app[DB].write(lambda tx: tx.execute(
        "INSERT OR REPLACE INTO email_thread_reads (user_id, thread_id, read_at) VALUES (?,?,?)",
        (me.user_id, thread["id"], me.now)))
    return web.Response(status=204)


@route("GET", "/api/v1/leads/{id}/emails", response=EmailList, access=Access.USER, tag="leads",
       summary="Emails in a lead's timeline: only those whose inbox you may read (rule 8)")
async def lead_emails(request: web.Request) -> web.Response:
    lead_id = int_id(request)
    db = request.app[DB]
    subject = await subject_of(request)
    await records.require_visible(db, subject, "leads", lead_id)
    rows = await db.fetchall("SELECT * FROM emails WHERE lead_id = ? ORDER BY id", (lead_id,))
    members: dict[int, list[int]] = {}
    out = []
    for r in rows:
        if r["inbox_id"] not in members:
            members[r["inbox_id"]] = await inboxes.members_of(db, r["inbox_id"])
        if email_visible(subject, members[r["inbox_id"]]):
            out.append(email_json(subject, r))
    return json_response({"items": out})
