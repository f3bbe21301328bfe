"""Assignee and status of conversations and email threads, and what each user has not read yet."""

from __future__ import annotations

from .db import Database, Tx

TABLES = {"conversation": "conversations", "thread": "email_threads"}


async def set_state(tx: Tx, kind: str, row_id: int, assignee_id: int | None, status: str, now: float) -> None:
    await tx.execute(f"UPDATE {TABLES[kind]} SET assignee_id = ?, status = ?, updated_at = ? WHERE id = ?",
                     (assignee_id, status, now, row_id))


async def reopen(tx: Tx, kind: str, row_id: int) -> bool:
    """A resolved conversation or thread is open again (a customer wrote); whether it was resolved."""
    cur = await tx.execute(f"UPDATE {TABLES[kind]} SET status = 'open' WHERE id = ? AND status = 'resolved'",
                           (row_id,))
    return cur.rowcount == 1


async def unread_messages(db: Database, user_id: int, conversation_ids: list[int]) -> dict[int, int]:
    """Customer messages after the user's read mark, per conversation."""
    if not conversation_ids:
        return {}
    marks = ",".join("?" * len(conversation_ids))
    rows = await db.fetchall(
        f"SELECT c.id, (SELECT count(*) FROM messages m WHERE m.conversation_id = c.id AND m.author_type = 'contact'"
        f" AND m.id > coalesce((SELECT last_read_id FROM conversation_reads r WHERE r.user_id = ?"
        f" AND r.conversation_id = c.id), 0)) FROM conversations c WHERE c.id IN ({marks})",
        [user_id, *conversation_ids])
    return {r[0]: r[1] for r in rows}


async def unread_emails(db: Database, user_id: int, thread_ids: list[int]) -> dict[int, int]:
    """Incoming emails newer than the user's read mark, per thread."""
    if not thread_ids:
        return {}
    marks = ",".join("?" * len(thread_ids))
    rows = await db.fetchall(
        f"SELECT t.id, (SELECT count(*) FROM emails e WHERE e.thread_id = t.id AND e.direction = 'incoming'"
        f" AND e.id > coalesce((SELECT last_email_id FROM email_thread_reads r WHERE r.user_id = ?"
        f" AND r.thread_id = t.id), 0)) FROM email_threads t WHERE t.id IN ({marks})", [user_id, *thread_ids])
    return {r[0]: r[1] for r in rows}


def filter_sql(alias: str, assignee: str | None, status: str | None, user_id: int) -> tuple[str, list]:
    """``assignee=me|none|<id>`` and ``status=`` as SQL on a conversations or threads alias."""
    where, params = [], []
    if assignee == "me":
        where.append(f"{alias}.assignee_id = ?")
        params.append(user_id)
    elif assignee == "none":
        where.append(f"{alias}.assignee_id IS NULL")
    elif assignee is not None:
        where.append(f"{alias}.assignee_id = ?")
        params.append(int(assignee))
    if status is not None:
        where.append(f"{alias}.status = ?")
        params.append(status)
    return (" AND ".join(where) or "1"), params


async def mark_thread_read(tx: Tx, user_id: int, thread_id: int, now: float) -> None:
    await tx.execute("INSERT OR REPLACE INTO email_thread_reads (user_id, thread_id, read_at, last_email_id)"
                     " VALUES (?, ?, ?, (SELECT max(id) FROM emails WHERE thread_id = ?))",
                     (user_id, thread_id, now, thread_id))
