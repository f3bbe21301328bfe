"""Lead-card chats: who may open one (rule 5 and 6), agent replies, read marks. Every message is an
event, written in the same transaction, so the hub delivers exactly what was committed."""

from __future__ import annotations

import secrets
from typing import Any

import orjson

from auth.access import chat_visible
from auth.policy import Subject

from ..errors import invalid, not_found
from ..store import chats as rows
from ..store import events, outbox
from ..store import records as record_rows
from ..store.db import Database, Tx
from . import media, records  # modules, not names: media imports this one back
from .context import Actor


async def chat_facts(db: Database | Tx, conversation) -> dict[str, Any]:
    """What the access rule needs: the lead's cell, its subscribers, the contact (the event shape)."""
    lead = await record_rows.get(db, "leads", conversation["lead_id"]) if conversation["lead_id"] else None
    return {"conversation": {"id": conversation["id"], "lead_id": conversation["lead_id"],
                             "contact_id": conversation["contact_id"]},
            "lead": {k: lead[k] for k in ("id", "pipeline_id", "stage_id", "responsible_user_id")} if lead else None,
            "subscribers": await record_rows.subscribers(db, lead["id"]) if lead else [],
            "contact": await record_rows.get(db, "contacts", conversation["contact_id"])}


def facts_on_channel(conversation, contact: dict[str, Any]) -> dict[str, Any]:
    """``chat_facts`` from a ``store.chats.on_channel`` row and the contact already at hand."""
    lead = None
    if conversation["lead_row"] is not None:
        lead = {"id": conversation["lead_row"], "pipeline_id": conversation["lead_pipeline_id"],
                "stage_id": conversation["lead_stage_id"],
                "responsible_user_id": conversation["lead_responsible_user_id"]}
    return {"conversation": {"id": conversation["id"], "lead_id": conversation["lead_id"],
                             "contact_id": conversation["contact_id"]},
            "lead": lead, "subscribers": sorted(orjson.loads(conversation["subscribers"])) if lead else [],
            "contact": contact}


async def require_chat(db: Database | Tx, subject: Subject, conversation_id: int) -> tuple[Any, dict[str, Any]]:
    conversation = await rows.get_conversation(db, conversation_id)
    if conversation is None:
        raise not_found("conversation")
    facts = await chat_facts(db, conversation)
    if not chat_visible(subject, facts):
        raise not_found("conversation")
    return conversation, facts


async def do_open(db: Database, actor: Actor, subject: Subject, contact_id: int, lead_id: int | None) -> int:
    """Open a conversation with a contact, optionally on a lead. Each record named must be one the
    agent may see, and an unseen one answers exactly as a missing one (rule 14): the lead through a
    view right or a subscription (rule 5: what reading its chat needs; seeing the contact is not
    enough, or a message would reach the lead's readers from someone who cannot see the lead); the
    contact through a view right, or by being on that lead's card (rule 6)."""

    async def job(tx: Tx) -> int:
        lead = await records.visible(tx, subject, "leads", lead_id) if lead_id is not None else None
        if lead_id is not None and lead is None:
            raise not_found("lead")
        contact = await record_rows.get(tx, "contacts", contact_id)
        on_card = lead is not None and contact_id in (await record_rows.lead_contacts(tx, [lead_id]))[lead_id]
        if contact is None or not (on_card or subject.can_entity("contacts", "view", contact["responsible_user_id"])):
            raise not_found("contact")
        return await rows.insert_conversation(tx, contact_id, lead_id, "internal", actor.now)

    return await db.write(job)


async def do_reply(db: Database, actor: Actor, subject: Subject, conversation_id: int, text: str,
                   media_ids: list[int]) -> dict[str, Any]:
    """Store an agent's reply and announce it; the stored message (as ``get_message`` gives it)."""
    async def job(tx: Tx) -> dict[str, Any]:
        conversation, facts = await require_chat(tx, subject, conversation_id)
        attachments = await media.require_attachable(tx, subject, media_ids) if media_ids else []
        # On a channel the reply goes out through the outbox, written in this same transaction: a
        # crash after the 201 cannot lose it (docs/outbound.md). Internal conversations send nothing.
        channel_id = conversation["channel_id"]
        webhook_id = "msg_" + secrets.token_urlsafe(18) if channel_id is not None else None
        message = await rows.insert_message(tx, conversation_id, author_type="agent", author_user_id=actor.user_id,
                                            text=text, attachments=attachments, now=actor.now,
                                            status="queued" if webhook_id else "sent", webhook_id=webhook_id)
        if webhook_id is not None:
            await outbox.enqueue(tx, kind="chat", target_id=channel_id, item_id=message["id"], lane=conversation_id,
                                 webhook_id=webhook_id, now=actor.now)
        # The files now belong to this chat too: whoever reads it may download them (rule 9).
        await rows.link_media(tx, conversation_id, media_ids)
        await emit_message(tx, facts, message, actor.now)
        return message

    return await db.write(job)


async def emit_message(tx: Tx, facts: dict[str, Any], message: dict[str, Any], now: float) -> None:
    await events.emit(tx, "message.created", {**facts, "message": message}, now)


async def do_mark_read(db: Database, actor: Actor, subject: Subject, conversation_id: int, message_id: int) -> None:
    async def job(tx: Tx) -> None:
        await require_chat(tx, subject, conversation_id)
        message = await rows.get_message(tx, message_id)
        if message is None or message["conversation_id"] != conversation_id:
            raise invalid("that message is not in this conversation",
                          [{"path": "message_id", "message": "not in conversation"}])
        await rows.mark_read(tx, actor.user_id, conversation_id, message_id)

    await db.write(job)
