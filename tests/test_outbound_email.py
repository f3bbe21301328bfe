"""Replies from shared inboxes by SMTP (docs/outbound.md): a real SMTP server (aiosmtpd) on a loopback
port receives them; the raw message's headers, threading and attachments are read from what it got,
the customer's answer threads back, 4xx is retried, 5xx fails with the server's text, and rule 8
decides who may send."""

from __future__ import annotations

import asyncio
import email
import time
from email import policy

import pytest
from aiosmtpd.controller import Controller

from conftest import FAST_HASHING
from test_cli import free_port
from test_email import mail, post_mail, world
from test_ingest import png
from test_outbound_chat import clock  # noqa: F401  (the server's clock follows real time here)
from test_realtime import close_clients, connect  # noqa: F401  (the fixture closes the test's sockets)


@pytest.fixture
def config_overrides() -> dict:
    return {**FAST_HASHING, "outbound_allow_private": True, "outbound_retry_base_seconds": 0.05,
            "outbound_retry_max_seconds": 0.2, "outbound_timeout_seconds": 5.0}


class Mailbox:
    """The SMTP server's side: every message it accepted, and scripted refusals for DATA."""

    def __init__(self) -> None:
        self.received: list[tuple[list[str], bytes]] = []
        self.refuse: list[str] = []   # answers to DATA, used up one by one, then 250
        self.tried = 0

    async def handle_DATA(self, server, session, envelope) -> str:
        self.tried += 1
        if self.refuse:
            return self.refuse.pop(0)
        self.received.append((list(envelope.rcpt_tos), envelope.original_content or envelope.content))
        return "250 OK queued"


@pytest.fixture
def smtp():
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    box.port = controller.port  # type: ignore[attr-defined]
    yield box
    controller.stop()


async def outgoing(api, admin, inbox_id: int, port: int, **extra):
    settings = {"address": "sales@acme.example", "display_name": "Acme Sales", "host": "127.0.0.1", "port": port,
                "security": "none", "username": None, **extra}
    r = await api.put(f"/api/v1/inboxes/{inbox_id}/outgoing", settings, who=admin)
    assert r.status == 200, r.body
    return r.body


async def until(predicate, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while not (found := await predicate()):
        assert time.monotonic() < deadline, "not reached in time"
        await asyncio.sleep(0.02)
    return found


async def email_now(api, who, inbox_id: int, thread_id: int, email_id: int) -> dict:
    r = await api.get(f"/api/v1/inboxes/{inbox_id}/threads/{thread_id}", who=who)
    return next(e for e in r.body["emails"] if e["id"] == email_id)


async def settled(api, who, inbox_id, thread_id, email_id, status) -> dict:
    async def check():
        found = await email_now(api, who, inbox_id, thread_id, email_id)
        return found if found["status"] == status else None
    return await until(check)


async def test_a_reply_threads_in_mail_clients_and_the_answer_threads_back(api, admin, smtp):
    inbox, member, *_ = await world(api, admin)
    await outgoing(api, admin, inbox["id"], smtp.port)
    first = await post_mail(api, inbox["id"], inbox["secret"], mail("Quote for 10 chairs", "<q1@buyer.io>"))
    second = await post_mail(api, inbox["id"], inbox["secret"], mail(
        "RE: Quote for 10 chairs", "<q2@buyer.io>", reply_to="<q1@buyer.io>", refs=["<q1@buyer.io>"]))
    thread = first.body["thread_id"]
    assert second.body["thread_id"] == thread
    image = png(4, 4)
    upload = await api.call("POST", "/api/v1/media", who=member, params={"name": "plan ü.png"}, data=image)
    r = await api.post(f"/api/v1/inboxes/{inbox['id']}/threads/{thread}/reply",
                       {"text": "Ten chairs: 900 € (München).", "html": "<p>Ten chairs: <b>900 EUR</b>.</p>",
                        "cc": ["boss@buyer.io"], "media_ids": [upload.body["id"]]}, who=member)
    assert r.status == 201, r.body
    sent = r.body
    assert (sent["direction"], sent["status"], sent["author_user_id"]) == ("outgoing", "queued", member.user_id)
    assert sent["message_id"].endswith("@acme.example>") and sent["subject"] == "Re: Quote for 10 chairs"
    await until(lambda: asyncio.sleep(0, bool(smtp.received)))
    [(recipients, raw)] = smtp.received
    assert sorted(recipients) == ["boss@buyer.io", "jane@buyer.io"]
    msg = email.message_from_bytes(raw, policy=policy.default)
    assert msg["From"].addresses[0].addr_spec == "sales@acme.example"
    assert msg["From"].addresses[0].display_name == "Acme Sales"
    assert [a.addr_spec for a in msg["To"].addresses] == ["jane@buyer.io"]
    assert [a.addr_spec for a in msg["Cc"].addresses] == ["boss@buyer.io"]
    assert msg["Subject"] == "Re: Quote for 10 chairs"   # never "Re: RE: ..."
    assert msg["Message-ID"] == sent["message_id"]
    assert msg["In-Reply-To"] == "<q2@buyer.io>"
    assert msg["References"].split() == ["<q1@buyer.io>", "<q2@buyer.io>"]
    assert msg.get_body(("plain",)).get_content().strip() == "Ten chairs: 900 € (München)."
    assert "<b>900 EUR</b>" in msg.get_body(("html",)).get_content()
    [attachment] = list(msg.iter_attachments())
    assert attachment.get_filename() == "plan ü.png" and attachment.get_content() == image
    done = await settled(api, member, inbox["id"], thread, sent["id"], "sent")
    assert (done["attempts"], done["last_code"], done["last_error"]) == (1, 250, None)
    # The customer answers the reply: it lands in the same thread.
    answer = await post_mail(api, inbox["id"], inbox["secret"], mail(
        "Re: Quote for 10 chairs", "<q3@buyer.io>", reply_to=sent["message_id"],
        refs=["<q1@buyer.io>", "<q2@buyer.io>", sent["message_id"]]))
    assert answer.status == 201 and answer.body["thread_id"] == thread
    emails = (await api.get(f"/api/v1/inboxes/{inbox['id']}/threads/{thread}", who=member)).body["emails"]
    assert [e["direction"] for e in emails] == ["incoming", "incoming", "outgoing", "incoming"]


async def test_smtp_4xx_is_retried_and_5xx_fails_with_the_servers_text(api, admin, smtp):
    inbox, member, outsider, *_ = await world(api, admin)
    await outgoing(api, admin, inbox["id"], smtp.port)
    first = (await post_mail(api, inbox["id"], inbox["secret"], mail("Hi", "<h1@buyer.io>"))).body
    thread, first_email = first["thread_id"], first["email_id"]
    smtp.refuse = ["451 4.3.0 Mailbox busy, try later"]
    r = await api.post(f"/api/v1/inboxes/{inbox['id']}/threads/{thread}/reply", {"text": "one"}, who=member)
    done = await settled(api, member, inbox["id"], thread, r.body["id"], "sent")
    assert done["attempts"] == 2 and smtp.tried == 2 and len(smtp.received) == 1
    smtp.refuse = ["550 5.1.1 No such user here"]
    r = await api.post(f"/api/v1/inboxes/{inbox['id']}/threads/{thread}/reply", {"text": "two"}, who=member)
    failed = await settled(api, member, inbox["id"], thread, r.body["id"], "failed")
    assert failed["attempts"] == 1 and failed["last_code"] == 550 and "No such user" in failed["last_error"]
    assert len(smtp.received) == 1
    assert (await api.rows("SELECT count(*) FROM outbox"))[0][0] == 0
    # Retried by hand: a real new attempt, with the same Message-ID; only failed ones, only by readers.
    path = f"/api/v1/inboxes/{inbox['id']}/threads/{thread}/emails/{r.body['id']}/retry"
    assert (await api.post(path, who=outsider)).status == 404
    again = await api.post(path, who=member)
    assert again.status == 200 and again.body["status"] == "queued"
    done = await settled(api, member, inbox["id"], thread, r.body["id"], "sent")
    assert done["attempts"] == 2 and len(smtp.received) == 2 and smtp.tried == 4
    resent = email.message_from_bytes(smtp.received[1][1], policy=policy.default)
    assert resent["Message-ID"] == r.body["message_id"]
    assert (await api.post(path, who=member)).status == 409
    incoming = f"/api/v1/inboxes/{inbox['id']}/threads/{thread}/emails/{first_email}/retry"
    assert (await api.post(incoming, who=member)).status == 409


async def test_who_may_send_and_what_nothing_queued_looks_like(api, admin, smtp):
    inbox, member, outsider, no_access, *_ = await world(api, admin)
    thread = (await post_mail(api, inbox["id"], inbox["secret"], mail("Hi", "<h1@buyer.io>"))).body["thread_id"]
    path = f"/api/v1/inboxes/{inbox['id']}/threads/{thread}/reply"
    no_settings = await api.post(path, {"text": "x"}, who=member)
    assert no_settings.status == 409 and "outgoing" in no_settings.body["detail"]
    await outgoing(api, admin, inbox["id"], smtp.port)
    for who in (outsider, no_access):  # mail access without membership; membership without mail access
        r = await api.post(path, {"text": "x"}, who=who)
        assert r.status == 404 and r.content_type == "application/problem+json"
    assert (await api.post(f"/api/v1/inboxes/{inbox['id']}/threads/99999/reply", {"text": "x"},
                           who=member)).status == 404
    no_files = (await api.post("/api/v1/roles", {"name": "Mail only", "rights": {
        "leads": {"view": "A"}, "mail_access": True, "files_access": False}}, who=admin)).body["id"]
    writer = await api.add_user(admin, "Wes", role_id=no_files)
    await api.put(f"/api/v1/inboxes/{inbox['id']}/members", {"user_ids": [member.user_id, writer.user_id]},
                  who=admin)
    upload = await api.call("POST", "/api/v1/media", who=admin, params={"name": "a.png"}, data=png())
    r = await api.post(path, {"text": "x", "media_ids": [upload.body["id"]]}, who=writer)
    assert r.status == 403
    hidden = await api.call("POST", "/api/v1/media", who=admin, params={"name": "b.png"}, data=png(3, 3))
    r = await api.post(path, {"text": "x", "media_ids": [hidden.body["id"]]}, who=member)  # not theirs to see
    assert r.status == 422 and r.body["errors"][0]["path"] == "media_ids.0"
    for bad in ({"text": ""}, {"text": "x", "cc": ["not an address"]}, {"text": "x", "cc": ["a@b.c\r\nBcc: x@y.z"]}):
        assert (await api.post(path, bad, who=member)).status == 422
    assert (await api.rows("SELECT count(*) FROM outbox"))[0][0] == 0
    assert (await api.rows("SELECT count(*) FROM emails WHERE direction = 'outgoing'"))[0][0] == 0
    assert smtp.tried == 0
    # Writing without files is fine.
    r = await api.post(path, {"text": "plain"}, who=writer)
    assert r.status == 201
    await settled(api, writer, inbox["id"], thread, r.body["id"], "sent")


async def test_outgoing_settings_keep_the_password_sealed_and_never_show_it(api, admin, smtp):
    inbox, member, *_ = await world(api, admin)
    body = await outgoing(api, admin, inbox["id"], smtp.port, username="sales", password="s3cret-smtp-pass")
    assert body["has_password"] is True and "password" not in body
    assert (await api.get(f"/api/v1/inboxes/{inbox['id']}/outgoing", who=admin)).body == body
    stored = (await api.rows("SELECT smtp_password_sealed FROM inboxes WHERE id = ?", (inbox["id"],)))[0][0]
    assert "s3cret" not in stored
    dump = "\n".join(str(r) for r in await api.rows("SELECT data FROM activity"))
    assert "s3cret" not in dump
    kept = await outgoing(api, admin, inbox["id"], smtp.port, display_name="Sales team")
    assert kept["has_password"] is True and kept["display_name"] == "Sales team"
    cleared = await outgoing(api, admin, inbox["id"], smtp.port, password=None)
    assert cleared["has_password"] is False
    assert (await api.get(f"/api/v1/inboxes/{inbox['id']}/outgoing", who=member)).status == 403
    for bad in ({"host": "93.184.215.14", "security": "none"}, {"address": "nope"}, {"port": 0},
                {"security": "ssl"}, {"host": "bad host\r\n"}):
        r = await api.put(f"/api/v1/inboxes/{inbox['id']}/outgoing",
                          {"address": "sales@acme.example", "host": "127.0.0.1", "port": smtp.port,
                           "security": "none", **bad}, who=admin)
        assert r.status == 422 and r.content_type == "application/problem+json", (bad, r.status)


@pytest.mark.parametrize("config_overrides", [{
    **FAST_HASHING, "outbound_allow_private": True, "outbound_retry_base_seconds": 0.02,
    "outbound_retry_max_seconds": 0.05, "outbound_pause_after": 2}])
async def test_an_smtp_server_that_keeps_refusing_pauses_the_inbox_until_resumed(api, admin, smtp):
    inbox, member, *_ = await world(api, admin)
    await outgoing(api, admin, inbox["id"], smtp.port)
    thread = (await post_mail(api, inbox["id"], inbox["secret"], mail("Hi", "<h1@buyer.io>"))).body["thread_id"]
    smtp.refuse = ["421 4.7.0 Try again later"] * 2
    r = await api.post(f"/api/v1/inboxes/{inbox['id']}/threads/{thread}/reply", {"text": "one"}, who=member)

    async def paused():
        state = (await api.get(f"/api/v1/inboxes/{inbox['id']}/outgoing", who=admin)).body
        return state if state["paused_at"] else None
    state = await until(paused)
    assert state["failures"] == 2 and "421" in state["last_error"]
    notes = (await api.get("/api/v1/notifications", who=admin)).body["items"]
    assert [(n["type"], n["data"]["inbox_id"]) for n in notes if n["type"].endswith(".paused")] == \
        [("inbox.paused", inbox["id"])]
    assert (await email_now(api, member, inbox["id"], thread, r.body["id"]))["status"] == "queued"
    assert (await api.post(f"/api/v1/inboxes/{inbox['id']}/resume", who=member)).status == 403
    resumed = await api.post(f"/api/v1/inboxes/{inbox['id']}/resume", who=admin)
    assert resumed.status == 200 and resumed.body["paused_at"] is None
    done = await settled(api, member, inbox["id"], thread, r.body["id"], "sent")
    assert done["attempts"] == 3 and len(smtp.received) == 1
    assert (await api.post(f"/api/v1/inboxes/{inbox['id']}/resume", who=admin)).status == 409


async def test_the_reply_and_its_sending_go_live_to_the_inbox_readers_only(api, admin, smtp):
    inbox, member, outsider, no_access, *_ = await world(api, admin)
    await outgoing(api, admin, inbox["id"], smtp.port)
    thread = (await post_mail(api, inbox["id"], inbox["secret"], mail("Hi", "<h1@buyer.io>"))).body["thread_id"]
    reader = await connect(api, member)
    blind = [await connect(api, who) for who in (outsider, no_access)]
    r = await api.post(f"/api/v1/inboxes/{inbox['id']}/threads/{thread}/reply", {"text": "hello"}, who=member)
    frames = await reader.until(lambda f: f.get("event") == "email.status" and f["data"]["status"] == "sent", 10)
    created = [f["data"]["email"] for f in frames if f.get("event") == "email.created"]
    assert [(e["id"], e["direction"], e["status"]) for e in created] == [(r.body["id"], "outgoing", "queued")]
    lead = await api.post("/api/v1/leads", {"name": "After"}, who=admin)
    for client in blind:  # their next frame is one they may see, made after
        frame = await client.frame(5)
        assert frame["event"] == "lead.created" and frame["data"]["lead"]["id"] == lead.body["id"]


def _certificates(folder) -> tuple[str, str, str]:
    """A CA and a server certificate for 127.0.0.1 it signed: (ca.pem, cert.pem, key.pem)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def name(text):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])

    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("Test CA")).issuer_name(name("Test CA"))
          .public_key(ca_key.public_key()).serial_number(1).not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder().subject_name(name("127.0.0.1")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(2).not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = [str(folder / n) for n in ("ca.pem", "cert.pem", "key.pem")]
    for path, data in zip(paths, (ca.public_bytes(serialization.Encoding.PEM),
                                  cert.public_bytes(serialization.Encoding.PEM),
                                  key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()))):
        with open(path, "wb") as f:
            f.write(data)
    return paths[0], paths[1], paths[2]


async def test_starttls_with_a_verified_certificate_and_authentication(api, admin, tmp_path, monkeypatch):
    """The password crosses only an encrypted, verified connection: the server offers AUTH after
    STARTTLS only, and our side checks its certificate against the trusted CAs."""
    import ssl

    from aiosmtpd.smtp import AuthResult

    ca, cert, key = _certificates(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", ca)  # the machine's trust store, as far as this test's sender knows
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    logins = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        logins.append((auth_data.login, auth_data.password, session.ssl is not None))
        return AuthResult(success=auth_data.login == b"sales" and auth_data.password == b"s3cret", handled=False)

    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port(), tls_context=context, require_starttls=True,
                            authenticator=authenticator, auth_required=True)
    controller.start()
    try:
        inbox, member, *_ = await world(api, admin)
        await outgoing(api, admin, inbox["id"], controller.port, security="starttls", username="sales",
                       password="s3cret")
        thread = (await post_mail(api, inbox["id"], inbox["secret"], mail("Hi", "<h1@buyer.io>"))).body["thread_id"]
        r = await api.post(f"/api/v1/inboxes/{inbox['id']}/threads/{thread}/reply", {"text": "secure"}, who=member)
        await settled(api, member, inbox["id"], thread, r.body["id"], "sent")
        assert logins == [(b"sales", b"s3cret", True)] and len(box.received) == 1
        # A wrong password is the server's 535: failed at once, with its words.
        await outgoing(api, admin, inbox["id"], controller.port, security="starttls", username="sales",
                       password="wrong")
        r = await api.post(f"/api/v1/inboxes/{inbox['id']}/threads/{thread}/reply", {"text": "again"}, who=member)
        failed = await settled(api, member, inbox["id"], thread, r.body["id"], "failed")
        assert failed["last_code"] == 535 and len(box.received) == 1
    finally:
        controller.stop()
