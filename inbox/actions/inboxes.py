"""Shared inboxes and inbound email. Rule 8: an email is visible to admins, and to users with
mail_access who are members of its inbox; in a lead's timeline it also needs the lead rule."""

from __future__ import annotations

from typing import Any

from auth.access import email_visible
from auth.policy import Subject

from ..errors import invalid, not_found
from ..sealing import Sealer
from ..store import activity, events
from ..store import emails as mail_rows
from ..store import inboxes as inbox_rows
from ..store import records as record_rows
from ..store import users as user_rows
from ..store.db import Database, Tx
from . import workflow
from .context import Actor
from .ingest import new_secret
from .media import insert_media
from .people import access_changed
from .render import sending_state

members_of = inbox_rows.members_of


async def visible_inbox_ids(db: Database, subject: Subject) -> list[int]:
    if subject.is_admin:
        return await inbox_rows.all_ids(db)
    if not subject.rights.mail_access:
        return []
    return await inbox_rows.ids_of_member(db, subject.user_id)


async def require_inbox(db: Database | Tx, subject: Subject, inbox_id: int) -> tuple[Any, list[int]]:
    """The inbox and its members, if the subject may read it (rule 8); else 404 as for a missing one."""
    row = await inbox_rows.get(db, inbox_id)
    members = await members_of(db, inbox_id) if row is not None else []
    if row is None or not email_visible(subject, members):
        raise not_found("inbox")
    return row, members


def outgoing_json(row, state: dict[str, Any] | None = None) -> dict[str, Any]:
    """An inbox's outgoing settings as admins see them: never the password, only whether there is
    one; with its sending state (``store.outbox.target``)."""
    return {"address": row["address"], "display_name": row["display_name"], "host": row["smtp_host"],
            "port": row["smtp_port"], "security": row["smtp_security"], "username": row["smtp_username"],
            "has_password": row["smtp_password_sealed"] is not None, **sending_state(state)}


async def do_set_outgoing(db: Database, sealer: Sealer, actor: Actor, inbox_id: int, settings: dict[str, Any],
                          password: str | None, keep_password: bool) -> None:
    """Replace an inbox's outgoing settings (checked by the caller); the password is kept when
    ``keep_password``, else replaced (None: removed)."""

    async def job(tx: Tx) -> None:
        row = await inbox_rows.get(tx, inbox_id)
        if row is None:
            raise not_found("inbox")
        sealed = row["smtp_password_sealed"] if keep_password else (sealer.seal(password) if password else None)
        values = {"address": settings["address"], "display_name": settings["display_name"],
                  "smtp_host": settings["host"], "smtp_port": settings["port"],
                  "smtp_security": settings["security"], "smtp_username": settings["username"]}
        await mail_rows.set_outgoing(tx, inbox_id, values, sealed, actor.now)
        after = {**settings, "has_password": sealed is not None}
        await activity.append(tx, at=actor.now, actor_id=actor.user_id, ip=actor.ip, type="inbox.outgoing_changed",
                              object_type="inbox", object_id=inbox_id,
                              data={"before": outgoing_json(row), "after": after})

    await db.write(job)


def inbox_json(row, members: list[int]) -> dict[str, Any]:
    return {"id": row["id"], "name": row["name"], "member_ids": members, "webhook": f"/hooks/email/{row['id']}"}


async def _check_users(tx: Tx, user_ids: list[int]) -> None:
    missing = sorted(set(user_ids) - await user_rows.existing(tx, user_ids))
    if missing:
        raise invalid(f"users {missing} do not exist", [{"path": "user_ids", "message": f"unknown {missing}"}])


async def do_create(db: Database, sealer: Sealer, actor: Actor, name: str, user_ids: list[int]) -> tuple[int, str]:
    secret = new_secret()

    async def job(tx: Tx) -> int:
        await _check_users(tx, user_ids)
        iid = await inbox_rows.insert(tx, name, sealer.seal(secret), actor.now)
        await inbox_rows.set_members(tx, iid, user_ids)
        await activity.append(tx, at=actor.now, actor_id=actor.user_id, ip=actor.ip, type="inbox.created",
                              object_type="inbox", object_id=iid, data={"name": name, "user_ids": sorted(set(user_ids))})
        return iid

    return await db.write(job), secret


async def do_set_members(db: Database, actor: Actor, inbox_id: int, user_ids: list[int]) -> None:
    async def job(tx: Tx) -> None:
        if not await inbox_rows.exists(tx, inbox_id):
            raise not_found("inbox")
        await _check_users(tx, user_ids)
        before = await members_of(tx, inbox_id)
        await inbox_rows.set_members(tx, inbox_id, user_ids)
        await activity.append(tx, at=actor.now, actor_id=actor.user_id, ip=actor.ip, type="inbox.members_changed",
                              object_type="inbox", object_id=inbox_id,
                              data={"before": before, "after": sorted(set(user_ids))})
        await access_changed(tx, actor, sorted(set(before) ^ set(user_ids)))

    await db.write(job)


async def do_rename(db: Database, actor: Actor, inbox_id: int, name: str) -> None:
    async def job(tx: Tx) -> None:
        if not await inbox_rows.exists(tx, inbox_id):
            raise not_found("inbox")
        await inbox_rows.rename(tx, inbox_id, name, actor.now)

    await db.write(job)


async def do_delete(db: Database, actor: Actor, inbox_id: int) -> None:
    async def job(tx: Tx) -> None:
        row = await inbox_rows.get(tx, inbox_id)
        if row is None:
            raise not_found("inbox")
        await inbox_rows.delete(tx, inbox_id)
        await activity.append(tx, at=actor.now, actor_id=actor.user_id, ip=actor.ip, type="inbox.deleted",
                              object_type="inbox", object_id=inbox_id, data={"name": row["name"]})

    await db.write(job)


async def do_incoming(db: Database, inbox_id: int, mail: dict[str, Any], files: list[dict[str, Any]],
                      now: float) -> tuple[dict[str, Any], bool]:
    """Store one email: deduplicated by Message-ID, threaded by In-Reply-To / References, linked to
    the contact with the sender's address and that contact's most recent lead."""

    async def job(tx: Tx) -> tuple[dict[str, Any], bool]:
        seen = await mail_rows.by_message_id(tx, inbox_id, mail["message_id"])
        if seen is not None:
            return {"email_id": seen[0], "thread_id": seen[1], "contact_id": seen[2], "lead_id": seen[3]}, True
        parents = [i for i in [mail["in_reply_to"], *reversed(mail["references"])] if i]
        thread = await mail_rows.thread_of(tx, inbox_id, parents)
        contact_id = await mail_rows.contact_with_address(tx, mail["from_addr"])
        lead_id = await mail_rows.latest_lead_of(tx, contact_id) if contact_id else None
        if thread is None:
            thread_id = await mail_rows.insert_thread(tx, inbox_id, mail["subject"], contact_id, lead_id, now)
        else:
            thread_id = thread["id"]
            contact_id = contact_id or thread["contact_id"]
            lead_id = lead_id or thread["lead_id"]
        attachments = []
        for f in files:
            mid = await insert_media(tx, sha256=f["sha256"], kind=f["type"], name=f["name"], size=f["size"],
                                     user_id=None, now=now)
            attachments.append({"media_id": mid, "type": f["type"], "name": f["name"], "size": f["size"]})
        row = await mail_rows.insert_incoming(tx, inbox_id, thread_id, mail, attachments, contact_id, lead_id, now)
        email_id = row["id"]
        members = await members_of(tx, inbox_id)
        await events.emit(tx, "email.created", {"email": dict(row), "members": members}, now)
        thread_row = await mail_rows.thread_by_id(tx, thread_id)
        lead = await record_rows.get(tx, "leads", lead_id) if lead_id else None
        responsible = lead["responsible_user_id"] if lead else None
        await workflow.customer_email(tx, Actor(None, "webhook", now), thread_row, members, email_id, responsible,
                                      lead_id)
        return {"email_id": email_id, "thread_id": thread_id, "contact_id": contact_id, "lead_id": lead_id}, False

    return await db.write(job)
