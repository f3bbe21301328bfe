"""Chat-channel webhooks and media (SPEC sections 5 and 6, rule 9, SECURITY-CHECKLIST 26-29)."""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import zlib

import pytest

from conftest import FAST_HASHING

from auth.signing import sign
from inbox.keys import MEDIA

SMALL = 64 * 1024


@pytest.fixture
def config_overrides() -> dict:
    return {**FAST_HASHING, "media_max_bytes": SMALL}


def png(width: int = 2, height: int = 2) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = b"".join(b"\x00" + b"\x00\x00\x00" * width for _ in range(min(height, 4)))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


async def make_channel(api, admin) -> tuple[dict, str]:
    await api.post("/api/v1/pipelines", {"name": "Inbound", "stages": ["New", "Talking"]}, who=admin)
    pipelines = (await api.get("/api/v1/pipelines", who=admin)).body["items"]
    r = await api.post("/api/v1/channels", {"name": "WhatsApp", "pipeline_id": pipelines[-1]["id"]}, who=admin)
    assert r.status == 201 and r.body["secret"].startswith("whsec_")
    return r.body, r.body["secret"]


async def deliver(api, channel_id, secret, payload, *, ts: int | None = None, signature: str | None = None,
                  raw: bytes | None = None):
    body = raw if raw is not None else json.dumps(payload).encode()
    stamp = str(ts if ts is not None else int(api.clock.now))
    headers = {"X-Inbox-Timestamp": stamp, "Content-Type": "application/json",
               "X-Inbox-Signature": signature or sign(secret, stamp, body)}
    return await api.call("POST", f"/hooks/chat/{channel_id}", data=body, headers=headers)


async def counts(api) -> tuple:
    return (await api.rows("SELECT (SELECT count(*) FROM contacts), (SELECT count(*) FROM leads),"
                           " (SELECT count(*) FROM messages), (SELECT count(*) FROM media),"
                           " (SELECT count(*) FROM inbound_ids)"))[0]


def message(pid: str, handle: str = "+15550001", text: str = "hi", **extra) -> dict:
    return {"id": pid, "from": {"handle": handle, "name": "Jane Doe"}, "text": text, **extra}


async def test_unknown_sender_creates_contact_and_incoming_lead_then_continues(api, admin):
    channel, secret = await make_channel(api, admin)
    r = await deliver(api, channel["id"], secret, message("p1"))
    assert r.status == 201 and r.body["duplicate"] is False
    first = r.body
    contact = await api.get(f"/api/v1/contacts/{first['contact_id']}", who=admin)
    assert contact.body["name"] == "Jane Doe" and contact.body["phones"] == ["+15550001"]
    lead = await api.get(f"/api/v1/leads/{first['lead_id']}", who=admin)
    stages = (await api.get(f"/api/v1/pipelines/{channel['pipeline_id']}/stages", who=admin)).body["items"]
    assert lead.body["stage_id"] == stages[0]["id"] and lead.body["contacts"][0]["name"] == "Jane Doe"
    r = await deliver(api, channel["id"], secret, message("p2", text="again"))
    assert r.status == 201
    assert (r.body["conversation_id"], r.body["contact_id"], r.body["lead_id"]) == \
        (first["conversation_id"], first["contact_id"], first["lead_id"])
    msgs = await api.get(f"/api/v1/chats/{first['conversation_id']}/messages", who=admin)
    assert [(m["author_type"], m["text"]) for m in msgs.body["items"]] == [("contact", "again"), ("contact", "hi")]
    assert (await counts(api))[:2] == (1, 1)
    listed = await api.get("/api/v1/channels", who=admin)
    assert "secret" not in listed.text and listed.body["items"][0]["webhook"] == f"/hooks/chat/{channel['id']}"


async def test_retries_and_concurrent_duplicates_have_one_effect(api, admin):
    """Checklist 27: the same provider id twice, or at once: one message, every answer a 2xx."""
    channel, secret = await make_channel(api, admin)
    r1 = await deliver(api, channel["id"], secret, message("dup"))
    r2 = await deliver(api, channel["id"], secret, message("dup"))
    assert (r1.status, r2.status) == (201, 200) and r2.body["duplicate"] is True
    assert r2.body["message_id"] == r1.body["message_id"]
    replies = await asyncio.gather(*(deliver(api, channel["id"], secret, message("burst", text="x"))
                                     for _ in range(8)))
    # exactly one of the burst creates the message; every other answer is the duplicate's 200
    assert sorted(r.status for r in replies) == [200] * 7 + [201], [r.status for r in replies]
    assert len({r.body["message_id"] for r in replies}) == 1
    assert (await counts(api))[2] == 2


async def test_bad_deliveries_are_refused_and_change_nothing(api, admin):
    channel, secret = await make_channel(api, admin)
    before = await counts(api)
    now = int(api.clock.now)
    body = json.dumps(message("x")).encode()
    cases = [
        (await deliver(api, channel["id"], secret, message("x"), signature="sha256=" + "0" * 64), 401),
        (await api.call("POST", f"/hooks/chat/{channel['id']}", data=body), 401),  # no signature
        (await deliver(api, channel["id"], "whsec_wrong", message("x")), 401),
        (await deliver(api, channel["id"], secret, message("x"), ts=now - 301), 401),
        (await deliver(api, channel["id"], secret, message("x"), ts=now + 301), 401),
        (await deliver(api, channel["id"], secret, None, raw=b"{not json"), 422),
        (await deliver(api, channel["id"], secret, {"id": "x", "text": "no sender"}), 422),
        (await deliver(api, channel["id"], secret, message("x", attachments=[{"name": "a.png", "data": "%%%"}])), 422),
        (await deliver(api, 9999, secret, message("x")), 404),
        (await deliver(api, channel["id"], secret, None, raw=b"x" * (SMALL * 3)), 413),
    ]
    for reply, status in cases:
        assert reply.status == status and reply.content_type == "application/problem+json", (reply.status, reply.body)
    assert await counts(api) == before
    # A body within tolerance either side is fine.
    assert (await deliver(api, channel["id"], secret, message("ok"), ts=now - 299)).status == 201


async def test_rotation_keeps_both_secrets_for_a_while(api, admin):
    channel, old = await make_channel(api, admin)
    r = await api.post(f"/api/v1/channels/{channel['id']}/rotate", who=admin)
    new = r.body["secret"]
    assert new != old
    assert (await deliver(api, channel["id"], new, message("a"))).status == 201
    assert (await deliver(api, channel["id"], old, message("b"))).status == 201  # checklist 26
    api.clock.advance(24 * 3600 + 1)
    assert (await deliver(api, channel["id"], old, message("c"))).status == 401
    assert (await deliver(api, channel["id"], new, message("d"))).status == 201
    logged = await api.rows("SELECT type FROM activity WHERE object_type = 'channel' ORDER BY id")
    assert [t for (t,) in logged] == ["channel.created", "channel.secret_rotated"]
    assert old not in str(await api.rows("SELECT data FROM activity"))
    again = await api.persona(admin.email, admin.password)  # a day later the old session has idled out
    assert (await api.delete(f"/api/v1/channels/{channel['id']}", who=again)).status == 409


async def test_attachments_are_stored_and_hidden_without_files_access(api, admin):
    channel, secret = await make_channel(api, admin)
    files = [{"name": "photo.png", "data": base64.b64encode(png()).decode()},
             {"name": "../../etc/passwd.pdf", "data": base64.b64encode(PDF).decode()}]
    r = await deliver(api, channel["id"], secret, message("m1", attachments=files))
    assert r.status == 201
    conversation = r.body["conversation_id"]
    msgs = await api.get(f"/api/v1/chats/{conversation}/messages", who=admin)
    photo, doc = msgs.body["items"][0]["attachments"]
    assert photo["type"] == "image/png" and doc["type"] == "application/pdf"
    stored = await api.rows("SELECT sha256 FROM media")
    media_root = api.app[MEDIA].root
    assert all(".." not in str(p) and "passwd" not in str(p) for p in media_root.rglob("*"))
    assert len(list(p for p in media_root.rglob("*") if p.is_file())) == len(stored)
    # Inline for a safe image, attachment otherwise; nosniff on both (checklist 29).
    image = await api.get(f"/api/v1/media/{photo['media_id']}", who=admin)
    assert image.status == 200 and image.headers["Content-Type"] == "image/png"
    assert image.headers["Content-Disposition"].startswith("inline")
    assert image.headers["X-Content-Type-Options"] == "nosniff"
    pdf = await api.get(f"/api/v1/media/{doc['media_id']}", who=admin)
    assert pdf.headers["Content-Disposition"] == \
        "attachment; filename=\".._.._etc_passwd.pdf\"; filename*=UTF-8''..%2F..%2Fetc%2Fpasswd.pdf"
    # Rule 9: an agent who reaches the chat without files access sees types only, and cannot download.
    role = await api.post("/api/v1/roles", {"name": "No files", "rights": {"contacts": {"view": "A"}}}, who=admin)
    bob = await api.add_user(admin, "Bob", role_id=role.body["id"])
    seen = await api.get(f"/api/v1/chats/{conversation}/messages", who=bob)
    assert seen.body["items"][0]["attachments"] == [{"type": "image/png", "hidden": True},
                                                    {"type": "application/pdf", "hidden": True}]
    assert "photo.png" not in seen.text and str(photo["media_id"]) not in json.dumps(seen.body["items"][0]["attachments"])
    assert (await api.get(f"/api/v1/media/{photo['media_id']}", who=bob)).status == 403
    # With files access he may; a user who cannot reach the chat may not, and for her it does not exist.
    await api.patch(f"/api/v1/roles/{role.body['id']}", {"rights": {"contacts": {"view": "A"}, "files_access": True}},
                    who=admin)
    assert (await api.get(f"/api/v1/media/{photo['media_id']}", who=bob)).status == 200
    eve = await api.add_user(admin, "Eve", rights={"files_access": True})
    assert (await api.get(f"/api/v1/media/{photo['media_id']}", who=eve)).status == 404


async def test_uploads_check_size_type_and_pixels(api, admin):
    r = await api.call("POST", "/api/v1/media?name=plan.png", data=png(), who=admin)
    assert r.status == 201 and r.body["type"] == "image/png" and r.body["name"] == "plan.png"
    assert (await api.call("POST", "/api/v1/media?name=x.png", data=PDF, who=admin)).status == 415
    assert (await api.call("POST", "/api/v1/media?name=big.png", data=png(20_000, 20_000), who=admin)).status == 422
    assert (await api.call("POST", "/api/v1/media?name=huge.bin", data=b"\x00" * (SMALL + 1), who=admin)).status == 413
    assert (await api.call("POST", "/api/v1/media?name=e.txt", data=b"", who=admin)).status == 422
    assert (await api.rows("SELECT count(*) FROM media"))[0][0] == 1
    bob = await api.add_user(admin, "Bob")
    assert (await api.call("POST", "/api/v1/media?name=a.txt", data=b"hello", who=bob)).status == 403


async def test_signed_links_expire_bind_the_file_and_follow_access(api, admin):
    """Checklist 29: a signed URL fails after max_age, for another file id, and after access is lost."""
    bob = await api.add_user(admin, "Bob", rights={"files_access": True})
    mine = (await api.call("POST", "/api/v1/media?name=a.png", data=png(), who=bob)).body["id"]
    other = (await api.call("POST", "/api/v1/media?name=b.pdf", data=PDF, who=admin)).body["id"]
    assert (await api.post(f"/api/v1/media/{other}/link", who=bob)).status == 404  # as if it did not exist
    link = (await api.post(f"/api/v1/media/{mine}/link", who=bob)).body["url"]
    assert (await api.get(link)).status == 200  # no header needed
    assert (await api.get(link.replace(f"/media/{mine}/", f"/media/{other}/"))).status == 403
    assert (await api.get(link.replace("sig=", "sig=0"))).status == 403
    await api.patch(f"/api/v1/users/{bob.user_id}", {"rights": {"files_access": False}}, who=admin)
    assert (await api.get(link)).status == 403
    await api.patch(f"/api/v1/users/{bob.user_id}", {"rights": {"files_access": True}}, who=admin)
    assert (await api.get(link)).status == 200
    api.clock.advance(301)
    assert (await api.get(link)).status == 403


async def test_incoming_messages_go_out_through_the_hub(api, admin):
    from test_realtime import OPEN, connect

    channel, secret = await make_channel(api, admin)
    client = await connect(api, admin)
    try:
        r = await deliver(api, channel["id"], secret, message("live-1", text="over the hook"))
        assert r.status == 201
        frames = await client.until(lambda f: f.get("event") == "message.created")
        assert any(f.get("event") == "lead.created" and f["data"]["lead"]["id"] == r.body["lead_id"] for f in frames)
        assert frames[-1]["data"]["message"]["text"] == "over the hook"
        assert frames[-1]["data"]["message"]["author_type"] == "contact"
    finally:
        while OPEN:
            ws = OPEN.pop()
            ws.transport.abort()
            await ws.wait_closed()


async def test_delivery_events_carry_what_the_general_readers_would_build(api, admin):
    """A delivery builds its events from rows it already has (store/chats.on_channel, INSERT ...
    RETURNING); they must equal what chat_facts and the lead-event payload read afresh."""
    from inbox.actions.chats import chat_facts
    from inbox.actions.records import _lead_payload
    from inbox.store import chats as chat_rows

    channel, secret = await make_channel(api, admin)
    first = (await deliver(api, channel["id"], secret, message("p1"))).body
    bob = await api.add_user(admin, "Bob")
    assert (await api.post(f"/api/v1/leads/{first['lead_id']}/subscribers", {"user_id": bob.user_id},
                           who=admin)).status == 200
    assert (await deliver(api, channel["id"], secret, message("p2"))).status == 201
    events = [(t, json.loads(d)) for t, d in await api.rows(
        "SELECT type, data FROM events WHERE type IN ('lead.created', 'message.created') ORDER BY id")]
    assert [t for t, _ in events] == ["lead.created", "message.created", "message.created"]
    conversation = await chat_rows.get_conversation(api.db, first["conversation_id"])
    facts = await chat_facts(api.db, conversation)
    assert facts["subscribers"] == [bob.user_id]
    assert events[2][1] == json.loads(json.dumps({**facts, "message": await chat_rows.get_message(
        api.db, events[2][1]["message"]["id"])}))
    created = events[0][1]

    async def payload_now(tx):  # the lead as it was: no subscriber yet
        out = await _lead_payload(tx, first["lead_id"])
        out["subscribers"] = []
        return out
    expected = await api.db.write(payload_now)
    assert {k: created[k] for k in expected} == json.loads(json.dumps(expected))
    assert (created["before"], created["changed"], created["actor_id"]) == (None, [], None)
    first_facts = events[1][1]
    assert first_facts["subscribers"] == [] and first_facts["lead"] == facts["lead"]
    assert first_facts["contact"] == facts["contact"] and first_facts["conversation"] == facts["conversation"]


async def test_removing_a_channels_responsible_user_moves_the_channel_with_their_records(api, admin):
    """A channel's responsible user owns what it creates; removing them is like removing any owner:
    refused with the count unless reassign_to is given, and then the channel moves in the same step."""
    bob = await api.add_user(admin, "Bob")
    cid = await api.add_user(admin, "Cid")
    await api.post("/api/v1/pipelines", {"name": "Inbound", "stages": ["New"]}, who=admin)
    pipeline = (await api.get("/api/v1/pipelines", who=admin)).body["items"][-1]["id"]
    r = await api.post("/api/v1/channels", {"name": "Telegram", "pipeline_id": pipeline,
                                            "responsible_user_id": bob.user_id}, who=admin)
    assert r.status == 201, r.body
    channel = r.body["id"]

    refused = await api.delete(f"/api/v1/users/{bob.user_id}", who=admin)
    assert refused.status == 409 and refused.body["owned"]["channels"] == 1, refused.body
    assert await api.rows("SELECT responsible_user_id FROM channels WHERE id = ?", (channel,)) == [(bob.user_id,)]

    moved = await api.delete(f"/api/v1/users/{bob.user_id}", who=admin, params={"reassign_to": cid.user_id})
    assert moved.status == 204, moved.body
    assert await api.rows("SELECT responsible_user_id FROM channels WHERE id = ?", (channel,)) == [(cid.user_id,)]
    # and the channel still creates what it creates, owned by the new responsible user
    secret = r.body["secret"]
    assert (await deliver(api, channel, secret, message("p-after-move", "+15550042"))).status == 201
    assert await api.rows("SELECT responsible_user_id FROM contacts WHERE id = (SELECT max(id) FROM contacts)") == [
        (cid.user_id,)]


async def test_a_channel_needs_an_existing_active_responsible_user(api, admin, caplog):
    """The channel's contacts and leads are its responsible user's: an unknown one was a foreign-key
    failure (a 409 from the safety net, logged); a disabled one would own records nobody works."""
    dora = await api.add_user(admin, "Dora")
    assert (await api.patch(f"/api/v1/users/{dora.user_id}", {"is_active": False}, who=admin)).status == 200
    await api.post("/api/v1/pipelines", {"name": "Inbound", "stages": ["New"]}, who=admin)
    pipeline = (await api.get("/api/v1/pipelines", who=admin)).body["items"][-1]["id"]
    for user_id in (99999, dora.user_id):
        r = await api.post("/api/v1/channels", {"name": "Telegram", "pipeline_id": pipeline,
                                                "responsible_user_id": user_id}, who=admin)
        assert r.status == 422 and r.content_type == "application/problem+json", r.body
        assert r.body["errors"][0]["path"] == "responsible_user_id" and str(user_id) in r.body["detail"]
    assert await api.rows("SELECT count(*) FROM channels") == [(0,)]
    assert not [rec for rec in caplog.records if "without an explicit check" in rec.getMessage()]


async def test_a_pipeline_a_channel_feeds_cannot_be_deleted_from_under_it(api, admin):
    channel, _ = await make_channel(api, admin)
    r = await api.delete(f"/api/v1/pipelines/{channel['pipeline_id']}", who=admin)
    assert r.status == 409 and r.body["channels"] == 1 and "chat channel" in r.body["detail"], r.body
    assert r.headers["Content-Type"].startswith("application/problem+json")
    assert await api.rows("SELECT count(*) FROM pipelines WHERE id = ?", (channel["pipeline_id"],)) == [(1,)]
    assert (await api.delete(f"/api/v1/channels/{channel['id']}", who=admin)).status == 204
    assert (await api.delete(f"/api/v1/pipelines/{channel['pipeline_id']}", who=admin)).status == 204
