"""Replies from shared inboxes: written to the thread and the outbox in one transaction, composed
(``compose``) and sent by SMTP (``smtp``) by the delivery worker, through the same retries, pause and
status events as chat replies. Rule 8 decides who may send: admins, and members of the inbox with
``mail_access``; attaching files needs ``files_access`` as well."""

from __future__ import annotations

import asyncio
from typing import Any

from auth.policy import Subject
from media.storage import MediaStore

from ..actions import media
from ..actions.context import Actor
from ..actions.inboxes import members_of, require_inbox
from ..config import Config
from ..errors import conflict, not_found
from ..sealing import Sealer
from ..store import chats as chat_rows
from ..store import emails, events, outbox
from ..store.db import Database, Tx
from . import smtp
from .compose import compose, new_message_id, references, reply_subject
from .outcomes import Attempt, Kind, requeue


async def do_reply(db: Database, actor: Actor, subject: Subject, inbox_id: int, thread_id: int, *, text: str,
                   html: str, cc: list[str], media_ids: list[int]) -> dict[str, Any]:
    async def job(tx: Tx) -> dict[str, Any]:
        inbox, members = await require_inbox(tx, subject, inbox_id)
        thread = await emails.thread(tx, inbox_id, thread_id)
        if thread is None:
            raise not_found("thread")
        if not inbox["address"] or not inbox["smtp_host"]:
            raise conflict("The inbox has no outgoing settings: an admin sets them with"
                           f" PUT /api/v1/inboxes/{inbox_id}/outgoing.")
        attachments = await media.require_attachable(tx, subject, media_ids, "media_ids") if media_ids else []
        parent = await emails.latest(tx, thread_id)
        customer = await emails.latest(tx, thread_id, incoming=True)
        if parent is None or customer is None:
            raise conflict("The thread has no email from a customer to answer.")
        message_id = new_message_id(inbox["address"])
        email = await emails.insert_outgoing(
            tx, inbox_id=inbox_id, thread_id=thread_id, message_id=message_id, in_reply_to=parent["message_id"],
            refs=references(parent["refs"], parent["message_id"]), subject=reply_subject(thread["subject"]),
            from_addr=inbox["address"], from_name=inbox["display_name"] or inbox["name"],
            to=[customer["from_addr"]], cc=cc, text=text, html=html, attachments=attachments,
            contact_id=thread["contact_id"], lead_id=thread["lead_id"], author_user_id=actor.user_id, now=actor.now)
        await emails.link_media(tx, email["id"], media_ids)
        await outbox.enqueue(tx, kind="email", target_id=inbox_id, item_id=email["id"], lane=thread_id,
                             webhook_id=message_id, now=actor.now)
        await events.emit(tx, "email.created", {"email": email, "members": members}, actor.now)
        return email

    return await db.write(job)


async def attempt(db: Database, config: Config, sealer: Sealer, files: MediaStore, item_id: int) -> Attempt | None:
    row = await emails.sending(db, item_id)
    if row is None:
        return None
    if not row["smtp_host"] or not row["inbox_address"]:
        return Attempt(None, "the inbox has no outgoing settings: set them (PUT /api/v1/inboxes/{id}/outgoing),"
                             " then retry", final=True)
    email = emails.decode(row)
    stored = await chat_rows.media_rows(db, [a["media_id"] for a in email["attachments"]])
    try:  # reading files and base64-encoding 25 MB are work for a thread, not the event loop
        raw = await asyncio.to_thread(_raw, email, row["inbox_address"], stored, files)
    except (KeyError, OSError, ValueError) as exc:  # a file gone from disk, an address the library refuses
        return Attempt(None, f"the email cannot be composed: {exc}", final=True)
    password = sealer.open_cached(row["smtp_password_sealed"]) if row["smtp_password_sealed"] else None
    verdict, code, error = await smtp.send(
        raw, row["inbox_address"], [*email["to_addrs"], *email["cc_addrs"]], host=row["smtp_host"],
        port=row["smtp_port"], security=row["smtp_security"], username=row["smtp_username"], password=password,
        allow_private=config.outbound_allow_private, timeout=config.outbound_timeout_seconds)
    return Attempt(code, error, verdict=verdict)


def _raw(email: dict[str, Any], address: str, stored: dict[int, Any], files: MediaStore) -> bytes:
    """The message as it goes on the wire (CRLF line ends), built the same on every attempt."""
    attached = [(a["name"], a["type"], files.path(stored[a["media_id"]]["sha256"]).read_bytes())
                for a in email["attachments"]]
    return bytes(compose(from_address=address, from_name=email["from_name"],
                         to=[("", to) for to in email["to_addrs"]], cc=email["cc_addrs"], subject=email["subject"],
                         message_id=email["message_id"], in_reply_to=email["in_reply_to"], refs=email["refs"],
                         text=email["text"], html=email["html"], sent_at=email["sent_at"], files=attached))


async def emit_status(tx: Tx, email: dict[str, Any], now: float) -> None:
    await events.emit(tx, "email.status", {"email": {k: email[k] for k in (
        "id", "inbox_id", "thread_id", "status", "attempts", "last_code", "last_error")},
        "members": await members_of(tx, email["inbox_id"])}, now)


KIND = Kind("email", "inbox", emails.get, emails.set_delivery, emit_status)


async def do_retry(db: Database, actor: Actor, subject: Subject, inbox_id: int, thread_id: int,
                   email_id: int) -> dict[str, Any]:
    """Queue a failed reply again: the same Message-ID, so a server that did take it after all, or
    the customer's client, sees the same message."""

    async def job(tx: Tx) -> dict[str, Any]:
        await require_inbox(tx, subject, inbox_id)
        email = await emails.get(tx, email_id)
        if email is None or email["thread_id"] != thread_id or email["inbox_id"] != inbox_id:
            raise not_found("email")
        if email["direction"] != "outgoing":
            raise conflict("Only an email the inbox sent can be sent again.")
        if email["status"] != "failed":
            raise conflict(f"The email is {email['status']}; only a failed email can be retried.")
        return await requeue(tx, KIND, actor, email, target_id=inbox_id, lane=thread_id,
                             webhook_id=email["message_id"], noun="email", data={"thread_id": thread_id})

    return await db.write(job)
