"""/inboxes: shared inboxes, their members and their email threads (rule 8), and a lead's emails."""

from __future__ import annotations

from aiohttp import web

from auth.access import email_visible

from ..actions import inboxes, records
from ..actions import workflow as workflow_actions
from ..actions.ingest import do_resume, do_rotate_secret
from ..actions.render import email_json
from ..keys import CONFIG, DB, OUTBOUND, SEALER
from ..outbound import addresses
from ..outbound import email as outbound_email
from ..store import emails as mail_rows
from ..store import inboxes as inbox_rows
from ..store import outbox, workflow
from . import record_models as m
from .common import actor, iso, subject_of
from .problems import invalid, not_found
from .responses import (
    Email,
    EmailList,
    Inbox,
    InboxCreated,
    InboxList,
    Members,
    Outgoing,
    Secret,
    Thread,
    ThreadPage,
    ThreadSummary,
)
from .routing import Access, body, int_id, json_response, query, registry

route = registry.route


@route("GET", "/api/v1/inboxes", response=InboxList, access=Access.USER, tag="inboxes",
       summary="Shared inboxes you may read (members with mail access; admins all)")
async def list_inboxes(request: web.Request) -> web.Response:
    db = request.app[DB]
    ids = await inboxes.visible_inbox_ids(db, await subject_of(request))
    rows = await inbox_rows.many(db, ids)
    return json_response({"items": [inboxes.inbox_json(r, await inboxes.members_of(db, r["id"])) for r in rows]})


@route("POST", "/api/v1/inboxes", response=InboxCreated, access=Access.ADMIN, tag="inboxes", body=m.InboxIn, status=201,
       summary="Create a shared inbox with members; its webhook secret is shown once (admin)")
async def create_inbox(request: web.Request) -> web.Response:
    data: m.InboxIn = await body(request)
    iid, secret = await inboxes.do_create(request.app[DB], request.app[SEALER], actor(request), data.name, data.user_ids)
    row = await inbox_rows.get(request.app[DB], iid)
    return json_response({**inboxes.inbox_json(row, sorted(set(data.user_ids))), "secret": secret}, status=201)


@route("PATCH", "/api/v1/inboxes/{id}", response=Inbox, access=Access.ADMIN, tag="inboxes", body=m.InboxUpdate,
       summary="Rename an inbox (admin)")
async def rename_inbox(request: web.Request) -> web.Response:
    iid = int_id(request)
    data: m.InboxUpdate = await body(request)
    db = request.app[DB]
    await inboxes.do_rename(db, actor(request), iid, data.name)
    return json_response(inboxes.inbox_json(await inbox_rows.get(db, iid), await inboxes.members_of(db, iid)))


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


@route("GET", "/api/v1/inboxes/{id}/emails", response=ThreadPage, access=Access.USER, tag="inboxes",
       query=m.ThreadList, summary="An inbox's threads, most recent first, with their last email, assignee, status"
                                   " and what you have not read (filter by assignee and status)")
async def list_threads(request: web.Request) -> web.Response:
    iid = int_id(request)
    q: m.ThreadList = query(request)
    db = request.app[DB]
    subject = await subject_of(request)
    await inboxes.require_inbox(db, subject, iid)
    rows = await mail_rows.threads(db, iid, workflow.filter_sql("t", q.assignee, q.status, subject.user_id),
                                   before=q.cursor, limit=q.limit + 1)
    more = len(rows) > q.limit
    rows = rows[:q.limit]
    items = await _summaries(db, subject, rows)
    return json_response({"items": items, "limit": q.limit, "next_cursor": rows[-1]["id"] if more else None})


async def _summaries(db, subject, rows) -> list[dict]:
    unread = await workflow.unread_emails(db, subject.user_id, [t["id"] for t in rows])
    return [{"id": t["id"], "subject": t["subject"], "contact_id": t["contact_id"], "lead_id": t["lead_id"],
             "last_email_id": t["last_email_id"], "read": unread.get(t["id"], 0) == 0,
             "unread_count": unread.get(t["id"], 0), "assignee_id": t["assignee_id"], "status": t["status"],
             "updated_at": iso(t["updated_at"])} for t in rows]


async def _summary(db, subject, thread_id: int) -> dict:
    return (await _summaries(db, subject, [await mail_rows.thread_by_id(db, thread_id)]))[0]


async def _thread(request: web.Request):
    iid, tid = int_id(request), int_id(request, "thread_id")
    db = request.app[DB]
    await inboxes.require_inbox(db, await subject_of(request), iid)
    thread = await mail_rows.thread(db, iid, tid)
    if thread is None:
        raise not_found("thread")
    return thread


@route("GET", "/api/v1/inboxes/{id}/threads/{thread_id}", response=Thread, access=Access.USER, tag="inboxes",
       summary="A thread's emails, oldest first")
async def get_thread(request: web.Request) -> web.Response:
    thread = await _thread(request)
    subject = await subject_of(request)
    rows = await mail_rows.of_thread(request.app[DB], thread["id"])
    return json_response({"id": thread["id"], "subject": thread["subject"], "contact_id": thread["contact_id"],
                          "lead_id": thread["lead_id"], "emails": [email_json(subject, r) for r in rows]})


@route("POST", "/api/v1/inboxes/{id}/threads/{thread_id}/read", access=Access.USER, tag="inboxes", status=204,
       summary="Mark a thread read (a new email makes it unread again)")
async def read_thread(request: web.Request) -> web.Response:
    thread = await _thread(request)
    me = actor(request)
    await request.app[DB].write(lambda tx: workflow.mark_thread_read(tx, me.user_id, thread["id"], me.now))
    return web.Response(status=204)


@route("GET", "/api/v1/leads/{id}/emails", response=EmailList, access=Access.USER, tag="leads",
       summary="Emails in a lead's timeline: only those whose inbox you may read (rule 8)")
async def lead_emails(request: web.Request) -> web.Response:
    lead_id = int_id(request)
    db = request.app[DB]
    subject = await subject_of(request)
    await records.require_visible(db, subject, "leads", lead_id)
    rows = await mail_rows.of_lead(db, lead_id)
    members: dict[int, list[int]] = {}
    out = []
    for r in rows:
        if r["inbox_id"] not in members:
            members[r["inbox_id"]] = await inboxes.members_of(db, r["inbox_id"])
        if email_visible(subject, members[r["inbox_id"]]):
            out.append(email_json(subject, r))
    return json_response({"items": out})


async def _outgoing(request: web.Request, inbox_id: int) -> web.Response:
    row = await inbox_rows.get(request.app[DB], inbox_id)
    if row is None:
        raise not_found("inbox")
    return json_response(inboxes.outgoing_json(row, await outbox.target(request.app[DB], "email", inbox_id)))


@route("GET", "/api/v1/inboxes/{id}/outgoing", response=Outgoing, access=Access.ADMIN, tag="inboxes",
       summary="How the inbox sends replies: address and SMTP server, never the password (admin)")
async def get_outgoing(request: web.Request) -> web.Response:
    return await _outgoing(request, int_id(request))


@route("PUT", "/api/v1/inboxes/{id}/outgoing", response=Outgoing, access=Access.ADMIN, tag="inboxes",
       body=m.OutgoingIn, summary="Set how the inbox sends replies; the password is sealed at rest (admin)")
async def set_outgoing(request: web.Request) -> web.Response:
    iid = int_id(request)
    data: m.OutgoingIn = await body(request)
    if not await inbox_rows.exists(request.app[DB], iid):
        raise not_found("inbox")
    problem = await addresses.smtp_host_problem(data.host, data.port, data.security,
                                                allow_private=request.app[CONFIG].outbound_allow_private)
    if problem:
        raise invalid(f"host is not usable: {problem}.", [{"path": "host", "message": problem}])
    settings = data.model_dump(exclude={"password"})
    await inboxes.do_set_outgoing(request.app[DB], request.app[SEALER], actor(request), iid, settings,
                                  data.password, keep_password="password" not in data.model_fields_set)
    return await _outgoing(request, iid)


@route("POST", "/api/v1/inboxes/{id}/threads/{thread_id}/reply", response=Email, access=Access.USER, tag="inboxes",
       body=m.EmailReplyIn, status=201,
       summary="Answer a thread by email from the inbox (members with mail access; files access to attach)")
async def reply(request: web.Request) -> web.Response:
    data: m.EmailReplyIn = await body(request)
    subject = await subject_of(request)
    email = await outbound_email.do_reply(request.app[DB], actor(request), subject, int_id(request),
                                          int_id(request, "thread_id"), text=data.text, html=data.html, cc=data.cc,
                                          media_ids=data.media_ids)
    return json_response(email_json(subject, email), status=201)


@route("POST", "/api/v1/inboxes/{id}/resume", response=Outgoing, access=Access.ADMIN, tag="inboxes",
       summary="Restart an inbox whose replies were paused after repeated SMTP failures (admin)")
async def resume_inbox(request: web.Request) -> web.Response:
    await do_resume(request.app[DB], actor(request), "inboxes", int_id(request))
    request.app[OUTBOUND].wake()
    return await _outgoing(request, int_id(request))


@route("PATCH", "/api/v1/inboxes/{id}/threads/{thread_id}", response=ThreadSummary, access=Access.USER,
       tag="inboxes", body=m.WorkflowPatch,
       summary="Assign a thread (to a member with mail access) or set its status: open, pending, resolved")
async def update_thread(request: web.Request) -> web.Response:
    data: m.WorkflowPatch = await body(request)
    iid, tid = int_id(request), int_id(request, "thread_id")
    subject = await subject_of(request)
    await workflow_actions.do_update_thread(request.app[DB], actor(request), subject, iid, tid,
                                            data.model_dump(exclude_unset=True))
    return json_response(await _summary(request.app[DB], subject, tid))


@route("POST", "/api/v1/inboxes/{id}/threads/{thread_id}/emails/{email_id}/retry", response=Email,
       access=Access.USER, tag="inboxes", summary="Send a failed reply again, with the same Message-ID")
async def retry_email(request: web.Request) -> web.Response:
    subject = await subject_of(request)
    email = await outbound_email.do_retry(request.app[DB], actor(request), subject, int_id(request),
                                          int_id(request, "thread_id"), int_id(request, "email_id"))
    return json_response(email_json(subject, email))
