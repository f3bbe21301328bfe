"""Shared inboxes and inbound email. Rule 8: an email is visible to admins, and to users with
mail_access who are members of its inbox; in a lead's timeline it also needs the lead rule."""

from __future__ import annotations

from typing import Any

import orjson

from auth.policy import Subject

from ..errors import invalid, not_found
from ..realtime.views import email_visible
from ..sealing import Sealer
from ..store import activity, events
from ..store import emails as mail_rows
from ..store.db import Database, Tx
from ..times import iso
from . import workflow
from .context import Actor
from .ingest import new_secret
from .media import insert_media
from .people import access_changed


async def members_of(db: Database | Tx, inbox_id: int) -> list[int]:
    rows = await db.fetchall("SELECT user_id FROM inbox_members WHERE inbox_id = ? ORDER BY user_id", (inbox_id,))
    return [r[0] for r in rows]


async def visible_inbox_ids(db: Database, subject: Subject) -> list[int]:
    if subject.is_admin:
        return [r[0] for r in await db.fetchall("SELECT id FROM inboxes ORDER BY id")]
    if not subject.rights.mail_access:
        return []
    return [r[0] for r in await db.fetchall("SELECT inbox_id FROM inbox_members WHERE user_id = ? ORDER BY inbox_id",
                                            (subject.user_id,))]


async def require_inbox(db: Database, subject: Subject, inbox_id: int):
    row = await db.fetchone("SELECT * FROM inboxes WHERE id = ?", (inbox_id,))
    if row is None or not email_visible(subject, await members_of(db, inbox_id)):
        raise not_found("inbox")
    return row


def outgoing_json(row, state: dict[str, Any] | None = None) -> dict[str, Any]:
    """An inbox's outgoing settings as admins see them: never the password, only whether there is
    one; with its sending state (``store.outbox.target``)."""
    state = state or {}
    return {"address": row["address"], "display_name": row["display_name"], "host": row["smtp_host"],
            "port": row["smtp_port"], "security": row["smtp_security"], "username": row["smtp_username"],
            "has_password": row["smtp_password_sealed"] is not None, "paused_at": iso(state.get("paused_at")),
            "failures": state.get("failures", 0), "last_error": state.get("last_error")}


async def do_set_outgoing(db: Database, sealer: Sealer, actor: Actor, inbox_id: int, settings: dict[str, Any],
                          password: str | None, keep_password: bool) -> None:
    """Replace an inbox's outgoing settings (checked by the caller); the password is kept when
    ``keep_password``, else replaced (None: removed)."""

    async def job(tx: Tx) -> None:
        row = await tx.fetchone("SELECT * FROM inboxes WHERE id = ?", (inbox_id,))
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
    found = {r[0] for r in await tx.fetchall(f"SELECT id FROM users WHERE id IN ({','.join('?' * len(user_ids))})",
                                             user_ids)} if user_ids else set()
    missing = sorted(set(user_ids) - found)
    if missing:
        raise invalid(f"users {missing} do not exist", [{"path": "user_ids", "message": f"unknown {missing}"}])


async def do_create(db: Database, sealer: Sealer, actor: Actor, name: str, user_ids: list[int]) -> tuple[int, str]:
    secret = new_secret()

    async def job(tx: Tx) -> int:
        await _check_users(tx, user_ids)
        iid = await tx.insert("INSERT INTO inboxes (name, secret_sealed, created_at, updated_at) VALUES (?,?,?,?)",
                              (name, sealer.seal(secret), actor.now, actor.now))
        await tx.executemany("INSERT INTO inbox_members (inbox_id, user_id) VALUES (?, ?)",
                             [(iid, u) for u in sorted(set(user_ids))])
        await activity.append(tx, at=actor.now, actor_id=actor.user_id, ip=actor.ip, type="inbox.created",
                              object_type="inbox", object_id=iid, data={"name": name, "user_ids": sorted(set(user_ids))})
        return iid

    return await db.write(job), secret


async def do_set_members(db: Database, actor: Actor, inbox_id: int, user_ids: list[int]) -> None:
    async def job(tx: Tx) -> None:
        if await tx.fetchone("SELECT 1 FROM inboxes WHERE id = ?", (inbox_id,)) is None:
            raise not_found("inbox")
        await _check_users(tx, user_ids)
        before = await members_of(tx, inbox_id)
        await tx.execute("DELETE FROM inbox_members WHERE inbox_id = ?", (inbox_id,))
        await tx.executemany("INSERT INTO inbox_members (inbox_id, user_id) VALUES (?, ?)",
                             [(inbox_id, u) for u in sorted(set(user_ids))])
        await activity.append(tx, at=actor.now, actor_id=actor.user_id, ip=actor.ip, type="inbox.members_changed",
                              object_type="inbox", object_id=inbox_id,
                              data={"before": before, "after": sorted(set(user_ids))})
        await access_changed(tx, actor, sorted(set(before) ^ set(user_ids)))

    await db.write(job)


async def do_delete(db: Database, actor: Actor, inbox_id: int) -> None:
    async def job(tx: Tx) -> None:
        row = await tx.fetchone("SELECT name FROM inboxes WHERE id = ?", (inbox_id,))
        if row is None:
            raise not_found("inbox")
        await tx.execute("DELETE FROM inboxes WHERE id = ?", (inbox_id,))
        await activity.append(tx, at=actor.now, actor_id=actor.user_id, ip=actor.ip, type="inbox.deleted",
                              object_type="inbox", object_id=inbox_id, data={"name": row["name"]})

    await db.write(job)


async def do_incoming(db: Database, inbox_id: int, mail: dict[str, Any], files: list[dict[str, Any]],
                      now: float) -> tuple[dict[str, Any], bool]:
    """Store one email: deduplicated by Message-ID, threaded by In-Reply-To / References, linked to
    the contact with the sender's address and that contact's most recent lead."""

    async def job(tx: Tx) -> tuple[dict[str, Any], bool]:
        seen = await tx.fetchone("SELECT id, thread_id, contact_id, lead_id FROM emails WHERE inbox_id = ? AND"
                                 " message_id = ?", (inbox_id, mail["message_id"]))
        if seen is not None:
            return {"email_id": seen[0], "thread_id": seen[1], "contact_id": seen[2], "lead_id": seen[3]}, True
        parents = [i for i in [mail["in_reply_to"], *reversed(mail["references"])] if i]
        thread = None
        if parents:
            thread = await tx.fetchone(
                f"SELECT t.* FROM emails e JOIN email_threads t ON t.id = e.thread_id WHERE e.inbox_id = ? AND"
                f" e.message_id IN ({','.join('?' * len(parents))}) ORDER BY e.id DESC LIMIT 1", [inbox_id, *parents])
        contact_id = await tx.fetchval("SELECT c.id FROM contacts c, json_each(c.emails) e WHERE lower(e.value) = ?"
                                       " ORDER BY c.id LIMIT 1", (mail["from_addr"],))
        lead_id = await tx.fetchval("SELECT l.id FROM lead_contacts lc JOIN leads l ON l.id = lc.lead_id"
                                    " WHERE lc.contact_id = ? ORDER BY l.updated_at DESC, l.id DESC LIMIT 1",
                                    (contact_id,)) if contact_id else None
        if thread is None:
            thread_id = await tx.insert("INSERT INTO email_threads (inbox_id, subject, contact_id, lead_id, created_at,"
                                        " updated_at) VALUES (?,?,?,?,?,?)",
                                        (inbox_id, mail["subject"], contact_id, lead_id, now, now))
        else:
            thread_id = thread["id"]
            contact_id = contact_id or thread["contact_id"]
            lead_id = lead_id or thread["lead_id"]
        attachments = []
        for f in files:
            mid = await insert_media(tx, sha256=f["sha256"], kind=f["type"], name=f["name"], size=f["size"],
                                     user_id=None, now=now)
            attachments.append({"media_id": mid, "type": f["type"], "name": f["name"], "size": f["size"]})
        email_id = await tx.insert(
            "INSERT INTO emails (inbox_id, thread_id, message_id, in_reply_to, refs, subject, from_addr, from_name,"
            " to_addrs, sent_at, text, html, attachments, contact_id, lead_id, created_at)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (inbox_id, thread_id, mail["message_id"], mail["in_reply_to"], orjson.dumps(mail["references"]).decode(),
             mail["subject"], mail["from_addr"], mail["from_name"], orjson.dumps(mail["to"]).decode(),
             mail["sent_at"], mail["text"], mail["html"], orjson.dumps(attachments).decode(), contact_id, lead_id, now))
        for a in attachments:
            await tx.execute("INSERT INTO media_links (media_id, email_id) VALUES (?, ?)", (a["media_id"], email_id))
        await tx.execute("UPDATE email_threads SET last_email_id = ?, updated_at = ? WHERE id = ?",
                         (email_id, now, thread_id))
        row = await tx.fetchone("SELECT * FROM emails WHERE id = ?", (email_id,))
        members = await members_of(tx, inbox_id)
        await events.emit(tx, "email.created", {"email": dict(row), "members": members}, now)
        thread_row = await tx.fetchone("SELECT * FROM email_threads WHERE id = ?", (thread_id,))
        responsible = await tx.fetchval("SELECT responsible_user_id FROM leads WHERE id = ?", (lead_id,)) \
            if lead_id else None
        await workflow.customer_email(tx, Actor(None, "webhook", now), thread_row, members, email_id, responsible,
                                      lead_id)
        return {"email_id": email_id, "thread_id": thread_id, "contact_id": contact_id, "lead_id": lead_id}, False

    return await db.write(job)
