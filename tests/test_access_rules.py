"""Each access rule is written once, in ``auth/access.py``, as a predicate (the websocket filter and
single-record checks) and as a plan (list queries, rendered in SQL by ``inbox/store/plans.py``). On
random workspaces the two agree: ``GET /chats`` lists, for every user, exactly the conversations
``chat_visible`` admits (rules 5 and 6: a view right on the lead, a subscription to it, or a view
right on the contact)."""

from __future__ import annotations

import random

import pytest

from conftest import FAST_HASHING

from auth.access import chat_visible
from inbox.actions.access import load_subject
from inbox.actions.chats import chat_facts
from inbox.store import chats as chat_rows

LEVELS = ["D", "M", "G", "A"]


@pytest.fixture
def config_overrides() -> dict:
    return FAST_HASHING


async def _workspace(api, admin, rng: random.Random) -> tuple[list, list[int]]:
    async def ok(method, path, body):
        r = await api.call(method, path, json_body=body, who=admin)
        assert r.status in (200, 201), (path, r.status, r.body)
        return r.body

    pipelines = [await ok("POST", "/api/v1/pipelines", {"name": f"P{i}", "stages": ["A", "B"]}) for i in range(2)]
    stage_ids = [(p["id"], s["id"]) for p in pipelines for s in p["stages"]]
    users = []
    for i in range(6):
        rights = {"leads": {"view": rng.choice(LEVELS)}, "contacts": {"view": rng.choice(LEVELS)},
                  "tasks": {"edit": rng.choice(LEVELS)}}
        if rng.random() < 0.5:  # some stage rights that differ from the pipeline-wide level
            pipeline_id, stage_id = rng.choice(stage_ids)
            rights["stage_rights"] = [{"pipeline_id": pipeline_id, "stage_id": stage_id,
                                       "view": rng.choice(LEVELS)}]
        users.append(await api.add_user(admin, f"U{i}", rights=rights))
    groups = [users[:3], users[3:]]
    for i, members in enumerate(groups):
        await ok("POST", "/api/v1/groups", {"name": f"G{i}", "user_ids": [u.user_id for u in members]})
    owners = [admin.user_id, *(u.user_id for u in users)]
    contacts = [(await ok("POST", "/api/v1/contacts", {"name": f"C{i}", "responsible_user_id": rng.choice(owners)}))
                ["id"] for i in range(12)]
    leads = []
    for i in range(16):
        pipeline_id, stage_id = rng.choice(stage_ids)
        lead = await ok("POST", "/api/v1/leads", {"name": f"L{i}", "pipeline_id": pipeline_id, "stage_id": stage_id,
                                                  "responsible_user_id": rng.choice(owners),
                                                  "contact_ids": [rng.choice(contacts)]})
        leads.append(lead["id"])
        for user in rng.sample(users, rng.choice([0, 0, 1, 2])):
            await ok("POST", f"/api/v1/leads/{lead['id']}/subscribers", {"user_id": user.user_id})
    for _ in range(30):
        lead = rng.choice([None, *leads])
        contact = rng.choice(contacts)
        if lead is not None:
            card = (await api.get(f"/api/v1/leads/{lead}", who=admin)).body
            contact = card["contacts"][0]["id"]
        await ok("POST", "/api/v1/chats", {"contact_id": contact, **({"lead_id": lead} if lead else {})})
    return users, owners


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_the_chat_list_query_and_the_chat_predicate_agree(api, admin, seed):
    rng = random.Random(seed)
    users, _ = await _workspace(api, admin, rng)
    conversations = await chat_rows.list_conversations(api.db, ("1", []), before=None, limit=1000)
    facts = {c["id"]: await chat_facts(api.db, c) for c in conversations}
    seen_some = seen_none = False
    for user in users:
        subject = await load_subject(api.db, user.user_id, is_admin=False)
        expected = {cid for cid, f in facts.items() if chat_visible(subject, f)}
        r = await api.get("/api/v1/chats", who=user, params={"limit": "250"})
        assert r.status == 200
        assert {c["id"] for c in r.body["items"]} == expected, f"user {user.name} (seed {seed})"
        seen_some |= bool(expected)
        seen_none |= len(expected) < len(facts)
    assert seen_some and seen_none, "the workspace should let some users see some chats and hide others"


@pytest.mark.parametrize("seed", [4, 5])
async def test_the_task_list_query_and_the_task_predicate_agree(api, admin, seed):
    """Rule 10, likewise: ``GET /tasks`` (``auth.visibility.tasks_plan`` in SQL) lists exactly the
    tasks ``auth.access.task_visible`` admits from the facts a task event carries."""
    from auth.access import task_visible
    from inbox.actions.records import task_card
    from inbox.store import records as record_rows

    rng = random.Random(seed)
    users, owners = await _workspace(api, admin, rng)
    targets = [("leads", i) for i in (await api.get("/api/v1/leads", who=admin, params={"limit": "100"})).body
               ["items"]] + [("contacts", c) for c in (await api.get("/api/v1/contacts", who=admin)).body["items"]]
    task_ids = []
    for i in range(30):
        body = {"text": f"T{i}", "responsible_user_id": rng.choice(owners)}
        if rng.random() < 0.7:
            entity, record = rng.choice(targets)
            body.update(entity_type=entity, entity_id=record["id"])
        r = await api.post("/api/v1/tasks", body, who=admin)
        assert r.status == 201, r.body
        task_ids.append(r.body["id"])
    cards = {tid: await task_card(api.db, await record_rows.get(api.db, "tasks", tid)) for tid in task_ids}
    seen_some = seen_none = False
    for user in users:
        subject = await load_subject(api.db, user.user_id, is_admin=False)
        expected = {tid for tid, card in cards.items() if task_visible(subject, card)}
        r = await api.get("/api/v1/tasks", who=user, params={"limit": "250"})
        assert r.status == 200, r.body
        assert {t["id"] for t in r.body["items"]} == expected, f"user {user.name} (seed {seed})"
        seen_some |= bool(expected)
        seen_none |= len(expected) < len(cards)
    assert seen_some and seen_none


@pytest.mark.parametrize("seed", [6, 7])
async def test_the_inbox_list_and_the_email_predicate_agree(api, admin, seed):
    """Rule 8 likewise: ``GET /inboxes`` (membership read in SQL) lists exactly the inboxes whose
    emails ``auth.access.email_visible`` admits, and ``GET /inboxes/{id}/emails`` answers 200 for
    those and the 404 of a missing inbox for the others."""
    from auth.access import email_visible
    from inbox.store import inboxes as inbox_rows

    rng = random.Random(seed)
    users = [await api.add_user(admin, f"M{i}", rights={"mail_access": rng.random() < 0.6}) for i in range(6)]
    inboxes = []
    for i in range(5):
        members = [u.user_id for u in users if rng.random() < 0.4]
        r = await api.post("/api/v1/inboxes", {"name": f"I{i}", "user_ids": members}, who=admin)
        assert r.status == 201, r.body
        inboxes.append(r.body["id"])
    seen_some = seen_none = False
    for user in users:
        subject = await load_subject(api.db, user.user_id, is_admin=False)
        expected = {i for i in inboxes if email_visible(subject, await inbox_rows.members_of(api.db, i))}
        listed = {i["id"] for i in (await api.get("/api/v1/inboxes", who=user)).body["items"]}
        assert listed == expected, f"user {user.name} (seed {seed})"
        for inbox_id in inboxes:
            status = (await api.get(f"/api/v1/inboxes/{inbox_id}/emails", who=user)).status
            assert status == (200 if inbox_id in expected else 404), (user.name, inbox_id)
        seen_some |= bool(expected)
        seen_none |= len(expected) < len(inboxes)
    assert seen_some and seen_none
