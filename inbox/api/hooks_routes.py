"""/channels (admin) and /hooks/chat/{channel}: signed deliveries from chat providers.

Order of checks, each a problem response that writes nothing: unknown channel (404), body over the
cap (413, before any HMAC work), bad or missing signature or stale timestamp (401), malformed JSON
or fields (422). Then one transaction stores everything and the answer is sent after COMMIT.
"""

from __future__ import annotations

import base64
import binascii

import orjson
from aiohttp import web
from pydantic import ValidationError

from auth.signing import check

from .. import mail, mailpool
from ..actions import inboxes, ingest
from ..actions.media import check_file, store_file
from ..keys import CONFIG, DB, MEDIA, SEALER
from . import record_models as m
from .common import actor
from .media_routes import read_capped
from .problems import Problem, invalid, not_found
from .responses import ChannelCreated, ChannelList, ChatDelivery, EmailDelivery, Secret
from .routing import Access, body, int_id, json_response, registry, validate

route = registry.route


@route("GET", "/api/v1/channels", response=ChannelList, access=Access.ADMIN, tag="channels",
       summary="List chat channels (admin)")
async def list_channels(request: web.Request) -> web.Response:
    rows = await request.app[DB].fetchall("SELECT * FROM channels ORDER BY id")
    return json_response({"items": [ingest.channel_json(r) for r in rows]})


@route("POST", "/api/v1/channels", response=ChannelCreated, access=Access.ADMIN, tag="channels", body=m.ChannelIn,
       status=201, summary="Create a chat channel; its signing secret is shown once (admin)")
async def create_channel(request: web.Request) -> web.Response:
    data: m.ChannelIn = await body(request)
    cid, secret = await ingest.do_create_channel(request.app[DB], request.app[SEALER], actor(request), name=data.name,
                                                 pipeline_id=data.pipeline_id,
                                                 responsible_user_id=data.responsible_user_id)
    row = await request.app[DB].fetchone("SELECT * FROM channels WHERE id = ?", (cid,))
    return json_response({**ingest.channel_json(row), "secret": secret}, status=201)


@route("POST", "/api/v1/channels/{id}/rotate", response=Secret, access=Access.ADMIN, tag="channels",
       summary="A new signing secret, shown once; the old one keeps working for a day (admin)")
async def rotate(request: web.Request) -> web.Response:
    secret = await ingest.do_rotate_secret(request.app[DB], request.app[SEALER], actor(request), "channels",
                                           int_id(request), request.app[CONFIG].secret_overlap_seconds)
    return json_response({"secret": secret})


@route("DELETE", "/api/v1/channels/{id}", access=Access.ADMIN, tag="channels", status=204,
       summary="Delete a channel without conversations (admin)")
async def delete_channel(request: web.Request) -> web.Response:
    await ingest.do_delete_channel(request.app[DB], actor(request), int_id(request))
    return web.Response(status=204)


async def verified(request: web.Request, table: str, key: str, slack: int):
    """The signing row (channel or inbox) and the raw body, in the order of checks the hooks promise:
    404 unknown target, 413 over the cap (before any HMAC work), 401 bad signature or stale time."""
    db, config = request.app[DB], request.app[CONFIG]
    row = await db.cached_row(table, int_id(request, key))  # memory, invalidated by the writer: store/rowcache.py
    if row is None:
        raise not_found(ingest.SIGNED[table])
    # Base64 grows files by 4/3: the cap leaves room for the largest allowed attachment.
    raw = await read_capped(request, config.media_max_bytes * 4 // 3 + slack)
    problem = check(ingest.secrets_of(request.app[SEALER], row, config.clock()),
                    request.headers.get("X-Inbox-Timestamp"), request.headers.get("X-Inbox-Signature"), raw,
                    now=config.clock())
    if problem:
        raise Problem(401, "bad-signature", "Signature not accepted", problem + ".")
    return row, raw


@route("POST", "/hooks/chat/{channel}", response=ChatDelivery, status=201, also=(200,), access=Access.PUBLIC,
       tag="hooks", summary="A chat provider delivers a message (HMAC-SHA256 signed; provider ids deduplicated)")
async def chat_hook(request: web.Request) -> web.Response:
    db, config = request.app[DB], request.app[CONFIG]
    channel, raw = await verified(request, "channels", "channel", 64 * 1024)
    try:
        payload = m.IncomingMessage.model_validate_json(raw)  # one pass over the bytes
    except ValidationError:
        payload = _explain(raw)
    found = []
    for i, f in enumerate(payload.attachments):
        try:
            found.append({"name": f.name, "data": base64.b64decode(f.data, validate=True)})
        except (binascii.Error, ValueError):
            raise invalid(f"attachments.{i}.data is not base64",
                          [{"path": f"attachments.{i}.data", "message": "not base64"}]) from None
    files = await _files(request, found)
    sender = payload.sender
    message = {"id": payload.id, "from": {"handle": sender.handle, "name": sender.name, "avatar": sender.avatar},
               "text": payload.text}
    result, duplicate = await ingest.do_incoming(db, channel, message, files, config.clock())
    return json_response({**result, "duplicate": duplicate}, status=200 if duplicate else 201)


def _explain(raw: bytes) -> m.IncomingMessage:
    """A body the fast path refused, parsed again in two steps so the 422 is worded like every other
    route's (malformed JSON, not an object, or the fields' errors). Only refused bodies pay for it."""
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise invalid(f"The body is not valid JSON: {exc}.", [{"path": "$", "message": "malformed JSON"}]) from None
    if not isinstance(parsed, dict):
        raise invalid("The body must be a JSON object.", [{"path": "$", "message": "expected an object"}])
    return validate(m.IncomingMessage, parsed)


async def _files(request: web.Request, found: list[dict]) -> list[dict]:
    """Check and store attachments; each over the limit is 413, a mismatched type 415."""
    config = request.app[CONFIG]
    files = []
    for i, f in enumerate(found):
        if len(f["data"]) > config.media_max_bytes:
            raise Problem(413, "too-large", "Too large", f"attachment {i} is over {config.media_max_bytes} bytes.")
        files.append({"data": f["data"], "type": check_file(f["data"], f["name"], max_pixels=config.media_max_pixels),
                      "name": f["name"], "size": len(f["data"])})
    for f in files:
        f["sha256"] = await store_file(request.app[MEDIA], f.pop("data"))
    return files


@route("POST", "/hooks/email/{inbox}", response=EmailDelivery, status=201, also=(200,), access=Access.PUBLIC,
       tag="hooks",
       summary="Deliver one raw RFC 5322 email to a shared inbox (signed like chat hooks; Message-ID deduplicated)")
async def email_hook(request: web.Request) -> web.Response:
    db, config = request.app[DB], request.app[CONFIG]
    inbox, raw = await verified(request, "inboxes", "inbox", 256 * 1024)
    inbox_id = inbox["id"]
    try:  # in a worker process, within the limits (inbox/mailpool.py): one message cannot stall others
        parsed = await mailpool.parse(raw, mail.Limits.of(config), workers=config.mail_workers,
                                      seconds=config.mail_parse_seconds)
    except mail.LimitError as exc:
        raise Problem(413, "too-large", "Too large", exc.detail, limit=exc.limit) from None
    except mail.MailError as exc:
        raise invalid(f"The body is not a valid RFC 5322 message: {exc}",
                      [{"path": "$", "message": "malformed MIME"}]) from None
    except mailpool.Unavailable as exc:
        problem = Problem(503, "unavailable", "Try again", f"{exc}.")
        problem.headers["Retry-After"] = "1"
        raise problem from None
    files = await _files(request, parsed.pop("attachments"))
    result, duplicate = await inboxes.do_incoming(db, inbox_id, parsed, files, config.clock())
    return json_response({**result, "duplicate": duplicate}, status=200 if duplicate else 201)
