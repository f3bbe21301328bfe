"""Conversations and their messages."""

from __future__ import annotations

from typing import Any

import orjson

from .db import Database, Tx


def decode_message(row) -> dict[str, Any]:
    out = dict(row)
    out["attachments"] = orjson.loads(out["attachments"])
    return out


async def get_conversation(db: Database | Tx, conversation_id: int):
    return await db.fetchone("SELECT * FROM conversations WHERE id = ?", (conversation_id,))


async def insert_conversation(tx: Tx, contact_id: int, lead_id: int | None, channel: str, now: float,
                              channel_id: int | None = None) -> int:
    return await tx.insert("INSERT INTO conversations (contact_id, lead_id, channel, channel_id, created_at, updated_at)"
                           " VALUES (?,?,?,?,?,?)", (contact_id, lead_id, channel, channel_id, now, now))


async def on_channel(tx: Tx, channel_id: int, contact_id: int):
    """A contact's newest conversation on a channel, with what its message events need of the lead
    (``lead_*`` columns, NULL without a lead) and the lead's subscribers (a JSON array), in one statement."""
    return await tx.fetchone(
        "SELECT c.id, c.lead_id, c.contact_id, c.assignee_id, c.status, l.id AS lead_row, l.pipeline_id AS lead_pipeline_id,"
        " l.stage_id AS lead_stage_id, l.responsible_user_id AS lead_responsible_user_id,"
        " (SELECT json_group_array(user_id) FROM lead_subscribers WHERE lead_id = l.id) AS subscribers"
        " FROM conversations c LEFT JOIN leads l ON l.id = c.lead_id"
        " WHERE c.channel_id = ? AND c.contact_id = ? ORDER BY c.id DESC LIMIT 1", (channel_id, contact_id))


async def list_conversations(db: Database, where: tuple[str, list], *, before: int | None, limit: int) -> list:
    cursor = " AND id < ?" if before is not None else ""
    return await db.fetchall(f"SELECT * FROM conversations WHERE {where[0]}{cursor} ORDER BY id DESC LIMIT ?",
                             [*where[1], *([before] if before is not None else []), limit])


async def insert_message(tx: Tx, conversation_id: int, *, author_type: str, author_user_id: int | None, text: str,
                         attachments: list[dict], now: float, status: str = "sent", webhook_id: str | None = None,
                         provider_id: str | None = None) -> dict[str, Any]:
    """The stored message, as ``get_message`` gives it."""
    row = await tx.fetchone(
        "INSERT INTO messages (conversation_id, author_type, author_user_id, text, attachments, status, webhook_id,"
        " provider_id, created_at) VALUES (?,?,?,?,?,?,?,?,?) RETURNING *",
        (conversation_id, author_type, author_user_id, text, orjson.dumps(attachments).decode(), status, webhook_id,
         provider_id, now))
    await tx.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", (now, conversation_id))
    return decode_message(row)


async def get_message(db: Database | Tx, message_id: int) -> dict[str, Any] | None:
    row = await db.fetchone("SELECT * FROM messages WHERE id = ?", (message_id,))
    return decode_message(row) if row else None


async def list_messages(db: Database, conversation_id: int, *, before: int | None, limit: int) -> list[dict]:
    cursor = " AND id < ?" if before is not None else ""
    rows = await db.fetchall(f"SELECT * FROM messages WHERE conversation_id = ?{cursor} ORDER BY id DESC LIMIT ?",
                             [conversation_id, *([before] if before is not None else []), limit])
    return [decode_message(r) for r in rows]


async def media_rows(db: Database | Tx, ids: list[int]) -> dict[int, Any]:
    if not ids:
        return {}
    rows = await db.fetchall(f"SELECT * FROM media WHERE id IN ({','.join('?' * len(ids))})", ids)
    return {r["id"]: r for r in rows}


async def link_media(tx: Tx, conversation_id: int, media_ids: list[int]) -> None:
    """Files attached in a conversation belong to it (once each), as a delivery's files do."""
    for media_id in dict.fromkeys(media_ids):
        await tx.execute("INSERT INTO media_links (media_id, conversation_id) SELECT ?, ? WHERE NOT EXISTS"
                         " (SELECT 1 FROM media_links WHERE media_id = ? AND conversation_id = ?)",
                         (media_id, conversation_id, media_id, conversation_id))


async def mark_read(tx: Tx, user_id: int, conversation_id: int, message_id: int) -> None:
    await tx.execute("INSERT INTO conversation_reads (user_id, conversation_id, last_read_id) VALUES (?,?,?)"
                     " ON CONFLICT DO UPDATE SET last_read_id = max(last_read_id, excluded.last_read_id)",
                     (user_id, conversation_id, message_id))


async def last_read(db: Database, user_id: int, ids: list[int]) -> dict[int, int]:
    if not ids:
        return {}
    rows = await db.fetchall(f"SELECT conversation_id, last_read_id FROM conversation_reads WHERE user_id = ? AND"
                             f" conversation_id IN ({','.join('?' * len(ids))})", [user_id, *ids])
    return {r[0]: r[1] for r in rows}


# --- outgoing messages (inbox/outbound) ---

async def outgoing(db: Database, message_id: int):
    """What an attempt to send a message needs, in one read: the message, its conversation's channel
    and URL, the customer's handle there, the provider id of the customer's latest message, and the
    author's name. None when the message is gone."""
    return await db.fetchone(
        "SELECT m.*, c.channel_id, c.contact_id, c.lead_id, ch.outbound_url, ch.secret_sealed,"
        " (SELECT handle FROM contact_handles h WHERE h.channel_id = c.channel_id AND h.contact_id = c.contact_id"
        "  LIMIT 1) AS handle,"
        " (SELECT provider_id FROM messages p WHERE p.conversation_id = c.id AND p.author_type = 'contact'"
        "  AND p.provider_id IS NOT NULL ORDER BY p.id DESC LIMIT 1) AS in_reply_to,"
        " (SELECT name FROM users u WHERE u.id = m.author_user_id) AS author_name"
        " FROM messages m JOIN conversations c ON c.id = m.conversation_id LEFT JOIN channels ch ON ch.id = c.channel_id"
        " WHERE m.id = ?", (message_id,))


async def set_delivery(tx: Tx, message_id: int, *, status: str, attempted: bool, code: int | None,
                       error: str | None, provider_id: str | None = None) -> dict[str, Any]:
    """Record an attempt's outcome or a status change; returns the message as it now is."""
    row = await tx.fetchone(
        "UPDATE messages SET status = ?, attempts = attempts + ?, last_code = coalesce(?, last_code),"
        " last_error = ?, provider_id = coalesce(provider_id, ?) WHERE id = ? RETURNING *",
        (status, int(attempted), code, error, provider_id, message_id))
    return decode_message(row)


async def outgoing_on_channel(tx: Tx, channel_id: int, *, message_id: int | None = None,
                              provider_id: str | None = None) -> dict[str, Any] | None:
    """An agent's message on one of the channel's conversations, by our id or the provider's."""
    where, key = ("m.id = ?", message_id) if message_id is not None else ("m.provider_id = ?", provider_id)
    row = await tx.fetchone(
        f"SELECT m.* FROM messages m JOIN conversations c ON c.id = m.conversation_id WHERE {where}"
        " AND c.channel_id = ? AND m.author_type = 'agent' LIMIT 1", (key, channel_id))
    return decode_message(row) if row else None


async def media_on_channel(db: Database, media_id: int, channel_id: int):
    """A file, if it belongs to a conversation on the channel (what a provider's link may fetch)."""
    return await db.fetchone(
        "SELECT m.* FROM media m WHERE m.id = ? AND EXISTS (SELECT 1 FROM media_links l JOIN conversations c"
        " ON c.id = l.conversation_id WHERE l.media_id = m.id AND c.channel_id = ?)", (media_id, channel_id))
