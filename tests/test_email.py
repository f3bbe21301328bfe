"""Shared inboxes: real MIME messages through the signed webhook, threading, linking, and rule 8
(mail_access plus membership; in a lead's timeline also the lead rule) over REST, websockets and
downloads, each with the user who must not see it."""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from conftest import FAST_HASHING
from test_ingest import PDF, png
from test_realtime import OPEN, close_clients, connect  # noqa: F401  (fixture)

from auth.signing import sign

READER = {"leads": {"view": "A"}, "contacts": {"view": "A"}, "mail_access": True, "files_access": True}


@pytest.fixture
def config_overrides() -> dict:
    return FAST_HASHING


async def post_mail(api, inbox_id: int, secret: str, raw: bytes, **kw):
    stamp = str(int(api.clock.now))
    headers = {"X-Inbox-Timestamp": stamp, "X-Inbox-Signature": kw.pop("signature", None) or sign(secret, stamp, raw),
               "Content-Type": "message/rfc822"}
    return await api.call("POST", f"/hooks/email/{inbox_id}", data=raw, headers=headers)


def mail(subject: str, msg_id: str, *, sender="jane@buyer.io", text="Hello", html=None, reply_to=None,
         refs=None, files=()) -> bytes:
    m = EmailMessage()
    m["From"] = f"Jane Buyer <{sender}>"
    m["To"] = "sales@acme.test"
    m["Subject"] = subject
    m["Message-ID"] = msg_id
    m["Date"] = "Mon, 23 Nov 2026 10:00:00 +0000"
    if reply_to:
        m["In-Reply-To"] = reply_to
    if refs:
        m["References"] = " ".join(refs)
    m.set_content(text)
    if html:
        m.add_alternative(html, subtype="html")
    for name, data, maintype, subtype in files:
        m.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return bytes(m)


LATIN1 = (b"From: =?iso-8859-1?q?Ren=E9_M=FCller?= <rene@example.de>\r\n"
          b"To: sales@acme.test\r\nSubject: =?iso-8859-1?q?Gr=FC=DFe?=\r\nMessage-ID: <latin@example.de>\r\n"
          b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
          b"Content-Transfer-Encoding: quoted-printable\r\n\r\nSch=F6ne Gr=FC=DFe aus K=F6ln\r\n")


async def world(api, admin):
    reader = (await api.post("/api/v1/roles", {"name": "Reader", "rights": READER}, who=admin)).body["id"]
    no_mail = (await api.post("/api/v1/roles", {"name": "No mail", "rights": {**READER, "mail_access": False}},
                              who=admin)).body["id"]
    member = await api.add_user(admin, "Mia", role_id=reader)
    outsider = await api.add_user(admin, "Otto", role_id=reader)       # mail access, not a member
    no_access = await api.add_user(admin, "Nora", role_id=no_mail)     # a member without mail access
    r = await api.post("/api/v1/inboxes", {"name": "Sales", "user_ids": [member.user_id, no_access.user_id]},
                       who=admin)
    assert r.status == 201 and r.body["secret"]
    await api.post("/api/v1/pipelines", {"name": "P", "stages": ["S"]}, who=admin)
    contact = (await api.post("/api/v1/contacts", {"name": "Jane", "emails": ["Jane@Buyer.io"]}, who=admin)).body["id"]
    lead = (await api.post("/api/v1/leads", {"name": "Deal", "contact_ids": [contact]}, who=admin)).body["id"]
    return r.body, member, outsider, no_access, contact, lead


async def test_shapes_threading_linking_and_dedupe(api, admin):
    inbox, member, outsider, no_access, contact, lead = await world(api, admin)
    first = mail("Quote", "<q1@buyer.io>", text="Plain only")
    r = await post_mail(api, inbox["id"], inbox["secret"], first)
    assert r.status == 201 and (r.body["contact_id"], r.body["lead_id"]) == (contact, lead)
    thread = r.body["thread_id"]
    again = await post_mail(api, inbox["id"], inbox["secret"], first)
    assert again.status == 200 and again.body["duplicate"] is True and again.body["email_id"] == r.body["email_id"]
    alt = mail("Re: Quote", "<q2@buyer.io>", text="plain part", html="<p>html part</p>", reply_to="<q1@buyer.io>")
    r2 = await post_mail(api, inbox["id"], inbox["secret"], alt)
    assert r2.body["thread_id"] == thread
    with_files = mail("Re: Quote", "<q3@buyer.io>", refs=["<q1@buyer.io>", "<q2@buyer.io>"],
                      files=[("chart.png", png(), "image", "png"), ("offer.pdf", PDF, "application", "pdf")])
    r3 = await post_mail(api, inbox["id"], inbox["secret"], with_files)
    assert r3.body["thread_id"] == thread
    r4 = await post_mail(api, inbox["id"], inbox["secret"], LATIN1)
    assert r4.status == 201 and r4.body["thread_id"] != thread and r4.body["contact_id"] is None
    got = await api.get(f"/api/v1/inboxes/{inbox['id']}/threads/{thread}", who=member)
    emails = got.body["emails"]
    assert [e["message_id"] for e in emails] == ["<q1@buyer.io>", "<q2@buyer.io>", "<q3@buyer.io>"]
    assert emails[0]["text"].strip() == "Plain only" and emails[1]["html"].strip() == "<p>html part</p>"
    assert emails[1]["text"].strip() == "plain part"
    assert [(a["name"], a["type"]) for a in emails[2]["attachments"]] == [("chart.png", "image/png"),
                                                                         ("offer.pdf", "application/pdf")]
    latin = await api.get(f"/api/v1/inboxes/{inbox['id']}/threads/{r4.body['thread_id']}", who=member)
    assert latin.body["emails"][0]["text"].strip() == "Schöne Grüße aus Köln"
    assert latin.body["subject"] == "Grüße" and latin.body["emails"][0]["from"]["name"] == "René Müller"
    threads = await api.get(f"/api/v1/inboxes/{inbox['id']}/emails", who=member)
    assert [t["id"] for t in threads.body["items"]] == [r4.body["thread_id"], thread]
    assert not threads.body["items"][1]["read"]
    assert (await api.post(f"/api/v1/inboxes/{inbox['id']}/threads/{thread}/read", who=member)).status == 204
    threads = await api.get(f"/api/v1/inboxes/{inbox['id']}/emails", who=member)
    assert threads.body["items"][1]["read"] is True


async def test_bad_email_deliveries(api, admin):
    inbox, *_ = await world(api, admin)
    before = await api.rows("SELECT count(*) FROM emails")
    assert (await post_mail(api, inbox["id"], inbox["secret"], b"this is not an email at all")).status == 422
    assert (await post_mail(api, inbox["id"], "whsec_nope", mail("x", "<x@y>"))).status == 401
    assert (await post_mail(api, 999, inbox["secret"], mail("x", "<x@y>"))).status == 404
    assert await api.rows("SELECT count(*) FROM emails") == before


async def test_rule_8_over_rest_websockets_and_downloads(api, admin):
    inbox, member, outsider, no_access, contact, lead = await world(api, admin)
    sockets = {u.name: await connect(api, u) for u in (member, outsider, no_access)}
    raw = mail("Files", "<f1@buyer.io>", files=[("chart.png", png(), "image", "png")])
    r = await post_mail(api, inbox["id"], inbox["secret"], raw)
    assert r.status == 201
    # REST: the member reads it; mail access without membership, or membership without mail access, do not.
    assert (await api.get(f"/api/v1/inboxes/{inbox['id']}/emails", who=member)).status == 200
    for who in (outsider, no_access):
        assert (await api.get(f"/api/v1/inboxes/{inbox['id']}/emails", who=who)).status == 404
        assert (await api.get("/api/v1/inboxes", who=who)).body["items"] == []
    assert [i["id"] for i in (await api.get("/api/v1/inboxes", who=member)).body["items"]] == [inbox["id"]]
    # The lead's timeline needs both rules: all three may view the lead, only the member sees the email.
    timeline = {u.name: (await api.get(f"/api/v1/leads/{lead}/emails", who=u)).body["items"]
                for u in (member, outsider, no_access)}
    assert [e["id"] for e in timeline["Mia"]] == [r.body["email_id"]]
    assert timeline["Otto"] == [] and timeline["Nora"] == []
    # Websockets: only the member gets the email event.
    frame = (await sockets["Mia"].until(lambda f: f.get("event") == "email.created"))[-1]
    assert frame["data"]["email"]["subject"] == "Files"
    await api.post(f"/api/v1/leads/{lead}/subscribers", {"user_id": outsider.user_id}, who=admin)
    await api.post(f"/api/v1/leads/{lead}/subscribers", {"user_id": no_access.user_id}, who=admin)
    for name in ("Otto", "Nora"):
        frames = await sockets[name].until(lambda f: f.get("event") == "notification.created")
        assert not any(f.get("event") == "email.created" for f in frames), name
    # Downloads follow the inbox rule too.
    media_id = timeline["Mia"][0]["attachments"][0]["media_id"]
    assert (await api.get(f"/api/v1/media/{media_id}", who=member)).status == 200
    assert (await api.get(f"/api/v1/media/{media_id}", who=outsider)).status == 404
    # Membership changes apply at once.
    r = await api.put(f"/api/v1/inboxes/{inbox['id']}/members", {"user_ids": [outsider.user_id]}, who=admin)
    assert r.body["user_ids"] == [outsider.user_id]
    assert (await api.get(f"/api/v1/media/{media_id}", who=outsider)).status == 200
    assert (await api.get(f"/api/v1/inboxes/{inbox['id']}/emails", who=member)).status == 404
    assert (await api.get(f"/api/v1/inboxes/{inbox['id']}/members", who=outsider)).body["user_ids"] == [outsider.user_id]


async def test_inbox_administration(api, admin):
    inbox, member, *_ = await world(api, admin)
    assert (await api.post("/api/v1/inboxes", {"name": "X"}, who=member)).status == 403
    r = await api.patch(f"/api/v1/inboxes/{inbox['id']}", {"name": "Sales EU"}, who=admin)
    assert r.body["name"] == "Sales EU"
    new = (await api.post(f"/api/v1/inboxes/{inbox['id']}/rotate", who=admin)).body["secret"]
    assert (await post_mail(api, inbox["id"], new, mail("a", "<a@b>"))).status == 201
    assert (await post_mail(api, inbox["id"], inbox["secret"], mail("b", "<b@b>"))).status == 201  # overlap
    assert (await api.delete(f"/api/v1/inboxes/{inbox['id']}", who=admin)).status == 204
    assert (await api.get("/api/v1/inboxes", who=admin)).body["items"] == []
