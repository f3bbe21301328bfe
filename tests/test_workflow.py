"""The conversation workflow (docs/outbound.md): assignees and statuses on chat conversations and email
threads, a customer's message reopening a resolved one and notifying who handles it, unread counts,
and the list filters; each with the user who must not see or do it."""

from __future__ import annotations

import pytest

from conftest import FAST_HASHING
from test_email import mail, post_mail
from test_email import world as mail_world
from test_ingest import deliver, message
from test_realtime import close_clients, connect  # noqa: F401  (the fixture closes the test's sockets)

AGENT = {"leads": {"add": "A", "view": "A", "edit": "A"}, "contacts": {"add": "A", "view": "A"}}
BLIND = {"leads": {"view": "M"}, "contacts": {"view": "M"}}


@pytest.fixture
def config_overrides() -> dict:
    return FAST_HASHING


async def chat_world(api, admin):
    agent_role = (await api.post("/api/v1/roles", {"name": "Agent", "rights": AGENT}, who=admin)).body["id"]
    maria = await api.add_user(admin, "Maria", role_id=agent_role)
    tom = await api.add_user(admin, "Tom", role_id=agent_role)
    blind = await api.add_user(admin, "Bea", rights=BLIND)
    pipeline = (await api.post("/api/v1/pipelines", {"name": "Inbound", "stages": ["New"]}, who=admin)).body
    channel = (await api.post("/api/v1/channels", {"name": "WhatsApp", "pipeline_id": pipeline["id"],
                                                   "responsible_user_id": maria.user_id}, who=admin)).body
    first = await deliver(api, channel["id"], channel["secret"], message("in-1", text="hello?"))
    assert first.status == 201
    return channel, first.body, maria, tom, blind


async def notes(api, who, type_: str) -> list[dict]:
    return [n for n in (await api.get("/api/v1/notifications", who=who)).body["items"] if n["type"] == type_]


async def test_assign_resolve_reopen_and_notify_on_a_chat(api, admin):
    channel, chat, maria, tom, blind = await chat_world(api, admin)
    cid = chat["conversation_id"]
    # With no assignee, the lead's responsible user hears of the customer's message.
    [note] = await notes(api, maria, "message.received")
    assert note["data"] == {"conversation_id": cid, "message_id": chat["message_id"], "contact_id": chat["contact_id"]}
    assert note["lead_id"] == chat["lead_id"] and await notes(api, tom, "message.received") == []
    watcher = await connect(api, tom)
    outsider = await connect(api, blind)
    r = await api.patch(f"/api/v1/chats/{cid}", {"assignee_id": tom.user_id, "status": "pending"}, who=maria)
    assert r.status == 200 and (r.body["assignee_id"], r.body["status"]) == (tom.user_id, "pending")
    frame = await watcher.until(lambda f: f.get("event") == "conversation.updated")
    assert frame[-1]["data"]["conversation"]["assignee_id"] == tom.user_id
    assert frame[-1]["data"]["before"] == {"assignee_id": None, "status": "open"}
    # Someone who cannot read the conversation can neither be given it nor change it.
    refused = await api.patch(f"/api/v1/chats/{cid}", {"assignee_id": blind.user_id}, who=maria)
    assert refused.status == 422 and refused.body["errors"][0]["path"] == "assignee_id"
    assert (await api.patch(f"/api/v1/chats/{cid}", {"status": "resolved"}, who=blind)).status == 404
    for bad in ({}, {"status": "closed"}, {"status": None}, {"assignee_id": 0}):
        assert (await api.patch(f"/api/v1/chats/{cid}", bad, who=maria)).status == 422, bad
    assert (await api.patch(f"/api/v1/chats/{cid}", {"status": "resolved"}, who=tom)).body["status"] == "resolved"
    # The customer writes again: open again, and the assignee (not the responsible user) is told.
    again = await deliver(api, channel["id"], channel["secret"], message("in-2", text="still there?"))
    conversation = (await api.get("/api/v1/chats", who=tom, params={"assignee": "me"})).body["items"]
    assert [(c["id"], c["status"]) for c in conversation] == [(cid, "open")]
    assert [n["data"]["message_id"] for n in await notes(api, tom, "message.received")] == [again.body["message_id"]]
    assert len(await notes(api, maria, "message.received")) == 1
    log = (await api.get("/api/v1/activity", who=admin, params={"type": "conversation.updated"})).body["items"]
    assert [(e["actor_id"], e["data"]["after"]["status"]) for e in log] == \
        [(None, "open"), (tom.user_id, "resolved"), (maria.user_id, "pending")]
    # The outsider's socket got none of it: its next frame is its own lead.
    lead = await api.post("/api/v1/leads", {"name": "Bea's", "responsible_user_id": blind.user_id}, who=admin)
    frame = await outsider.frame(5)
    assert frame["event"] == "lead.created" and frame["data"]["lead"]["id"] == lead.body["id"]


async def test_filters_and_unread_counts_on_chats(api, admin):
    channel, chat, maria, tom, blind = await chat_world(api, admin)
    other = await deliver(api, channel["id"], channel["secret"], message("in-9", handle="+15559999"))
    cid, other_id = chat["conversation_id"], other.body["conversation_id"]
    await api.patch(f"/api/v1/chats/{cid}", {"assignee_id": tom.user_id}, who=maria)
    await api.patch(f"/api/v1/chats/{other_id}", {"status": "pending"}, who=maria)

    async def ids(who, **params):
        r = await api.get("/api/v1/chats", who=who, params=params)
        assert r.status == 200, r.body
        return [c["id"] for c in r.body["items"]]

    assert await ids(tom, assignee="me") == [cid]
    assert await ids(maria, assignee="me") == []
    assert await ids(maria, assignee="none") == [other_id]
    assert await ids(maria, assignee=str(tom.user_id)) == [cid]
    assert await ids(maria, status="pending") == [other_id]
    assert await ids(maria, status="open", assignee="none") == []
    assert await ids(blind) == [] and await ids(blind, assignee=str(tom.user_id)) == []
    for bad in ({"assignee": "someone"}, {"status": "closed"}, {"assignee": "-1"}):
        assert (await api.get("/api/v1/chats", who=maria, params=bad)).status == 422
    unread = {c["id"]: c["unread_count"] for c in (await api.get("/api/v1/chats", who=tom)).body["items"]}
    assert unread == {cid: 1, other_id: 1}
    await deliver(api, channel["id"], channel["secret"], message("in-3", text="more"))
    mine = (await api.get(f"/api/v1/chats/{cid}/messages", who=tom)).body["items"]
    assert {c["id"]: c["unread_count"] for c in (await api.get("/api/v1/chats", who=tom)).body["items"]}[cid] == 2
    await api.post(f"/api/v1/chats/{cid}/read", {"message_id": mine[0]["id"]}, who=tom)
    counts = {c["id"]: c["unread_count"] for c in (await api.get("/api/v1/chats", who=tom)).body["items"]}
    assert counts == {cid: 0, other_id: 1}
    # Agents' own replies are not unread for anyone.
    await api.post(f"/api/v1/chats/{cid}/messages", {"text": "answer"}, who=maria)
    counts = {c["id"]: c["unread_count"] for c in (await api.get("/api/v1/chats", who=tom)).body["items"]}
    assert counts[cid] == 0


async def test_email_threads_have_the_same_workflow_under_rule_8(api, admin):
    inbox, member, outsider, no_access, contact, lead = await mail_world(api, admin)
    first = await post_mail(api, inbox["id"], inbox["secret"], mail("Quote", "<q1@buyer.io>"))
    thread = first.body["thread_id"]
    path = f"/api/v1/inboxes/{inbox['id']}/threads/{thread}"
    [note] = await notes(api, admin, "email.received")  # the lead's responsible user (the admin made it)
    assert note["data"]["thread_id"] == thread and note["lead_id"] == lead
    for who in (outsider, no_access):
        assert (await api.patch(path, {"status": "resolved"}, who=who)).status == 404
    refused = await api.patch(path, {"assignee_id": outsider.user_id}, who=member)
    assert refused.status == 422
    r = await api.patch(path, {"assignee_id": member.user_id, "status": "resolved"}, who=member)
    assert r.status == 200 and (r.body["assignee_id"], r.body["status"]) == (member.user_id, "resolved")
    assert r.body["unread_count"] == 1 and r.body["read"] is False
    await api.post(f"{path}/read", who=member)
    listed = (await api.get(f"/api/v1/inboxes/{inbox['id']}/emails", who=member,
                            params={"assignee": "me", "status": "resolved"})).body["items"]
    assert [(t["id"], t["read"], t["unread_count"]) for t in listed] == [(thread, True, 0)]
    await post_mail(api, inbox["id"], inbox["secret"], mail("Re: Quote", "<q2@buyer.io>", reply_to="<q1@buyer.io>"))
    [t] = (await api.get(f"/api/v1/inboxes/{inbox['id']}/emails", who=member)).body["items"]
    assert (t["status"], t["read"], t["unread_count"]) == ("open", False, 1)
    assert [n["data"]["email_id"] for n in await notes(api, member, "email.received")] == [t["last_email_id"]]
    assert (await api.get(f"/api/v1/inboxes/{inbox['id']}/emails", who=member,
                          params={"status": "resolved"})).body["items"] == []
    log = (await api.get("/api/v1/activity", who=admin, params={"type": "thread.updated"})).body["items"]
    assert [(e["actor_id"], e["data"]["after"]["status"]) for e in log] == [(None, "open"),
                                                                             (member.user_id, "resolved")]
