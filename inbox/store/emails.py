"""Emails a shared inbox sends: its outgoing settings, the stored reply, and how its sending went."""

from __future__ import annotations

from typing import Any

import orjson

from .db import Database, Tx

SETTINGS = ("address", "display_name", "smtp_host", "smtp_port", "smtp_security", "smtp_username")


async def set_outgoing(tx: Tx, inbox_id: int, settings: dict[str, Any], password_sealed: str | None,
                       now: float) -> None:
    await tx.execute("UPDATE inboxes SET address = ?, display_name = ?, smtp_host = ?, smtp_port = ?,"
                     " smtp_security = ?, smtp_username = ?, smtp_password_sealed = ?, updated_at = ? WHERE id = ?",
                     (*(settings[k] for k in SETTINGS), password_sealed, now, inbox_id))


def decode(row) -> dict[str, Any]:
    out = dict(row)
    for key in ("attachments", "to_addrs", "cc_addrs", "refs"):
        if isinstance(out.get(key), str):
            out[key] = orjson.loads(out[key])
    return out


async def get(db: Database | Tx, email_id: int) -> dict[str, Any] | None:
    row = await db.fetchone("SELECT * FROM emails WHERE id = ?", (email_id,))
    return decode(row) if row else None


async def thread(db: Database | Tx, inbox_id: int, thread_id: int):
    return await db.fetchone("SELECT * FROM email_threads WHERE id = ? AND inbox_id = ?", (thread_id, inbox_id))


async def latest(tx: Tx, thread_id: int, *, incoming: bool = False) -> dict[str, Any] | None:
    """The thread's newest email (``incoming``: the newest the customer sent)."""
    where = " AND direction = 'incoming'" if incoming else ""
    row = await tx.fetchone(f"SELECT * FROM emails WHERE thread_id = ?{where} ORDER BY id DESC LIMIT 1", (thread_id,))
    return decode(row) if row else None


async def insert_outgoing(tx: Tx, *, inbox_id: int, thread_id: int, message_id: str, in_reply_to: str | None,
                          refs: list[str], subject: str, from_addr: str, from_name: str, to: list[str],
                          cc: list[str], text: str, html: str, attachments: list[dict], contact_id: int | None,
                          lead_id: int | None, author_user_id: int | None, now: float) -> dict[str, Any]:
    row = await tx.fetchone(
        "INSERT INTO emails (inbox_id, thread_id, message_id, in_reply_to, refs, subject, from_addr, from_name,"
        " to_addrs, cc_addrs, sent_at, text, html, attachments, contact_id, lead_id, created_at, direction,"
        " author_user_id, status) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,'outgoing',?,'queued') RETURNING *",
        (inbox_id, thread_id, message_id, in_reply_to, orjson.dumps(refs).decode(), subject, from_addr, from_name,
         orjson.dumps(to).decode(), orjson.dumps(cc).decode(), now, text, html, orjson.dumps(attachments).decode(),
         contact_id, lead_id, now, author_user_id))
    await tx.execute("UPDATE email_threads SET last_email_id = ?, updated_at = ? WHERE id = ?",
                     (row["id"], now, thread_id))
    return decode(row)


async def link_media(tx: Tx, email_id: int, media_ids: list[int]) -> None:
    await tx.executemany("INSERT INTO media_links (media_id, email_id) VALUES (?, ?)",
                         [(m, email_id) for m in dict.fromkeys(media_ids)])


async def set_delivery(tx: Tx, email_id: int, *, status: str, attempted: bool, code: int | None,
                       error: str | None, provider_id: str | None = None) -> dict[str, Any]:
    row = await tx.fetchone(
        "UPDATE emails SET status = ?, attempts = attempts + ?, last_code = coalesce(?, last_code), last_error = ?"
        " WHERE id = ? RETURNING *", (status, int(attempted), code, error, email_id))
    return decode(row)


async def sending(db: Database, email_id: int):
    """What an attempt to send needs: the email and its inbox's outgoing settings (one read)."""
    return await db.fetchone(
        "SELECT e.*, i.address AS inbox_address, i.display_name AS inbox_display_name, i.smtp_host, i.smtp_port,"
        " i.smtp_security, i.smtp_username, i.smtp_password_sealed FROM emails e JOIN inboxes i ON i.id = e.inbox_id"
        " WHERE e.id = ?", (email_id,))


# --- incoming email ---

async def by_message_id(tx: Tx, inbox_id: int, message_id: str):
    return await tx.fetchone("SELECT id, thread_id, contact_id, lead_id FROM emails WHERE inbox_id = ? AND"
                             " message_id = ?", (inbox_id, message_id))


async def thread_of(tx: Tx, inbox_id: int, message_ids: list[str]):
    """The thread of the newest email in the inbox with one of these Message-IDs."""
    if not message_ids:
        return None
    return await tx.fetchone(
        f"SELECT t.* FROM emails e JOIN email_threads t ON t.id = e.thread_id WHERE e.inbox_id = ? AND"
        f" e.message_id IN ({','.join('?' * len(message_ids))}) ORDER BY e.id DESC LIMIT 1", [inbox_id, *message_ids])


async def contact_with_address(tx: Tx, address: str) -> int | None:
    """The oldest contact whose email addresses include ``address`` (lower case)."""
    return await tx.fetchval("SELECT c.id FROM contacts c, json_each(c.emails) e WHERE lower(e.value) = ?"
                             " ORDER BY c.id LIMIT 1", (address,))


async def latest_lead_of(tx: Tx, contact_id: int) -> int | None:
    return await tx.fetchval("SELECT l.id FROM lead_contacts lc JOIN leads l ON l.id = lc.lead_id"
                             " WHERE lc.contact_id = ? ORDER BY l.updated_at DESC, l.id DESC LIMIT 1", (contact_id,))


async def insert_thread(tx: Tx, inbox_id: int, subject: str, contact_id: int | None, lead_id: int | None,
                        now: float) -> int:
    return await tx.insert("INSERT INTO email_threads (inbox_id, subject, contact_id, lead_id, created_at,"
                           " updated_at) VALUES (?,?,?,?,?,?)", (inbox_id, subject, contact_id, lead_id, now, now))


async def insert_incoming(tx: Tx, inbox_id: int, thread_id: int, mail: dict[str, Any], attachments: list[dict],
                          contact_id: int | None, lead_id: int | None, now: float):
    """Store a parsed email in its thread (the thread's newest now); the row."""
    row = await tx.fetchone(
        "INSERT INTO emails (inbox_id, thread_id, message_id, in_reply_to, refs, subject, from_addr, from_name,"
        " to_addrs, sent_at, text, html, attachments, contact_id, lead_id, created_at)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) RETURNING *",
        (inbox_id, thread_id, mail["message_id"], mail["in_reply_to"], orjson.dumps(mail["references"]).decode(),
         mail["subject"], mail["from_addr"], mail["from_name"], orjson.dumps(mail["to"]).decode(),
         mail["sent_at"], mail["text"], mail["html"], orjson.dumps(attachments).decode(), contact_id, lead_id, now))
    await link_media(tx, row["id"], [a["media_id"] for a in attachments])
    await tx.execute("UPDATE email_threads SET last_email_id = ?, updated_at = ? WHERE id = ?",
                     (row["id"], now, thread_id))
    return row


async def thread_by_id(db: Database | Tx, thread_id: int):
    return await db.fetchone("SELECT * FROM email_threads WHERE id = ?", (thread_id,))


# --- reading ---

async def threads(db: Database, inbox_id: int, where: tuple[str, list], *, before: int | None, limit: int) -> list:
    """An inbox's threads, newest first, filtered by ``where`` (SQL on alias ``t``)."""
    cursor = " AND t.id < ?" if before else ""
    return await db.fetchall(f"SELECT t.* FROM email_threads t WHERE t.inbox_id = ? AND {where[0]}{cursor}"
                             " ORDER BY t.id DESC LIMIT ?", [inbox_id, *where[1], *([before] if before else []), limit])


async def of_thread(db: Database, thread_id: int) -> list:
    return await db.fetchall("SELECT * FROM emails WHERE thread_id = ? ORDER BY id", (thread_id,))


async def of_lead(db: Database, lead_id: int) -> list:
    return await db.fetchall("SELECT * FROM emails WHERE lead_id = ? ORDER BY id", (lead_id,))
