"""Who may open a chat (SPEC rules 5, 6 and 14; issue 13 points 5 and 12). Every rule is walked with the
user who must not pass it, and every refusal that could tell an id exists is compared, body for body,
with the refusal for an id that does not."""

from __future__ import annotations

import pytest

from conftest import FAST_HASHING

MISSING = 999_999
AGENT = {"leads": {"add": "A", "view": "M", "edit": "M"}, "contacts": {"add": "A", "view": "A"},
         "mail_access": True, "files_access": True}
OWN_ONLY = {"leads": {"add": "A", "view": "M", "edit": "M"}, "contacts": {"add": "A", "view": "M"},
            "mail_access": True, "files_access": True}


@pytest.fixture
def config_overrides() -> dict:
    return FAST_HASHING


def same_refusal(a, b) -> None:
    """Rule 14: the two answers differ in nothing but the request they name."""
    assert a.status == b.status and a.content_type == b.content_type == "application/problem+json", (a.body, b.body)
    assert {k: v for k, v in a.body.items() if k != "instance"} == {k: v for k, v in b.body.items() if k != "instance"}


async def created(api, who, path, body) -> dict:
    r = await api.post(path, body, who=who)
    assert r.status == 201, (path, r.status, r.body)
    return r.body


async def world(api, admin):
    """Ann (contacts A, her own leads), Ben (the same role) and Cid (only his own contacts and leads)."""
    stage = (await created(api, admin, "/api/v1/pipelines", {"name": "Sales", "stages": ["In"]}))["stages"][0]["id"]
    agent = (await created(api, admin, "/api/v1/roles", {"name": "Agent", "rights": AGENT}))["id"]
    own = (await created(api, admin, "/api/v1/roles", {"name": "Own only", "rights": OWN_ONLY}))["id"]
    ann = await api.add_user(admin, "Ann", role_id=agent)
    ben = await api.add_user(admin, "Ben", role_id=agent)
    cid = await api.add_user(admin, "Cid", role_id=own)

    async def contact(owner) -> int:
        return (await created(api, admin, "/api/v1/contacts", {"name": f"of {owner.name}",
                                                               "responsible_user_id": owner.user_id}))["id"]

    async def lead(owner, contact_ids=()) -> int:
        return (await created(api, admin, "/api/v1/leads", {"name": f"deal of {owner.name}", "stage_id": stage,
                                                            "responsible_user_id": owner.user_id,
                                                            "contact_ids": list(contact_ids)}))["id"]

    return ann, ben, cid, contact, lead


async def counts(api) -> tuple:
    return (await api.rows("SELECT (SELECT count(*) FROM conversations), (SELECT count(*) FROM messages),"
                           " (SELECT count(*) FROM events), (SELECT count(*) FROM media_links)"))[0]


# --- point 5 and 12: opening a chat ---

async def test_a_chat_on_a_lead_opens_only_for_who_may_read_that_leads_chat(api, admin):
    ann, ben, cid, contact, lead = await world(api, admin)
    bens_contact = await contact(ben)                 # Ann sees it (contacts A), Cid does not (contacts M)
    bens_lead = await lead(ben, [bens_contact])       # neither Ann nor Cid sees it (leads M)
    before = await counts(api)
    # Ann sees the contact but not the lead: an invisible lead is a missing lead (rule 14).
    hidden = await api.post("/api/v1/chats", {"contact_id": bens_contact, "lead_id": bens_lead}, who=ann)
    missing = await api.post("/api/v1/chats", {"contact_id": bens_contact, "lead_id": MISSING}, who=ann)
    assert hidden.status == 404
    same_refusal(hidden, missing)
    assert await counts(api) == before
    # Ben, who may view the lead, may open it, and so may Ann once she is subscribed to it (rule 5).
    assert (await api.post("/api/v1/chats", {"contact_id": bens_contact, "lead_id": bens_lead}, who=ben)).status == 201
    await api.post(f"/api/v1/leads/{bens_lead}/subscribers", {"user_id": ann.user_id}, who=admin)
    chat = await created(api, ann, "/api/v1/chats", {"contact_id": bens_contact, "lead_id": bens_lead})
    assert (await api.post(f"/api/v1/chats/{chat['id']}/messages", {"text": "hi"}, who=ann)).status == 201
    # Cid, subscribed to nothing, still gets the missing lead's answer for it.
    same_refusal(await api.post("/api/v1/chats", {"contact_id": bens_contact, "lead_id": bens_lead}, who=cid),
                 await api.post("/api/v1/chats", {"contact_id": bens_contact, "lead_id": MISSING}, who=cid))


async def test_an_invisible_contact_is_refused_like_a_missing_one(api, admin):
    ann, ben, cid, contact, lead = await world(api, admin)
    bens_contact = await contact(ben)
    cids_lead = await lead(cid)
    before = await counts(api)
    for body in ({"contact_id": bens_contact}, {"contact_id": bens_contact, "lead_id": cids_lead}):
        hidden = await api.post("/api/v1/chats", body, who=cid)
        assert hidden.status == 404, body
        same_refusal(hidden, await api.post("/api/v1/chats", {**body, "contact_id": MISSING}, who=cid))
    assert await counts(api) == before
    # Ann may view that contact, so she may open a chat with it.
    assert (await api.post("/api/v1/chats", {"contact_id": bens_contact}, who=ann)).status == 201
    # A contact on a lead Cid may see shows on its card (rule 6), so he may open the lead's chat with it,
    # and he reads it afterwards; the contact still shows as name and avatar only.
    cids_deal = await lead(cid, [bens_contact])
    chat = await created(api, cid, "/api/v1/chats", {"contact_id": bens_contact, "lead_id": cids_deal})
    assert chat["contact"] == {"name": "of Ben", "avatar": None, "restricted": True}
    assert (await api.get(f"/api/v1/chats/{chat['id']}/messages", who=cid)).status == 200
