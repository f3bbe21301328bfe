"""The conversation workflow: who handles a chat conversation or an email thread (its assignee),
where it stands (open, pending, resolved), and what a customer's new message does to it (reopens it
when resolved, notifies the assignee or, with none, the lead's responsible user). Every change is an
event to whoever may read the conversation or thread, and an activity entry."""

from __future__ import annotations

from typing import Any, Awaitable, Callable

from auth.access import chat_visible, email_visible
from auth.policy import Subject

from ..errors import invalid, not_found
from ..store import activity, events, workflow
from ..store import emails as mail_rows
from ..store import users as user_rows
from ..store.db import Database, Tx
from . import inboxes  # the module: inboxes calls back into this one
from .access import load_subject
from .chats import require_chat
from .context import Actor
from .records import notify


async def _assignee(tx: Tx, user_id: int, may_read) -> None:
    """The new assignee must be an active user who may read what is assigned to them."""
    user = await user_rows.activity_of(tx, user_id)
    if user is None or not user["is_active"] or not may_read(
            await load_subject(tx, user_id, is_admin=bool(user["is_admin"]))):
        problem = "not an active user who may read it"
        raise invalid(f"assignee_id {user_id} is {problem}.", [{"path": "assignee_id", "message": problem}])


async def _update(tx: Tx, actor: Actor, kind: str, row, changes: dict[str, Any],
                  may_read: Callable[[Subject], bool],
                  announce: Callable[[dict[str, Any], dict[str, Any]], Awaitable[None]]) -> None:
    """Apply an assignee or status change to a conversation or thread the caller may read."""
    before = {"assignee_id": row["assignee_id"], "status": row["status"]}
    after = {**before, **{k: v for k, v in changes.items() if k in before}}
    if after["assignee_id"] is not None and after["assignee_id"] != before["assignee_id"]:
        await _assignee(tx, after["assignee_id"], may_read)
    if after == before:
        return
    await workflow.set_state(tx, kind, row["id"], after["assignee_id"], after["status"], actor.now)
    await announce(before, after)


async def do_update_conversation(db: Database, actor: Actor, subject: Subject, conversation_id: int,
                                 changes: dict[str, Any]) -> None:
    async def job(tx: Tx) -> None:
        conversation, facts = await require_chat(tx, subject, conversation_id)
        await _update(tx, actor, "conversation", conversation, changes, lambda who: chat_visible(who, facts),
                      lambda before, after: _announce_conversation(tx, actor, facts, before, after))

    await db.write(job)


async def _announce_conversation(tx: Tx, actor: Actor, facts: dict[str, Any], before: dict[str, Any],
                                 after: dict[str, Any]) -> None:
    conversation = {**facts["conversation"], **after}
    await events.emit(tx, "conversation.updated", {**facts, "conversation": conversation, "before": before},
                      actor.now)
    await activity.append(tx, at=actor.now, actor_id=actor.user_id, ip=actor.ip, type="conversation.updated",
                          object_type="conversation", object_id=conversation["id"],
                          data={"before": before, "after": after})


async def do_update_thread(db: Database, actor: Actor, subject: Subject, inbox_id: int, thread_id: int,
                           changes: dict[str, Any]) -> None:
    async def job(tx: Tx) -> None:
        _, members = await inboxes.require_inbox(tx, subject, inbox_id)
        thread = await mail_rows.thread(tx, inbox_id, thread_id)
        if thread is None:
            raise not_found("thread")
        await _update(tx, actor, "thread", thread, changes, lambda who: email_visible(who, members),
                      lambda before, after: _announce_thread(tx, actor, thread, members, before, after))

    await db.write(job)


async def _announce_thread(tx: Tx, actor: Actor, thread, members: list[int], before: dict[str, Any],
                           after: dict[str, Any]) -> None:
    shown = {"id": thread["id"], "inbox_id": thread["inbox_id"], **after}
    await events.emit(tx, "thread.updated", {"thread": shown, "before": before, "members": members}, actor.now)
    await activity.append(tx, at=actor.now, actor_id=actor.user_id, ip=actor.ip, type="thread.updated",
                          object_type="thread", object_id=thread["id"], data={"before": before, "after": after})


# --- a customer wrote ---

async def customer_message(tx: Tx, actor: Actor, facts: dict[str, Any], conversation: dict[str, Any],
                           message_id: int) -> None:
    """After an incoming chat message: reopen a resolved conversation; notify who handles it. The
    status was read with the conversation, so an open one (the usual case) costs no statement here."""
    if conversation["status"] == "resolved" and await workflow.reopen(tx, "conversation", conversation["id"]):
        before = {"assignee_id": conversation["assignee_id"], "status": "resolved"}
        await _announce_conversation(tx, actor, facts, before, {**before, "status": "open"})
    lead = facts.get("lead")
    target = conversation["assignee_id"] or (lead["responsible_user_id"] if lead else None)
    if target is not None:
        await notify(tx, actor, [target], lead["id"] if lead else None, "message.received",
                     {"conversation_id": conversation["id"], "message_id": message_id,
                      "contact_id": facts["contact"]["id"]})


async def customer_email(tx: Tx, actor: Actor, thread, members: list[int], email_id: int,
                         lead_responsible: int | None, lead_id: int | None) -> None:
    """After an incoming email: reopen a resolved thread; notify who handles it."""
    if await workflow.reopen(tx, "thread", thread["id"]):
        before = {"assignee_id": thread["assignee_id"], "status": "resolved"}
        await _announce_thread(tx, actor, thread, members, before, {**before, "status": "open"})
    target = thread["assignee_id"] or lead_responsible
    if target is not None:
        await notify(tx, actor, [target], lead_id, "email.received",
                     {"inbox_id": thread["inbox_id"], "thread_id": thread["id"], "email_id": email_id})
