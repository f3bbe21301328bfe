"""Incoming chat messages from channel webhooks (SPEC section 5).

Everything a delivery creates (contact, lead, conversation, message, media rows, the dedupe record
and the events) is one write job: the 2xx is sent only after it committed, and a retried or
concurrent delivery with the same provider id finds the dedupe record and gets the first answer.
"""

from __future__ import annotations

import base64
import secrets
from typing import Any

import orjson

from ..errors import conflict, invalid, not_found
from ..sealing import Sealer
from ..store import activity, catalog, outbox
from ..store import channels as channel_rows
from ..store import chats as chat_rows
from ..store import emails as mail_rows
from ..store import records as record_rows
from ..store.db import Database, Tx
from . import workflow
from .chats import emit_message, facts_on_channel
from .context import Actor
from .media import insert_media
from .records import check_user, emit_lead, new_lead_card
from .render import sending_state


def new_secret() -> str:
    """``whsec_`` and 32 random bytes in standard base64: the Standard Webhooks secret format, so a
    provider can verify our outgoing calls with that scheme's own libraries (docs/outbound.md)."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def secrets_of(sealer: Sealer, channel, now: float) -> list[str]:
    """The secrets a signature may use: the current one, and the previous one during its overlap."""
    out = [sealer.open_cached(channel["secret_sealed"])]
    if channel["previous_sealed"] and (channel["previous_until"] or 0) > now:
        out.append(sealer.open_cached(channel["previous_sealed"]))
    return out


def channel_json(row, state: dict[str, Any] | None = None) -> dict[str, Any]:
    """A channel, with its outbound state (``store.outbox.target``): paused, and failures in a row."""
    return {"id": row["id"], "name": row["name"], "pipeline_id": row["pipeline_id"],
            "responsible_user_id": row["responsible_user_id"], "webhook": f"/hooks/chat/{row['id']}",
            "outbound_url": row["outbound_url"], **sending_state(state)}


async def do_update_channel(db: Database, actor: Actor, channel_id: int, changes: dict[str, Any]) -> None:
    """Rename a channel or set its outbound URL (checked by the caller: ``outbound.addresses``)."""

    async def job(tx: Tx) -> None:
        row = await channel_rows.get(tx, channel_id)
        if row is None:
            raise not_found("channel")
        before = {"name": row["name"], "outbound_url": row["outbound_url"]}
        after = {**before, **changes}
        if after == before:
            return
        await channel_rows.update(tx, channel_id, name=after["name"], outbound_url=after["outbound_url"], now=actor.now)
        await activity.append(tx, at=actor.now, actor_id=actor.user_id, ip=actor.ip, type="channel.updated",
                              object_type="channel", object_id=channel_id, data={"before": before, "after": after})

    await db.write(job)


OUTBOX_KINDS = {"channels": "chat", "inboxes": "email"}  # the outbox kind of each target table


async def do_resume(db: Database, actor: Actor, table: str, target_id: int) -> None:
    """Restart a paused channel's or inbox's queue: everything waiting in it is due now."""
    noun = SIGNED[table]

    async def job(tx: Tx) -> None:
        if not await channel_rows.signed_exists(tx, table, target_id):
            raise not_found(noun)
        if not await outbox.resume(tx, OUTBOX_KINDS[table], target_id, actor.now):
            raise conflict(f"The {noun} is not paused.")
        await activity.append(tx, at=actor.now, actor_id=actor.user_id, ip=actor.ip, type=f"{noun}.resumed",
                              object_type=noun, object_id=target_id)

    await db.write(job)


async def do_create_channel(db: Database, sealer: Sealer, actor: Actor, *, name: str, pipeline_id: int,
                            responsible_user_id: int | None) -> tuple[int, str]:
    secret = new_secret()

    async def job(tx: Tx) -> int:
        if await catalog.first_stage(tx, pipeline_id) is None:
            raise invalid(f"pipeline {pipeline_id} does not exist or has no stages",
                          [{"path": "pipeline_id", "message": "unknown pipeline"}])
        owner = responsible_user_id or actor.user_id
        await check_user(tx, owner)  # the channel's contacts and leads will be theirs
        cid = await channel_rows.insert(tx, name=name, pipeline_id=pipeline_id, responsible_user_id=owner,
                                        secret_sealed=sealer.seal(secret), now=actor.now)
        await activity.append(tx, at=actor.now, actor_id=actor.user_id, ip=actor.ip, type="channel.created",
                              object_type="channel", object_id=cid, data={"name": name, "pipeline_id": pipeline_id})
        return cid

    return await db.write(job), secret


SIGNED = {"channels": "channel", "inboxes": "inbox"}


async def do_rotate_secret(db: Database, sealer: Sealer, actor: Actor, table: str, row_id: int,
                           overlap: float) -> str:
    """A new signing secret for a channel or an inbox; the previous one stays valid for ``overlap``."""
    kind = SIGNED[table]
    secret = new_secret()

    async def job(tx: Tx) -> None:
        if not await channel_rows.signed_exists(tx, table, row_id):
            raise not_found(kind)
        await channel_rows.rotate(tx, table, row_id, sealer.seal(secret), actor.now + overlap, actor.now)
        await activity.append(tx, at=actor.now, actor_id=actor.user_id, ip=actor.ip, type=f"{kind}.secret_rotated",
                              object_type=kind, object_id=row_id, data={"previous_valid_until": actor.now + overlap})

    await db.write(job)
    return secret


async def do_delete_channel(db: Database, actor: Actor, channel_id: int) -> None:
    async def job(tx: Tx) -> None:
        if await channel_rows.get(tx, channel_id) is None:
            raise not_found("channel")
        if await channel_rows.has_conversations(tx, channel_id):
            raise conflict("The channel has conversations; they keep it. Rotate its secret to stop deliveries.")
        await channel_rows.delete(tx, channel_id)
        await activity.append(tx, at=actor.now, actor_id=actor.user_id, ip=actor.ip, type="channel.deleted",
                              object_type="channel", object_id=channel_id)

    await db.write(job)


async def do_incoming(db: Database, channel, payload: dict[str, Any], files: list[dict[str, Any]],
                      now: float) -> tuple[dict[str, Any], bool]:
    """Store one incoming message. ``files`` are already on disk: [{sha256, type, name, size}].
    Returns (result, duplicate). Statements are few on purpose (a known sender's delivery is seven):
    every one is paid by every delivery."""
    channel_id, sender = channel["id"], payload["from"]

    async def job(tx: Tx) -> tuple[dict[str, Any], bool]:
        live, seen, contact_id = await channel_rows.delivery_facts(tx, channel_id, payload["id"], sender["handle"])
        if live is None:  # deleted after the request read it: a 404, not a foreign-key failure
            raise not_found("channel")
        if seen is not None:
            return orjson.loads(seen), True
        if contact_id is None:
            contact, conversation = await _new_sender(tx, channel, sender, now)
            contact_id = contact["id"]
        else:
            contact = await record_rows.get(tx, "contacts", contact_id)
            conversation = await chat_rows.on_channel(tx, channel_id, contact_id)
            if conversation is None:  # a known handle whose conversations are gone: start a new one
                lead_id = await mail_rows.latest_lead_of(tx, contact_id)
                await chat_rows.insert_conversation(tx, contact_id, lead_id, "chat", now, channel_id)
                conversation = await chat_rows.on_channel(tx, channel_id, contact_id)
        attachments = []
        for f in files:
            mid = await insert_media(tx, sha256=f["sha256"], kind=f["type"], name=f["name"], size=f["size"],
                                     user_id=None, now=now)
            await chat_rows.link_media(tx, conversation["id"], [mid])
            attachments.append({"media_id": mid, "type": f["type"], "name": f["name"], "size": f["size"]})
        message = await chat_rows.insert_message(tx, conversation["id"], author_type="contact", author_user_id=None,
                                                 text=payload.get("text", ""), attachments=attachments, now=now,
                                                 provider_id=payload["id"])
        facts = facts_on_channel(conversation, contact)
        await emit_message(tx, facts, message, now)
        await workflow.customer_message(tx, Actor(None, WEBHOOK, now), facts, conversation, message["id"])
        result = {"message_id": message["id"], "conversation_id": conversation["id"], "contact_id": contact_id,
                  "lead_id": conversation["lead_id"]}
        await channel_rows.remember(tx, channel_id, payload["id"], result, now)
        return result, False

    return await db.write(job)


async def _new_sender(tx: Tx, channel, sender: dict[str, Any], now: float):
    """A sender new to the channel: a contact, its handle, an incoming lead in the first stage of the
    channel's pipeline (announced as ``lead.created``) and a conversation. Returns (contact, conversation)."""
    stage = await catalog.first_stage(tx, channel["pipeline_id"])
    if stage is None:
        raise conflict(f"The channel's pipeline {channel['pipeline_id']} has no stage to put a new lead in.")
    display = sender.get("name") or sender["handle"]
    contact = await record_rows.insert_row(tx, "contacts", {
        "name": display, "avatar": sender.get("avatar"), "emails": [],
        "phones": [sender["handle"]] if sender["handle"].lstrip("+").isdigit() else [],
        "responsible_user_id": channel["responsible_user_id"], "custom": {}}, now)
    await channel_rows.add_handle(tx, channel["id"], sender["handle"], contact["id"])
    lead = await record_rows.insert_row(tx, "leads", {
        "name": f"{display} ({channel['name']})", "price": 0, "pipeline_id": channel["pipeline_id"],
        "stage_id": stage["id"], "responsible_user_id": channel["responsible_user_id"], "company_id": None,
        "custom": {}}, now)
    await record_rows.set_lead_contacts(tx, lead["id"], [contact["id"]])
    await _log_created(tx, channel["id"], "contact", contact, now)
    await _log_created(tx, channel["id"], "lead", lead, now, contact_ids=[contact["id"]])
    await emit_lead(tx, Actor(None, WEBHOOK, now), "lead.created", lead["id"], card=new_lead_card(lead, [contact]))
    cid = await chat_rows.insert_conversation(tx, contact["id"], lead["id"], "chat", now, channel["id"])
    conversation = {"id": cid, "lead_id": lead["id"], "contact_id": contact["id"], "assignee_id": None,
                    "status": "open", "lead_row": lead["id"],
                    "lead_pipeline_id": lead["pipeline_id"], "lead_stage_id": lead["stage_id"],
                    "lead_responsible_user_id": lead["responsible_user_id"], "subscribers": "[]"}
    return contact, conversation


WEBHOOK = "webhook"  # the ``ip`` of what a webhook did: there is no user, and the channel is in the data


async def _log_created(tx: Tx, channel_id: int, kind: str, row: dict[str, Any], now: float, **extra: Any) -> None:
    """A record made by a delivery is logged like one made over the API (``<kind>.created`` with the
    record as ``after``), with no actor: an admin filtering by user does not find it under anyone."""
    after = {k: v for k, v in row.items() if k not in ("id", "created_at", "updated_at", "custom")}
    after.update(custom_fields=row.get("custom") or {}, **extra)
    await activity.append(tx, at=now, actor_id=None, ip=WEBHOOK, type=f"{kind}.created", object_type=kind,
                          object_id=row["id"], data={"after": after, "channel_id": channel_id})
