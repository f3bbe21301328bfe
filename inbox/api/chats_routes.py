"""/chats: conversations a user may read (admin, a view right on the lead, a subscription to it, or a
view right on the contact), opening one (the lead, if named, seen through a view right or a
subscription; the contact seen, or on that lead), their messages, agent replies and read marks."""

from __future__ import annotations

from aiohttp import web

from auth.access import chat_plan

from ..actions import chats
from ..actions import workflow as workflow_actions
from ..actions.records import load_defs
from ..actions.render import contact_card
from ..keys import DB
from ..outbound import chat as outbound_chat
from ..realtime.views import message_json
from ..store import catalog, plans, workflow
from ..store import chats as rows
from ..store import records as record_rows
from . import record_models as m
from .common import actor, iso, subject_of
from .record_responses import Conversation, ConversationPage, Message, MessagePage
from .routing import Access, body, int_id, json_response, query, registry

route = registry.route


async def _visible_where(request: web.Request) -> tuple[str, list]:
    subject = await subject_of(request)
    catalogue = {} if subject.is_admin else await catalog.stage_catalogue(request.app[DB])
    return plans.conversations_where(chat_plan(subject, catalogue))


async def _conversation_json(request: web.Request, rows_) -> list[dict]:
    db = request.app[DB]
    subject = await subject_of(request)
    contacts = await record_rows.get_many(db, "contacts", [c["contact_id"] for c in rows_])
    reads = await rows.last_read(db, subject.user_id, [c["id"] for c in rows_])
    unread = await workflow.unread_messages(db, subject.user_id, [c["id"] for c in rows_])
    defs = (await load_defs(db))["contacts"]
    return [{"id": c["id"], "lead_id": c["lead_id"], "channel": c["channel"], "channel_id": c["channel_id"],
             "assignee_id": c["assignee_id"], "status": c["status"], "unread_count": unread.get(c["id"], 0),
             "contact": contact_card(subject, contacts[c["contact_id"]], defs), "last_read_id": reads.get(c["id"]),
             "created_at": iso(c["created_at"]), "updated_at": iso(c["updated_at"])} for c in rows_]


@route("GET", "/api/v1/chats", response=ConversationPage, access=Access.USER, tag="chats", query=m.ChatList,
       summary="Conversations you may open, newest first (filter by lead_id)")
async def list_chats(request: web.Request) -> web.Response:
    q: m.ChatList = query(request)
    where, params = await _visible_where(request)
    if q.lead_id is not None:
        where, params = f"{where} AND lead_id = ?", [*params, q.lead_id]
    if q.assignee is not None or q.status is not None:
        more_sql, more_params = workflow.filter_sql("conversations", q.assignee, q.status,
                                                    (await subject_of(request)).user_id)
        where, params = f"{where} AND {more_sql}", [*params, *more_params]
    found = await rows.list_conversations(request.app[DB], (where, params), before=q.cursor, limit=q.limit + 1)
    more = len(found) > q.limit
    found = found[:q.limit]
    return json_response({"items": await _conversation_json(request, found), "limit": q.limit,
                          "next_cursor": found[-1]["id"] if more else None})


@route("POST", "/api/v1/chats", response=Conversation, access=Access.USER, tag="chats", body=m.ConversationIn,
       status=201, summary="Open a conversation with a contact, optionally on a lead")
async def open_chat(request: web.Request) -> web.Response:
    data: m.ConversationIn = await body(request)
    cid = await chats.do_open(request.app[DB], actor(request), await subject_of(request), data.contact_id,
                              data.lead_id)
    return json_response((await _conversation_json(request, [await rows.get_conversation(request.app[DB], cid)]))[0],
                         status=201)


@route("GET", "/api/v1/chats/{id}/messages", response=MessagePage, access=Access.USER, tag="chats", query=m.MessageList,
       summary="Messages of a conversation, newest first; attachments hidden without files access")
async def list_messages(request: web.Request) -> web.Response:
    cid = int_id(request)
    q: m.MessageList = query(request)
    subject = await subject_of(request)
    await chats.require_chat(request.app[DB], subject, cid)
    found = await rows.list_messages(request.app[DB], cid, before=q.cursor, limit=q.limit + 1)
    more = len(found) > q.limit
    found = found[:q.limit]
    return json_response({"items": [message_json(subject, msg) for msg in found], "limit": q.limit,
                          "next_cursor": found[-1]["id"] if more else None})


@route("POST", "/api/v1/chats/{id}/messages", response=Message, access=Access.USER, tag="chats", body=m.MessageIn,
       status=201, summary="Reply as an agent; delivered live to everyone who may see the conversation")
async def reply(request: web.Request) -> web.Response:
    cid = int_id(request)
    data: m.MessageIn = await body(request)
    subject = await subject_of(request)
    message = await chats.do_reply(request.app[DB], actor(request), subject, cid, data.text, data.attachments)
    return json_response(message_json(subject, message), status=201)


@route("POST", "/api/v1/chats/{id}/read", access=Access.USER, tag="chats", body=m.ReadIn, status=204,
       summary="Mark a conversation read up to a message")
async def mark_read(request: web.Request) -> web.Response:
    data: m.ReadIn = await body(request)
    await chats.do_mark_read(request.app[DB], actor(request), await subject_of(request), int_id(request),
                             data.message_id)
    return web.Response(status=204)


@route("POST", "/api/v1/chats/{id}/messages/{message_id}/retry", response=Message, access=Access.USER, tag="chats",
       summary="Send a failed reply again, with the same webhook-id (the provider gets a real new attempt)")
async def retry(request: web.Request) -> web.Response:
    subject = await subject_of(request)
    message = await outbound_chat.do_retry(request.app[DB], actor(request), subject, int_id(request),
                                           int_id(request, "message_id"))
    return json_response(message_json(subject, message))


@route("PATCH", "/api/v1/chats/{id}", response=Conversation, access=Access.USER, tag="chats", body=m.WorkflowPatch,
       summary="Assign a conversation (to someone who may read it) or set its status: open, pending, resolved")
async def update_chat(request: web.Request) -> web.Response:
    data: m.WorkflowPatch = await body(request)
    cid = int_id(request)
    await workflow_actions.do_update_conversation(request.app[DB], actor(request), await subject_of(request), cid,
                                                  data.model_dump(exclude_unset=True))
    return json_response((await _conversation_json(request, [await rows.get_conversation(request.app[DB], cid)]))[0])
