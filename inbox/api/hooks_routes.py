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
from media.links import valid

from .. import mail, mailpool
from ..actions import inboxes, ingest
from ..actions.media import check_file, store_file
from ..keys import CONFIG, DB, MEDIA, OUTBOUND, SEALER
from ..outbound import addresses, chat
from ..store import channels as channel_rows
from ..store import chats as chat_rows
from ..store import outbox
from . import record_models as m
from .common import actor
from .media_routes import file_response, read_capped
from .problems import Problem, forbidden, invalid, not_found
from .responses import Channel, ChannelCreated, ChannelList, ChatDelivery, DeliveryStatusAck, EmailDelivery, Secret
from .routing import Access, body, int_id, json_response, registry, validate

route = registry.route


@route("GET", "/api/v1/channels", response=ChannelList, access=Access.ADMIN, tag="channels",
       summary="List chat channels (admin)")
async def list_channels(request: web.Request) -> web.Response:
    rows = await channel_rows.all_rows(request.app[DB])
    states = await outbox.targets(request.app[DB], "chat")
    return json_response({"items": [ingest.channel_json(r, states.get(r["id"])) for r in rows]})


async def _channel(request: web.Request, channel_id: int) -> web.Response:
    row = await channel_rows.get(request.app[DB], channel_id)
    if row is None:
        raise not_found("channel")
    return json_response(ingest.channel_json(row, await outbox.target(request.app[DB], "chat", channel_id)))


@route("PATCH", "/api/v1/channels/{id}", response=Channel, access=Access.ADMIN, tag="channels", body=m.ChannelPatch,
       summary="Rename a channel or set the URL agents' replies are sent to (admin; docs/outbound.md)")
async def update_channel(request: web.Request) -> web.Response:
    data: m.ChannelPatch = await body(request)
    changes = data.model_dump(exclude_unset=True)
    if changes.get("name", "") is None:
        raise invalid("name cannot be null", [{"path": "name", "message": "cannot be null"}])
    if "outbound_url" in changes:
        changes["outbound_url"] = changes["outbound_url"] or None
        if changes["outbound_url"]:
            await _check_outbound_url(request, changes["outbound_url"])
    await ingest.do_update_channel(request.app[DB], actor(request), int_id(request), changes)
    return await _channel(request, int_id(request))


async def _check_outbound_url(request: web.Request, url: str) -> None:
    allow = request.app[CONFIG].outbound_allow_private
    problem = addresses.url_problem(url, allow_private=allow)
    if problem is None and not allow:  # a name is checked again at every connection (DNS can change)
        problem = await addresses.resolution_problem(url)
    if problem:
        raise invalid(f"outbound_url is not usable: {problem}.", [{"path": "outbound_url", "message": problem}])


@route("POST", "/api/v1/channels/{id}/resume", response=Channel, access=Access.ADMIN, tag="channels",
       summary="Restart a channel whose deliveries were paused after repeated failures (admin)")
async def resume_channel(request: web.Request) -> web.Response:
    await ingest.do_resume(request.app[DB], actor(request), "channels", int_id(request))
    request.app[OUTBOUND].wake()
    return await _channel(request, int_id(request))


@route("POST", "/api/v1/channels", response=ChannelCreated, access=Access.ADMIN, tag="channels", body=m.ChannelIn,
       status=201, summary="Create a chat channel; its signing secret is shown once (admin)")
async def create_channel(request: web.Request) -> web.Response:
    data: m.ChannelIn = await body(request)
    cid, secret = await ingest.do_create_channel(request.app[DB], request.app[SEALER], actor(request), name=data.name,
                                                 pipeline_id=data.pipeline_id,
                                                 responsible_user_id=data.responsible_user_id)
    row = await channel_rows.get(request.app[DB], cid)
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


@route("POST", "/hooks/chat/{channel}/status", response=DeliveryStatusAck, access=Access.PUBLIC, tag="hooks",
       summary="A chat provider reports a reply delivered, read or failed (signed like deliveries; forward only)")
async def status_hook(request: web.Request) -> web.Response:
    channel, raw = await verified(request, "channels", "channel", 0)
    data = validate(m.DeliveryStatus, _json_object(raw))
    message, changed = await chat.do_status(request.app[DB], channel["id"], message_id=data.message_id,
                                            provider_id=data.provider_message_id, status=data.status,
                                            reason=data.reason, now=request.app[CONFIG].clock())
    return json_response({"message_id": message["id"], "status": message["status"], "changed": changed})


@route("GET", "/hooks/chat/{channel}/media/{id}", media="*/*", access=Access.PUBLIC, tag="hooks",
       summary="A provider downloads an attachment of a reply through the signed link in its payload")
async def provider_download(request: web.Request) -> web.StreamResponse:
    channel_id = int_id(request, "channel")
    mid = int_id(request)
    try:
        expires, sig = int(request.query.get("expires", "")), request.query.get("sig", "")
    except ValueError:
        raise forbidden("The link is not valid.") from None
    if not valid(chat.link_key(request.app[SEALER]), mid, channel_id, expires, sig, request.app[CONFIG].clock()):
        raise forbidden("The link is not valid or has expired; the next attempt carries a new one.")
    row = await chat_rows.media_on_channel(request.app[DB], mid, channel_id)
    if row is None:
        raise not_found("file")
    return file_response(request, row)


def _json_object(raw: bytes) -> dict:
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise invalid(f"The body is not valid JSON: {exc}.", [{"path": "$", "message": "malformed JSON"}]) from None
    if not isinstance(parsed, dict):
        raise invalid("The body must be a JSON object.", [{"path": "$", "message": "expected an object"}])
    return parsed


def _explain(raw: bytes) -> m.IncomingMessage:
    """A body the fast path refused, parsed again in two steps so the 422 is worded like every other
    route's (malformed JSON, not an object, or the fields' errors). Only refused bodies pay for it."""
    return validate(m.IncomingMessage, _json_object(raw))


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
