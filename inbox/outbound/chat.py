"""Chat replies to providers: the versioned payload, one signed attempt, and what came of it.

Payload version 1 (docs/outbound.md). Every attempt for a message carries the same ``webhook-id``;
the body is rebuilt per attempt only so its attachment links are fresh.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson

from auth.policy import Subject
from auth.signing import webhook_headers
from media.links import signature

from ..actions.chats import chat_facts, require_chat
from ..actions.context import Actor
from ..config import Config
from ..errors import conflict, not_found
from ..sealing import Sealer
from ..store import chats as rows
from ..store import events, outbox
from ..store.db import Database, Tx
from ..times import iso
from .addresses import PrivateAddress, check_literal
from .outcomes import RANK, Attempt, Kind, requeue

PAYLOAD_VERSION = 1
ANSWER_BYTES = 64 * 1024   # of a receiver's answer, read for its id or its reason
REASON_CHARS = 300


def link_key(sealer: Sealer) -> bytes:
    """Attachment links for providers are signed apart from users' links: a different key, so one
    can never stand for the other."""
    return sealer.derive("outbound-media")


def media_url(config: Config, sealer: Sealer, channel_id: int, media_id: int, now: float) -> tuple[str, str]:
    expires = int(now + config.outbound_link_seconds)
    sig = signature(link_key(sealer), media_id, channel_id, expires)
    return (f"{config.base_url}/hooks/chat/{channel_id}/media/{media_id}?expires={expires}&sig={sig}",
            iso(expires) or "")


def payload(config: Config, sealer: Sealer, row, now: float) -> bytes:
    attachments = []
    for a in orjson.loads(row["attachments"]):
        url, expires_at = media_url(config, sealer, row["channel_id"], a["media_id"], now)
        attachments.append({"name": a["name"], "type": a["type"], "size": a["size"], "url": url,
                            "expires_at": expires_at})
    return orjson.dumps({
        "version": PAYLOAD_VERSION, "type": "message.outgoing", "channel_id": row["channel_id"],
        "message": {"id": row["id"], "text": row["text"], "attachments": attachments,
                    "created_at": iso(row["created_at"])},
        "conversation": {"id": row["conversation_id"], "lead_id": row["lead_id"]},
        "to": {"handle": row["handle"], "contact_id": row["contact_id"]},
        "in_reply_to": row["in_reply_to"],
        "author": {"user_id": row["author_user_id"], "name": row["author_name"]},
    })


async def attempt(session: aiohttp.ClientSession, db: Database, config: Config, sealer: Sealer, item_id: int,
                  webhook_id: str) -> Attempt | None:
    """POST one message to its channel's URL. None when the message is gone (nothing to send)."""
    row = await rows.outgoing(db, item_id)
    if row is None:
        return None
    if row["channel_id"] is None or not row["outbound_url"]:
        return Attempt(None, "the channel has no outbound_url: set one (PATCH /api/v1/channels/{id}), then retry",
                       final=True)
    if row["handle"] is None:
        return Attempt(None, "the customer has no handle on this channel", final=True)
    now = config.clock()
    body = payload(config, sealer, row, now)
    headers = {"Content-Type": "application/json", "User-Agent": "inbox-outbound/1",
               **webhook_headers(sealer.open_cached(row["secret_sealed"]), webhook_id, int(now), body)}
    return await post(session, row["outbound_url"], body, headers, config)


async def post(session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str],
               config: Config) -> Attempt:
    try:
        check_literal(url, allow_private=config.outbound_allow_private)
        async with session.post(url, data=body, headers=headers, allow_redirects=False,
                                timeout=aiohttp.ClientTimeout(total=config.outbound_timeout_seconds)) as resp:
            answer = await resp.content.read(ANSWER_BYTES)
            code = resp.status
            if 200 <= code < 300:
                return Attempt(code, None, provider_id=_their_id(answer))
            reason = answer.decode("utf-8", "replace").strip()[:REASON_CHARS]
            if 300 <= code < 400:
                reason = f"redirect to {resp.headers.get('Location', '?')} not followed"
            return Attempt(code, f"HTTP {code}" + (f": {reason}" if reason else ""),
                           retry_after=resp.headers.get("Retry-After"))
    except TimeoutError:
        return Attempt(None, f"no answer within {config.outbound_timeout_seconds:g} s")
    except aiohttp.ClientError as exc:
        if _private(exc):
            return Attempt(None, f"refused: {_private(exc)}", final=True)
        return Attempt(None, f"connection failed: {exc.__class__.__name__}: {exc}"[:REASON_CHARS])
    except PrivateAddress as exc:
        return Attempt(None, f"refused: {exc}", final=True)
    except OSError as exc:
        return Attempt(None, f"connection failed: {exc}"[:REASON_CHARS])


def _private(exc: BaseException) -> str | None:
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return None
        if isinstance(seen, PrivateAddress):
            return str(seen)
        inner = getattr(seen, "os_error", None)
        seen = inner if isinstance(inner, BaseException) else (seen.__cause__ or seen.__context__)
    return None


def _their_id(answer: bytes) -> str | None:
    try:
        parsed = orjson.loads(answer) if answer else None
    except orjson.JSONDecodeError:
        return None
    if isinstance(parsed, dict) and isinstance(parsed.get("id"), (str, int)) and not isinstance(parsed["id"], bool):
        return str(parsed["id"])[:200]
    return None


async def emit_status(tx: Tx, message: dict[str, Any], now: float) -> None:
    conversation = await rows.get_conversation(tx, message["conversation_id"])
    facts = await chat_facts(tx, conversation)
    await events.emit(tx, "message.status", {**facts, "message": message}, now)


KIND = Kind("chat", "channel", rows.get_message, rows.set_delivery, emit_status)


# --- after the attempt: the provider's status callbacks, and an agent's retry ---

def moves(current: str, new: str) -> bool:
    """Whether a reported status may replace the current one: forward only, and ``failed`` only
    before the provider has said it was delivered."""
    if new == "failed":
        return current in ("queued", "sent")
    return RANK[new] > RANK[current]


async def do_status(db: Database, channel_id: int, *, message_id: int | None, provider_id: str | None,
                    status: str, reason: str | None, now: float) -> tuple[dict[str, Any], bool]:
    """Apply a provider's status callback; (the message, whether it changed). Idempotent: the same
    report again changes nothing and answers the same."""

    async def job(tx: Tx) -> tuple[dict[str, Any], bool]:
        message = await rows.outgoing_on_channel(tx, channel_id, message_id=message_id, provider_id=provider_id)
        if message is None:
            raise not_found("message")
        if not moves(message["status"], status):
            return message, False
        # The provider has the message, whatever it says next: nothing more to send.
        await outbox.remove_item(tx, "chat", message["id"], now)
        error = (reason or "the provider reported a failure") if status == "failed" else message["last_error"]
        updated = await rows.set_delivery(tx, message["id"], status=status, attempted=False, code=None, error=error)
        await emit_status(tx, updated, now)
        return updated, True

    return await db.write(job)


async def do_retry(db: Database, actor: Actor, subject: Subject, conversation_id: int,
                   message_id: int) -> dict[str, Any]:
    """Queue a failed reply again, with the webhook id it always had: the provider receives a new
    attempt it can recognise as the same message."""
    async def job(tx: Tx) -> dict[str, Any]:
        conversation, _ = await require_chat(tx, subject, conversation_id)
        message = await rows.get_message(tx, message_id)
        if message is None or message["conversation_id"] != conversation_id:
            raise not_found("message")
        if message["author_type"] != "agent" or message["webhook_id"] is None or conversation["channel_id"] is None:
            raise conflict("Only an agent's reply on a channel is sent out, so only such a message can be retried.")
        if message["status"] != "failed":
            raise conflict(f"The message is {message['status']}; only a failed message can be retried.")
        return await requeue(tx, KIND, actor, message, target_id=conversation["channel_id"], lane=conversation_id,
                             webhook_id=message["webhook_id"], noun="message",
                             data={"conversation_id": conversation_id, "webhook_id": message["webhook_id"]})

    return await db.write(job)
