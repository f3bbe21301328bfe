"""Hostile email through the real signed webhook on the real server: whatever the headers and bodies,
the answer is a 2xx or a problem+json 4xx, never a 5xx, and a refused message changes nothing.

One server serves every hypothesis example (starting one per example would make the test slow), so
each example compares the tables an email writes before and after its own delivery.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, FAST_HASHING, Api, Clock, make_config

from auth.signing import sign
from inbox.app import create_app
from inbox.keys import CONFIG, DB, HASHER
from inbox.workspace import init_workspace

WRITTEN = ("emails", "email_threads", "media", "media_links", "events")
NAMES = ["From", "To", "Cc", "Subject", "Date", "Message-ID", "In-Reply-To", "References", "MIME-Version",
         "Content-Type", "Content-Transfer-Encoding", "Content-Disposition", "Sender", "Reply-To", "X-Junk"]
# Fragments the header parsers treat specially: brackets, quotes, comments, encoded words, RFC 2231
# parameters, group syntax, bare CR or LF, NUL, non-ASCII bytes.
PIECES = ["<@>", "<", ">", "@", "<a@b>", '"', "\\", "(", ")", ";", ":", ",", "=", "*0*=", "''", "%", "=?",
          "?=", "=?utf-8?q?", "=?utf-8?b?", "=?x-unknown?q?a?=", "=?utf-8?b?!!?=", "a@b.c", "jane@buyer.io",
          "multipart/mixed", "multipart/alternative", "text/plain", "text/html", "message/rfc822",
          "boundary=b", 'boundary=""', "charset=", "charset=x-nope", "charset=utf-16", "base64",
          "quoted-printable", "uuencode", "attachment", "filename=", "filename*=", "group:;", "\r\n ",
          "\r\n\t", "\r", "\n", "\x00", "\udcff", "é", "💥", " ", "Mon, 32 Foo 99999 99:99:99 +9999"]
BODY_PIECES = [b"--b\r\n", b"--b--\r\n", b"--\r\n", b"\r\n", b"Content-Type: multipart/mixed; boundary=b\r\n",
               b"Content-Type: text/plain; charset=x-nope\r\n", b"Content-Transfer-Encoding: base64\r\n",
               b"Content-Transfer-Encoding: quoted-printable\r\n", b"Content-Disposition: attachment\r\n",
               b"Content-Type: message/rfc822\r\n", b"=ZZ", b"===", b"\xff\xfe", b"begin 644 x\r\n", b"hello"]

header_values = st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=8)), max_size=12).map("".join)
headers = st.lists(st.tuples(st.sampled_from(NAMES), header_values), max_size=10)
bodies = st.lists(st.one_of(st.sampled_from(BODY_PIECES), st.binary(max_size=16)), max_size=16).map(b"".join)


def render(fields: list[tuple[str, str]], body: bytes, sender: bool) -> bytes:
    head = [("From", "Jane <jane@buyer.io>")] if sender else []
    lines = [f"{name}: {value}".encode("utf-8", "surrogateescape") for name, value in head + fields]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


@pytest.fixture
def server(tmp_path):
    """The real app on a loopback port, with its own loop: hypothesis drives a synchronous test."""
    clock = Clock()

    async def start():
        app = create_app(make_config(tmp_path, clock, **FAST_HASHING, sqlite_synchronous="NORMAL"))
        client = TestClient(TestServer(app), cookie_jar=aiohttp.DummyCookieJar())
        await client.start_server()
        await init_workspace(app[DB], app[HASHER], app[CONFIG], name="Hostile mail", email=ADMIN_EMAIL,
                             admin_name="Ada", password=ADMIN_PASSWORD)
        api = Api(client, app, clock)
        admin = await api.persona(ADMIN_EMAIL, ADMIN_PASSWORD)
        inbox = (await api.post("/api/v1/inboxes", {"name": "Sales", "user_ids": []}, who=admin)).body
        return api, inbox

    with asyncio.Runner() as runner:
        api, inbox = runner.run(start())
        try:
            yield runner, api, inbox
        finally:
            runner.run(api.client.close())


async def counts(api: Api) -> dict[str, int]:
    return {t: (await api.rows(f"SELECT count(*) FROM {t}"))[0][0] for t in WRITTEN}


async def deliver(api: Api, inbox: dict, raw: bytes):
    stamp = str(int(api.clock.now))
    headers = {"X-Inbox-Timestamp": stamp, "X-Inbox-Signature": sign(inbox["secret"], stamp, raw),
               "Content-Type": "message/rfc822"}
    before = await counts(api)
    reply = await api.call("POST", f"/hooks/email/{inbox['id']}", data=raw, headers=headers)
    return reply, before, await counts(api)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@example(fields=[("Message-ID", "<@>")], body=b"hi", sender=True)
@example(fields=[("In-Reply-To", "<@>"), ("References", "<@> <a@b>")], body=b"hi", sender=True)
@example(fields=[("To", "<@>"), ("Subject", "=?utf-8?b?!!?=")], body=b"hi", sender=True)
@example(fields=[("Content-Type", "multipart/mixed; boundary=b")], body=b"--b\r\nContent-Type: message/rfc822\r\n"
         b"\r\nMessage-ID: <@>\r\n\r\nx\r\n--b--\r\n", sender=True)
@given(fields=headers, body=bodies, sender=st.booleans())
def test_hostile_headers_and_bodies_never_get_a_5xx(server, caplog, fields, body, sender):
    runner, api, inbox = server
    raw = render(fields, body, sender)
    with caplog.at_level(logging.ERROR):
        caplog.clear()
        reply, before, after = runner.run(deliver(api, inbox, raw))
    assert reply.status < 500, (raw, reply.text, caplog.text)
    assert reply.status in (200, 201) or 400 <= reply.status < 500, (raw, reply.status)
    if reply.status >= 400:
        assert reply.content_type == "application/problem+json", (raw, reply.text)
        assert after == before, (raw, reply.text)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], (raw, caplog.text)
