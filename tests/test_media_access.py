"""Who may attach a file to a chat reply and download it (SPEC rules 9 and 14; issue 13 points 6 and 12),
each with the user who must not; every refusal that could tell a file exists is compared, body for
body, with the refusal for an id that does not."""

from __future__ import annotations

import pytest

from conftest import FAST_HASHING
from test_chat_open import AGENT, MISSING, OWN_ONLY, counts, created, same_refusal, world
from test_email import mail, post_mail
from test_ingest import PDF, png


@pytest.fixture
def config_overrides() -> dict:
    return FAST_HASHING


async def inbox_email_file(api, admin, members) -> int:
    """The id of a file attached to an email in a shared inbox with these members."""
    r = await api.post("/api/v1/inboxes", {"name": "Sales", "user_ids": [m.user_id for m in members]}, who=admin)
    assert r.status == 201, r.body
    raw = mail("Files", "<f1@buyer.io>", files=[("offer.pdf", PDF, "application", "pdf")])
    delivered = await post_mail(api, r.body["id"], r.body["secret"], raw)
    assert delivered.status == 201, delivered.body
    return (await api.rows("SELECT media_id FROM media_links WHERE email_id = ?", (delivered.body["email_id"],)))[0][0]


async def test_a_reply_attaches_only_files_its_author_may_download(api, admin):
    ann, ben, cid, contact, lead = await world(api, admin)
    chat = (await created(api, ann, "/api/v1/chats", {"contact_id": await contact(ann)}))["id"]
    admins_file = (await api.call("POST", "/api/v1/media?name=secret-plan.pdf", data=PDF, who=admin)).body["id"]
    mail_file = await inbox_email_file(api, admin, [ben])                 # Ann is not in that inbox
    before = await counts(api)
    refusals = {}
    for name, ids in (("admin's", [admins_file]), ("inbox's", [mail_file]), ("missing", [MISSING]),
                      ("mixed", [MISSING, admins_file])):
        r = await api.post(f"/api/v1/chats/{chat}/messages", {"text": "look", "attachments": ids}, who=ann)
        assert r.status == 422, (name, r.body)
        assert "secret-plan" not in r.text and "offer.pdf" not in r.text and '"size"' not in r.text
        refusals[name] = r
    for name in ("admin's", "inbox's"):
        same_refusal(refusals[name], refusals["missing"])
    assert await counts(api) == before
    # What she may download she may attach: her upload, and the inbox's file once she is a member.
    own = (await api.call("POST", "/api/v1/media?name=mine.png", data=png(), who=ann)).body["id"]
    ok = await api.post(f"/api/v1/chats/{chat}/messages", {"text": "mine", "attachments": [own]}, who=ann)
    assert ok.status == 201 and ok.body["attachments"][0]["name"] == "mine.png"
    inbox = (await api.rows("SELECT inbox_id FROM inbox_members"))[0][0]
    r = await api.put(f"/api/v1/inboxes/{inbox}/members", {"user_ids": [ann.user_id, ben.user_id]}, who=admin)
    assert r.status == 200, r.body
    assert (await api.post(f"/api/v1/chats/{chat}/messages", {"attachments": [mail_file]}, who=ann)).status == 201


async def test_an_attached_file_belongs_to_the_chat_for_its_readers(api, admin):
    ann, ben, cid, contact, lead = await world(api, admin)
    chat = (await created(api, cid, "/api/v1/chats", {"contact_id": await contact(cid)}))["id"]
    own = (await api.call("POST", "/api/v1/media?name=quote.pdf", data=PDF, who=cid)).body["id"]
    assert (await api.get(f"/api/v1/media/{own}", who=ann)).status == 404   # not in any chat yet
    r = await api.post(f"/api/v1/chats/{chat}/messages", {"text": "quote", "attachments": [own]}, who=cid)
    assert r.status == 201, r.body
    # Ann reads the chat through the contact (contacts A), so she may download what it carries; Ben the
    # same once he has files access; without it he sees the type only and gets 403 (rule 9).
    assert (await api.get(f"/api/v1/media/{own}", who=ann)).status == 200
    assert (await api.post(f"/api/v1/media/{own}/link", who=ann)).status == 200
    await api.patch(f"/api/v1/users/{ben.user_id}", {"rights": {**AGENT, "files_access": False}}, who=admin)
    assert (await api.get(f"/api/v1/chats/{chat}/messages", who=ben)).body["items"][0]["attachments"] == \
        [{"type": "application/pdf", "hidden": True}]
    assert (await api.get(f"/api/v1/media/{own}", who=ben)).status == 403
    # Someone with files access who may not read the chat: as if the file did not exist.
    dan = await api.add_user(admin, "Dan", rights={**OWN_ONLY})
    assert (await api.get(f"/api/v1/chats/{chat}/messages", who=dan)).status == 404
    same_refusal(await api.get(f"/api/v1/media/{own}", who=dan), await api.get(f"/api/v1/media/{MISSING}", who=dan))


async def test_attaching_needs_files_access_whatever_the_id(api, admin):
    ann, ben, cid, contact, lead = await world(api, admin)
    chat = (await created(api, ann, "/api/v1/chats", {"contact_id": await contact(ann)}))["id"]
    own = (await api.call("POST", "/api/v1/media?name=mine.png", data=png(), who=ann)).body["id"]
    await api.patch(f"/api/v1/users/{ann.user_id}", {"rights": {**AGENT, "files_access": False}}, who=admin)
    before = await counts(api)
    # Rule 9: without the flag every attachment is refused, so the 403 says nothing about the id.
    mine = await api.post(f"/api/v1/chats/{chat}/messages", {"text": "x", "attachments": [own]}, who=ann)
    assert mine.status == 403
    same_refusal(mine, await api.post(f"/api/v1/chats/{chat}/messages", {"text": "x", "attachments": [MISSING]},
                                      who=ann))
    assert await counts(api) == before


# --- point 12: downloads ---

async def test_a_file_out_of_reach_answers_like_a_missing_one(api, admin):
    ann, ben, cid, contact, lead = await world(api, admin)
    admins_file = (await api.call("POST", "/api/v1/media?name=plan.pdf", data=PDF, who=admin)).body["id"]
    mail_file = await inbox_email_file(api, admin, [ben])
    for path in ("/api/v1/media/{}", "/api/v1/media/{}/link"):
        call = api.get if path.endswith("}") else api.post
        missing = await call(path.format(MISSING), who=ann)
        assert missing.status == 404
        for file in (admins_file, mail_file):
            same_refusal(await call(path.format(file), who=ann), missing)
        assert (await call(path.format(mail_file), who=ben)).status == 200   # the member may
    # Without files access the answer is 403 for every id, existing or not: it is about the user.
    await api.patch(f"/api/v1/users/{ben.user_id}", {"rights": {**AGENT, "files_access": False}}, who=admin)
    same_refusal(await api.get(f"/api/v1/media/{mail_file}", who=ben), await api.get(f"/api/v1/media/{MISSING}",
                                                                                   who=ben))
    assert (await api.get(f"/api/v1/media/{MISSING}", who=ben)).status == 403
    assert (await api.get(f"/api/v1/media/{MISSING}", who=admin)).status == 404
