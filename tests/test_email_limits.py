"""Inbound email cannot stall the server: messages are parsed off the event loop, within limits on
parts, nesting, header count and length, addresses per header, and parse time (docs/ingestion.md).
Each limit: a message exactly at it is stored, one past it is a 413 naming it and changes nothing."""

from __future__ import annotations

import asyncio
import io
import itertools

import pytest

from conftest import FAST_HASHING

from auth.signing import sign
from inbox.keys import CONFIG

WRITTEN = ("emails", "email_threads", "media", "media_links", "events")
HEAD = b"From: Jane <jane@buyer.io>\r\nMIME-Version: 1.0\r\n"


@pytest.fixture
def config_overrides() -> dict:
    return FAST_HASHING


async def setup_inbox(api, admin) -> dict:
    r = await api.post("/api/v1/inboxes", {"name": "Sales", "user_ids": []}, who=admin)
    assert r.status == 201
    return r.body


async def post_mail(api, inbox_id: int, secret: str, raw: bytes):
    # A stream, not bytes: aiohttp's client warns when it sends a large bytes body in one piece.
    stamp = str(int(api.clock.now))
    headers = {"X-Inbox-Timestamp": stamp, "X-Inbox-Signature": sign(secret, stamp, raw),
               "Content-Type": "message/rfc822"}
    return await api.call("POST", f"/hooks/email/{inbox_id}", data=io.BytesIO(raw), headers=headers)


async def counts(api) -> dict[str, int]:
    return {t: (await api.rows(f"SELECT count(*) FROM {t}"))[0][0] for t in WRITTEN}


def msg_id(tag: str) -> bytes:
    return b"Message-ID: <" + tag.encode() + b"@buyer.io>\r\n"


def parts(tag: str, n: int, extra: bytes = b"") -> bytes:
    """A multipart message whose tree holds ``n`` parts, the root included."""
    body = b"".join(b"--b\r\nContent-Type: text/plain\r\n" + extra + b"\r\npart %d\r\n" % i for i in range(n - 1))
    return HEAD + msg_id(tag) + b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + body + b"--b--\r\n"


def nested(tag: str, depth: int) -> bytes:
    """Multiparts inside multiparts: ``depth`` levels, the innermost text part included."""
    inner = b"Content-Type: text/plain\r\n\r\ndeep\r\n"
    for level in range(depth - 1):
        b = b"n%d" % level
        inner = b"Content-Type: multipart/mixed; boundary=" + b + b"\r\n\r\n--" + b + b"\r\n" + inner + b"--" + b + b"--\r\n"
    return HEAD + msg_id(tag) + inner


def headers(tag: str, n: int) -> bytes:
    """A top-level header block of exactly ``n`` fields."""
    fixed = HEAD + msg_id(tag)
    return fixed + b"".join(b"X-Trace-%d: hop\r\n" % i for i in range(n - fixed.count(b"\r\n"))) + b"\r\nhi\r\n"


def long_header(tag: str, size: int) -> bytes:
    """A Subject field of exactly ``size`` bytes: name, colon and value."""
    name = b"Subject:"
    return HEAD + msg_id(tag) + name + b"x" * (size - len(name)) + b"\r\n\r\nhi\r\n"


def addresses(tag: str, n: int) -> bytes:
    return HEAD + msg_id(tag) + b"To: " + b", ".join(b"u%d@acme.test" % i for i in range(n)) + b"\r\n\r\nhi\r\n"


LIMITS = [("mail_max_parts", "INBOX_MAIL_MAX_PARTS", parts),
          ("mail_max_depth", "INBOX_MAIL_MAX_DEPTH", nested),
          ("mail_max_headers", "INBOX_MAIL_MAX_HEADERS", headers),
          ("mail_max_header_bytes", "INBOX_MAIL_MAX_HEADER_BYTES", long_header),
          ("mail_max_addresses", "INBOX_MAIL_MAX_ADDRESSES", addresses)]


@pytest.mark.parametrize("field,env,build", LIMITS, ids=[f for f, _, _ in LIMITS])
async def test_a_message_at_a_limit_is_stored_and_one_past_it_is_a_413_that_changes_nothing(api, admin, field, env,
                                                                                           build):
    inbox = await setup_inbox(api, admin)
    limit = getattr(api.app[CONFIG], field)
    at = await post_mail(api, inbox["id"], inbox["secret"], build("at", limit))
    assert at.status == 201, at.body
    before = await counts(api)
    over = await post_mail(api, inbox["id"], inbox["secret"], build("over", limit + 1))
    assert over.status == 413 and over.content_type == "application/problem+json", (over.status, over.text)
    assert env in over.body["detail"] and str(limit) in over.body["detail"], over.body
    assert over.body["limit"] == env
    assert await counts(api) == before


def hostile(tag: str) -> bytes:
    """Within every limit, yet about a second of parsing: each part's Content-Type holds a quoted
    parameter full of semicolons, and the standard library's parameter splitter is quadratic in them.
    Small (under 64 KiB), so it reaches the server in one piece: the time it is in flight is the
    parse, not the upload. Long enough that a scheduling hiccup of a loaded machine (a few hundred
    milliseconds) stays well under half of it."""
    content_type = b'text/plain; charset=utf-8; a="' + b";" * 12000 + b'"'
    body = b"".join(b"--b\r\nContent-Type: " + content_type + b"\r\n\r\npart %d\r\n" % i for i in range(5))
    return HEAD + msg_id(tag) + b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + body + b"--b--\r\n"


async def test_other_requests_progress_while_a_heavy_message_is_parsed(api, admin):
    inbox = await setup_inbox(api, admin)
    # Warm up: the first email starts the parsing workers, which is not what this test measures.
    assert (await post_mail(api, inbox["id"], inbox["secret"], addresses("warm", 1))).status == 201
    raw = hostile("heavy")
    assert len(raw) < 64 * 1024
    loop = asyncio.get_running_loop()
    started, ended, answered = loop.time(), [], []
    heavy = asyncio.create_task(post_mail(api, inbox["id"], inbox["secret"], raw))
    heavy.add_done_callback(lambda _: ended.append(loop.time()))
    while not heavy.done():
        health = await api.get("/healthz")
        assert health.status == 200
        if not heavy.done():
            answered.append(loop.time())
    reply = heavy.result()
    assert reply.status == 201, reply.body
    # Progress, relative to the heavy message's own flight: on the event loop its parse was one long
    # silence (about nine tenths of the flight) with health answers only before and after it; off the
    # loop they keep coming, and no half of the flight passes without one.
    moments = [started, *answered, ended[0]]
    longest_silence = max(b - a for a, b in itertools.pairwise(moments))
    assert longest_silence < (ended[0] - started) / 2, (longest_silence, ended[0] - started, len(answered))


@pytest.mark.parametrize("config_overrides", [{**FAST_HASHING, "mail_parse_seconds": 0.2}])
async def test_a_message_over_the_parse_time_budget_is_a_413_that_changes_nothing(api, admin):
    inbox = await setup_inbox(api, admin)
    config = api.app[CONFIG]
    # Within every structural limit, but each part's parameters cost the parser seconds.
    slow = b'multipart/mixed; boundary=x; a="' + b";" * (config.mail_max_header_bytes - 60) + b'"'
    body = b"".join(b"--b\r\nContent-Type: " + slow + b"\r\n\r\n--x--\r\n" for _ in range(config.mail_max_parts // 2 - 1))
    raw = HEAD + msg_id("slow") + b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + body + b"--b--\r\n"
    before = await counts(api)
    reply = await post_mail(api, inbox["id"], inbox["secret"], raw)
    assert reply.status == 413 and reply.body["limit"] == "INBOX_MAIL_PARSE_SECONDS", (reply.status, reply.text)
    assert await counts(api) == before
    # The pool still parses the next message.
    assert (await post_mail(api, inbox["id"], inbox["secret"], addresses("after", 2))).status == 201
