"""Agents' replies on chat channels reach the provider (docs/outbound.md): a real provider server
checks the Standard Webhooks signature and answers from a script; retries, give-up, pause and resume,
status callbacks, the honest retry, attachments and who may send, each read from what the provider
received and what the API and websockets show."""

from __future__ import annotations

import asyncio
import time

import pytest
from provider import Answer, Provider, signed_status

from conftest import FAST_HASHING, Clock
from test_gates import parallel
from test_ingest import deliver, make_channel, message, png
from test_realtime import close_clients, connect  # noqa: F401  (the fixture closes the test's sockets)


class RealClock(Clock):
    """The server's clock follows real time here: retries really wait for their backoff."""

    @property  # type: ignore[override]
    def now(self) -> float:
        return time.time()

    @now.setter
    def now(self, value: float) -> None:
        pass


@pytest.fixture
def clock() -> Clock:
    return RealClock()


@pytest.fixture
def config_overrides() -> dict:
    return {**FAST_HASHING, "outbound_allow_private": True, "outbound_retry_base_seconds": 0.05,
            "outbound_retry_max_seconds": 0.2, "outbound_timeout_seconds": 1.0, "outbound_pause_after": 50}


@pytest.fixture
async def provider():
    p = await Provider().start()
    yield p
    await p.stop()


async def wired(api, admin, provider: Provider, handle: str = "+15550001") -> dict:
    """A channel pointing at the provider, and a conversation a customer started on it."""
    channel, secret = await make_channel(api, admin)
    provider.secret = secret
    r = await api.patch(f"/api/v1/channels/{channel['id']}", {"outbound_url": provider.url}, who=admin)
    assert r.status == 200 and r.body["outbound_url"] == provider.url, r.body
    r = await deliver(api, channel["id"], secret, message("in-1", handle=handle, text="where is my order?"))
    assert r.status == 201, r.body
    return {"channel": channel, "secret": secret, **r.body}


async def reply(api, who, conversation_id: int, text: str = "on its way", **extra):
    return await api.post(f"/api/v1/chats/{conversation_id}/messages", {"text": text, **extra}, who=who)


async def message_now(api, who, conversation_id: int, message_id: int) -> dict:
    r = await api.get(f"/api/v1/chats/{conversation_id}/messages", who=who)
    return next(m for m in r.body["items"] if m["id"] == message_id)


async def settled(api, who, conversation_id: int, message_id: int, status: str, timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        found = await message_now(api, who, conversation_id, message_id)
        if found["status"] == status:
            return found
        assert time.monotonic() < deadline, f"still {found} after {timeout} s"
        await asyncio.sleep(0.02)


async def outbox_rows(api) -> int:
    return (await api.rows("SELECT count(*) FROM outbox"))[0][0]


async def test_reply_is_queued_signed_retried_on_503_and_sent_with_one_webhook_id(api, admin, provider):
    chat = await wired(api, admin, provider)
    provider.script = [Answer(503), Answer(503), Answer(200, {"id": "prov-77"})]
    r = await reply(api, admin, chat["conversation_id"])
    assert r.status == 201 and r.body["status"] == "queued" and r.body["attempts"] == 0
    got = await provider.wait_for(3)
    assert all(g.verified for g in got), "every attempt verifies with the channel secret"
    assert len({g.webhook_id for g in got}) == 1 and got[0].webhook_id.startswith("msg_")
    body = got[0].json
    assert body["version"] == 1 and body["type"] == "message.outgoing"
    assert body["message"]["id"] == r.body["id"] and body["message"]["text"] == "on its way"
    assert body["to"] == {"handle": "+15550001", "contact_id": chat["contact_id"]}
    assert body["conversation"] == {"id": chat["conversation_id"], "lead_id": chat["lead_id"]}
    assert body["in_reply_to"] == "in-1" and body["channel_id"] == chat["channel"]["id"]
    assert body["author"] == {"user_id": admin.user_id, "name": "Ada"}
    sent = await settled(api, admin, chat["conversation_id"], r.body["id"], "sent")
    assert (sent["attempts"], sent["last_code"], sent["last_error"]) == (3, 200, None)
    assert len(provider.received) == 3 and await outbox_rows(api) == 0
    # The provider's own id came back with the 2xx: its status callbacks may use it.
    assert (await api.rows("SELECT provider_id FROM messages WHERE id = ?", (r.body["id"],)))[0][0] == "prov-77"


async def test_a_4xx_fails_at_once_with_the_reason_and_an_honest_retry_sends_again(api, admin, provider):
    chat = await wired(api, admin, provider)
    provider.script = [Answer(400, {"error": "unknown recipient +15550001"})]
    r = await reply(api, admin, chat["conversation_id"])
    failed = await settled(api, admin, chat["conversation_id"], r.body["id"], "failed")
    assert failed["attempts"] == 1 and failed["last_code"] == 400
    assert "unknown recipient" in failed["last_error"]
    assert len(provider.received) == 1 and await outbox_rows(api) == 0
    again = await api.post(f"/api/v1/chats/{chat['conversation_id']}/messages/{r.body['id']}/retry", who=admin)
    assert again.status == 200 and again.body["status"] == "queued"
    got = await provider.wait_for(2)
    assert got[1].webhook_id == got[0].webhook_id and got[1].verified
    sent = await settled(api, admin, chat["conversation_id"], r.body["id"], "sent")
    assert sent["attempts"] == 2
    # Only a failed message can be retried: a sent one is not sent twice.
    twice = await api.post(f"/api/v1/chats/{chat['conversation_id']}/messages/{r.body['id']}/retry", who=admin)
    assert twice.status == 409 and twice.content_type == "application/problem+json"
    assert await outbox_rows(api) == 0
    entries = (await api.get("/api/v1/activity", who=admin, params={"type": "message.retried"})).body["items"]
    assert [e["object_id"] for e in entries] == [r.body["id"]]


async def test_a_hang_past_the_timeout_is_retried_and_a_redirect_is_not_followed(api, admin, provider):
    chat = await wired(api, admin, provider)
    provider.script = [Answer(200, hang=3.0), Answer(200)]
    r = await reply(api, admin, chat["conversation_id"])
    sent = await settled(api, admin, chat["conversation_id"], r.body["id"], "sent")
    assert sent["attempts"] == 2 and len(provider.received) == 2
    provider.script = [Answer(302, headers={"Location": "/elsewhere"})]
    r = await reply(api, admin, chat["conversation_id"], "second")
    failed = await settled(api, admin, chat["conversation_id"], r.body["id"], "failed")
    assert failed["last_code"] == 302 and "not followed" in failed["last_error"]
    assert provider.other_paths == []


async def test_retry_after_is_honoured(api, admin, provider):
    chat = await wired(api, admin, provider)
    provider.script = [Answer(429, headers={"Retry-After": "1"}), Answer(200)]
    r = await reply(api, admin, chat["conversation_id"])
    first, second = await provider.wait_for(2)
    assert second.at - first.at >= 0.9, "the second attempt waited for Retry-After, not the 0.05 s backoff"
    await settled(api, admin, chat["conversation_id"], r.body["id"], "sent")


async def test_without_an_outbound_url_the_reply_fails_with_a_clear_reason(api, admin, provider):
    channel, secret = await make_channel(api, admin)
    r = await deliver(api, channel["id"], secret, message("in-1"))
    conversation = r.body["conversation_id"]
    r = await reply(api, admin, conversation)
    failed = await settled(api, admin, conversation, r.body["id"], "failed")
    assert "no outbound_url" in failed["last_error"]
    provider.secret = secret
    await api.patch(f"/api/v1/channels/{channel['id']}", {"outbound_url": provider.url}, who=admin)
    await api.post(f"/api/v1/chats/{conversation}/messages/{r.body['id']}/retry", who=admin)
    await settled(api, admin, conversation, r.body["id"], "sent")
    assert provider.received[0].verified


async def test_internal_conversations_send_nothing(api, admin, provider):
    contact = (await api.post("/api/v1/contacts", {"name": "Walk-in"}, who=admin)).body
    conversation = (await api.post("/api/v1/chats", {"contact_id": contact["id"]}, who=admin)).body
    r = await reply(api, admin, conversation["id"])
    assert r.status == 201 and r.body["status"] == "sent" and await outbox_rows(api) == 0
    retry = await api.post(f"/api/v1/chats/{conversation['id']}/messages/{r.body['id']}/retry", who=admin)
    assert retry.status == 409


@pytest.mark.parametrize("config_overrides", [{
    **FAST_HASHING, "outbound_allow_private": True, "outbound_retry_base_seconds": 0.02,
    "outbound_retry_max_seconds": 0.05, "outbound_give_up_seconds": 0.4, "outbound_pause_after": 1000}])
async def test_retries_stop_at_the_give_up_time(api, admin, provider):
    chat = await wired(api, admin, provider)
    provider.default = Answer(503)
    r = await reply(api, admin, chat["conversation_id"])
    failed = await settled(api, admin, chat["conversation_id"], r.body["id"], "failed")
    assert failed["last_error"].startswith("gave up after") and failed["attempts"] >= 2
    assert failed["attempts"] == len(provider.received) and await outbox_rows(api) == 0


@pytest.mark.parametrize("config_overrides", [{
    **FAST_HASHING, "outbound_allow_private": True, "outbound_retry_base_seconds": 0.02,
    "outbound_retry_max_seconds": 0.05, "outbound_pause_after": 3}])
async def test_a_failing_provider_pauses_its_channel_until_an_admin_resumes_it(api, admin, provider):
    chat = await wired(api, admin, provider)
    other = await api.add_user(admin, "Olga", is_admin=True)
    provider.default = Answer(503)
    r = await reply(api, admin, chat["conversation_id"])
    await provider.wait_for(3)
    channel_id = chat["channel"]["id"]
    deadline = time.monotonic() + 10
    while (paused := next(c for c in (await api.get("/api/v1/channels", who=admin)).body["items"]
                          if c["id"] == channel_id))["paused_at"] is None:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    assert paused["failures"] == 3 and "503" in paused["last_error"]
    assert (await message_now(api, admin, chat["conversation_id"], r.body["id"]))["status"] == "queued"
    for who in (admin, other):
        notes = (await api.get("/api/v1/notifications", who=who)).body["items"]
        assert [(n["type"], n["lead_id"], n["data"]["channel_id"]) for n in notes if n["type"] != "message.received"] \
            == [("channel.paused", None, channel_id)]
    log = (await api.get("/api/v1/activity", who=admin, params={"type": "channel.paused"})).body["items"]
    assert [(e["object_id"], e["actor_id"]) for e in log] == [(channel_id, None)]
    # Paused: a new reply waits in the queue, and nothing is attempted.
    later = await reply(api, admin, chat["conversation_id"], "still there?")
    await asyncio.sleep(0.3)
    assert len(provider.received) == 3 and await outbox_rows(api) == 2
    provider.default = Answer(200)
    resumed = await api.post(f"/api/v1/channels/{channel_id}/resume", who=admin)
    assert resumed.status == 200 and resumed.body["paused_at"] is None and resumed.body["failures"] == 0
    await settled(api, admin, chat["conversation_id"], r.body["id"], "sent")
    await settled(api, admin, chat["conversation_id"], later.body["id"], "sent")
    assert [g.json["message"]["text"] for g in provider.received[3:]] == ["on its way", "still there?"]
    assert (await api.post(f"/api/v1/channels/{channel_id}/resume", who=admin)).status == 409
    log = (await api.get("/api/v1/activity", who=admin, params={"type": "channel.resumed"})).body["items"]
    assert [(e["object_id"], e["actor_id"]) for e in log] == [(channel_id, admin.user_id)]


async def test_status_callbacks_move_forward_only_are_idempotent_and_must_be_signed(api, admin, provider):
    chat = await wired(api, admin, provider)
    provider.script = [Answer(200, {"id": "prov-9"})]
    r = await reply(api, admin, chat["conversation_id"])
    mid = r.body["id"]
    await settled(api, admin, chat["conversation_id"], mid, "sent")
    hook = f"/hooks/chat/{chat['channel']['id']}/status"

    async def report(payload: dict, secret: str = chat["secret"]):
        body, headers = signed_status(secret, payload, api.clock.now)
        return await api.call("POST", hook, data=body, headers=headers)

    forged = await report({"message_id": mid, "status": "read"}, secret="whsec_forged")
    assert forged.status == 401
    assert (await message_now(api, admin, chat["conversation_id"], mid))["status"] == "sent"
    first = await report({"provider_message_id": "prov-9", "status": "delivered"})
    assert first.status == 200 and first.body == {"message_id": mid, "status": "delivered", "changed": True}
    again = await report({"provider_message_id": "prov-9", "status": "delivered"})
    assert again.body == {"message_id": mid, "status": "delivered", "changed": False}
    assert (await report({"message_id": mid, "status": "read"})).body["status"] == "read"
    for backwards in ("delivered", "failed"):
        r2 = await report({"message_id": mid, "status": backwards})
        assert r2.body == {"message_id": mid, "status": "read", "changed": False}
    assert (await message_now(api, admin, chat["conversation_id"], mid))["status"] == "read"
    # Another channel's message, a customer's message, an unknown id: all 404, nothing changed.
    incoming = (await api.get(f"/api/v1/chats/{chat['conversation_id']}/messages", who=admin)).body["items"][-1]
    for payload in ({"message_id": incoming["id"], "status": "read"}, {"message_id": 99999, "status": "read"},
                    {"provider_message_id": "in-1", "status": "read"}):
        assert (await report(payload)).status == 404
    bad = await report({"message_id": mid, "provider_message_id": "prov-9", "status": "read"})
    assert bad.status == 422 and bad.content_type == "application/problem+json"
    assert (await report({"message_id": mid, "status": "bounced"})).status == 422


async def test_a_failed_callback_records_the_providers_reason(api, admin, provider):
    chat = await wired(api, admin, provider)
    r = await reply(api, admin, chat["conversation_id"])
    await settled(api, admin, chat["conversation_id"], r.body["id"], "sent")
    body, headers = signed_status(chat["secret"], {"message_id": r.body["id"], "status": "failed",
                                                   "reason": "recipient blocked the business"}, api.clock.now)
    r2 = await api.call("POST", f"/hooks/chat/{chat['channel']['id']}/status", data=body, headers=headers)
    assert r2.body["changed"] is True
    failed = await message_now(api, admin, chat["conversation_id"], r.body["id"])
    assert failed["status"] == "failed" and failed["last_error"] == "recipient blocked the business"


async def test_status_changes_go_live_to_readers_of_the_chat_only(api, admin, provider):
    chat = await wired(api, admin, provider)
    outsider = await api.add_user(admin, "Nina", rights={"leads": {"add": "A", "view": "M"},
                                                         "contacts": {"view": "M"}})
    watcher = await connect(api, admin)
    blind = await connect(api, outsider)
    provider.script = [Answer(503), Answer(200)]
    r = await reply(api, admin, chat["conversation_id"])
    frames = await watcher.until(lambda f: f.get("type") == "event" and f["event"] == "message.status"
                                 and f["data"]["status"] == "sent", timeout=20)
    statuses = [f["data"] for f in frames if f.get("event") == "message.status"]
    assert [(s["status"], s["attempts"], s["last_code"]) for s in statuses] == [("queued", 1, 503), ("sent", 2, 200)]
    assert all(s["message_id"] == r.body["id"] for s in statuses)
    # The outsider sees none of it: their next frame is what they may see, made after.
    mine = await api.post("/api/v1/leads", {"name": "Nina's own"}, who=outsider)
    assert mine.status == 201, mine.body
    frame = await blind.frame(5)
    assert frame["event"] == "lead.created" and frame["data"]["lead"]["id"] == mine.body["id"]


async def test_who_may_send_and_retry(api, admin, provider):
    chat = await wired(api, admin, provider)
    outsider = await api.add_user(admin, "Nina", rights={"leads": {"view": "M"}, "contacts": {"view": "M"}})
    r = await reply(api, outsider, chat["conversation_id"])
    assert r.status == 404 and await outbox_rows(api) == 0
    provider.script = [Answer(400)]
    mine = await reply(api, admin, chat["conversation_id"])
    await settled(api, admin, chat["conversation_id"], mine.body["id"], "failed")
    path = f"/api/v1/chats/{chat['conversation_id']}/messages/{mine.body['id']}/retry"
    assert (await api.post(path, who=outsider)).status == 404
    assert (await api.post(f"/api/v1/chats/{chat['conversation_id']}/messages/99999/retry", who=admin)).status == 404
    assert await outbox_rows(api) == 0 and len(provider.received) == 1
    # A subscriber reads the chat (rule 5), so may answer in it: the reply goes out.
    await api.post(f"/api/v1/leads/{chat['lead_id']}/subscribers", {"user_id": outsider.user_id}, who=admin)
    theirs = await reply(api, outsider, chat["conversation_id"], "subscriber here")
    assert theirs.status == 201 and theirs.body["status"] == "queued"
    await settled(api, admin, chat["conversation_id"], theirs.body["id"], "sent")


async def test_attachments_go_as_signed_expiring_links_the_provider_can_fetch(api, admin, provider):
    chat = await wired(api, admin, provider)
    image = png(3, 3)
    up = await api.call("POST", "/api/v1/media", who=admin, params={"name": "map.png"}, data=image)
    assert up.status == 201, up.body
    r = await reply(api, admin, chat["conversation_id"], "here is the map", attachments=[up.body["id"]])
    await settled(api, admin, chat["conversation_id"], r.body["id"], "sent")
    [attachment] = provider.received[0].json["message"]["attachments"]
    assert (attachment["name"], attachment["type"], attachment["size"]) == ("map.png", "image/png", len(image))
    path = attachment["url"].split("://", 1)[1].split("/", 1)[1]
    async with api.client.get("/" + path) as got:  # no session, no token: the link is the credential
        assert got.status == 200 and await got.read() == image
    tampered = "/" + path.replace("sig=", "sig=0")
    assert (await api.get(tampered)).status == 403
    other_channel = "/" + path.replace(f"hooks/chat/{chat['channel']['id']}/", "hooks/chat/999/")
    assert (await api.get(other_channel)).status == 403


async def _a_live_channel_delivers(api, admin) -> None:
    """A second channel, with a provider that answers, gets its reply out (while another hangs)."""
    healthy = await Provider().start()
    try:
        channel, secret = await make_channel(api, admin)
        healthy.secret = secret
        await api.patch(f"/api/v1/channels/{channel['id']}", {"outbound_url": healthy.url}, who=admin)
        r = await deliver(api, channel["id"], secret, message("live-1", handle="+15557777"))
        fast = await reply(api, admin, r.body["conversation_id"], "live")
        await settled(api, admin, r.body["conversation_id"], fast.body["id"], "sent", timeout=30)
    finally:
        await healthy.stop()


@pytest.mark.parametrize("config_overrides", [{
    **FAST_HASHING, "outbound_allow_private": True, "outbound_timeout_seconds": 60.0, "outbound_concurrency": 2}])
async def test_a_hanging_provider_holds_only_its_own_channel(api, admin, provider):
    slow = await wired(api, admin, provider)
    provider.default = Answer(200, hang=60.0)
    conversations = [slow["conversation_id"]]
    for i in range(3):  # three conversations: more than the slow channel's two slots
        r = await deliver(api, slow["channel"]["id"], slow["secret"], message(f"in-{i}", handle=f"+1555000{i + 2}"))
        conversations.append(r.body["conversation_id"])
    stuck = [(c, (await reply(api, admin, c, "slow")).body["id"]) for c in conversations]
    await provider.wait_for(2)
    await _a_live_channel_delivers(api, admin)
    # Sent while every slow attempt still hangs, and only two of them were ever started.
    for conversation, mid in stuck:
        assert (await message_now(api, admin, conversation, mid))["attempts"] == 0
    assert len(provider.received) == 2


def test_signatures_verify_with_the_scheme_library_for_new_and_legacy_secrets():
    import base64
    import secrets as random_secrets

    from standardwebhooks.webhooks import Webhook, WebhookVerificationError

    from auth.signing import webhook_headers, webhook_key
    from inbox.actions.ingest import new_secret

    body = b'{"version": 1}'
    secret = new_secret()
    headers = webhook_headers(secret, "msg_1", int(time.time()), body)
    assert Webhook(secret).verify(body, headers) == {"version": 1}  # the library, with its own clock check
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body + b" ", headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)
    # Secrets made before (URL-safe, unpadded) still give a stable key: their bytes, decoded.
    raw = random_secrets.token_bytes(32)
    legacy = "whsec_" + base64.urlsafe_b64encode(raw).decode().rstrip("=")
    assert webhook_key(legacy) == raw and webhook_key(secret) == base64.b64decode(secret[6:])


async def _conversations(api, channel: dict, secret: str, count: int, prefix: str) -> list[int]:
    """``count`` customers write on the channel at once; their conversation ids."""
    sem = asyncio.Semaphore(32)

    async def one(i: int) -> int:
        async with sem:
            r = await deliver(api, channel["id"], secret, message(f"{prefix}-{i}", handle=f"+1{prefix}{i:06d}"))
            assert r.status == 201, r.body
            return r.body["conversation_id"]

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def _reply_all(api, who, conversations: list[int], text: str) -> list[int]:
    sem = asyncio.Semaphore(32)

    async def one(cid: int) -> int:
        async with sem:
            r = await reply(api, who, cid, text)
            assert r.status == 201, r.body
            return r.body["id"]

    return list(await asyncio.gather(*(one(c) for c in conversations)))


async def test_no_reply_is_sent_twice_without_a_crash(api, admin, provider):
    """An attempt that ends while the worker is reading what is due must not be started again from
    that stale read (the bench saw 3% of replies sent twice before this was fixed)."""
    chat = await wired(api, admin, provider)
    conversations = [chat["conversation_id"], *await _conversations(api, chat["channel"], chat["secret"], 39, "9")]
    ids: list[int] = []
    for round_ in range(5):
        ids += await _reply_all(api, admin, conversations, f"round {round_}")
    got = await provider.wait_for(len(ids), timeout=60)
    await asyncio.sleep(0.3)  # a duplicate would arrive right after the first
    seen = [r.webhook_id for r in provider.received]
    assert len(seen) == len(set(seen)) == len(ids), f"{len(seen) - len(set(seen))} replies were sent twice"
    assert {r.json["message"]["id"] for r in got} == set(ids)


@pytest.mark.parametrize("config_overrides", [{
    **FAST_HASHING, "outbound_allow_private": True, "outbound_timeout_seconds": 60.0, "outbound_concurrency": 2}])
async def test_a_dead_channel_with_a_long_queue_does_not_starve_the_others(api, admin, provider):
    """More conversations waiting on a hanging provider than the worker reads in one scan: the live
    channel's replies still go out (they did not, before: every row read was the dead channel's)."""
    dead = await wired(api, admin, provider)
    provider.default = Answer(200, hang=60.0)
    many = await _conversations(api, dead["channel"], dead["secret"], 520, "8")
    await _reply_all(api, admin, many, "waiting")
    await provider.wait_for(2)
    await _a_live_channel_delivers(api, admin)
    assert len(provider.received) == 2  # the dead channel still holds only its two slots


async def test_200_parallel_retries_queue_one_attempt_and_200_callbacks_change_once(api, admin, provider):
    chat = await wired(api, admin, provider)
    provider.script = [Answer(400, {"error": "try me again"})]
    r = await reply(api, admin, chat["conversation_id"])
    mid = r.body["id"]
    await settled(api, admin, chat["conversation_id"], mid, "failed")
    path = f"/api/v1/chats/{chat['conversation_id']}/messages/{mid}/retry"
    auth = {"Authorization": f"Bearer {admin.token}"}
    answers = await parallel(api, [("POST", path, None, auth)] * 200)
    assert sorted(status for status, _ in answers) == [200] + [409] * 199
    await settled(api, admin, chat["conversation_id"], mid, "sent")
    await asyncio.sleep(0.3)
    assert len(provider.received) == 2 and len({g.webhook_id for g in provider.received}) == 1
    body, headers = signed_status(chat["secret"], {"message_id": mid, "status": "delivered"}, api.clock.now)
    answers = await parallel(api, [("POST", f"/hooks/chat/{chat['channel']['id']}/status", body, headers)] * 200)
    assert all(status == 200 for status, _ in answers)
    assert sum(1 for _, b in answers if b["changed"]) == 1
    statuses = (await api.rows("SELECT count(*) FROM events WHERE type = 'message.status'"))[0][0]
    assert statuses == 4  # failed, queued again, sent, delivered: one event each
