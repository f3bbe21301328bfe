"""What an attempt came to, written in one transaction, for every kind of item the outbox sends
(a chat reply, an email): the item's status, attempts, code and error; its outbox row removed (sent,
failed) or rescheduled (retry); the target's consecutive failures, and a pause when they reach the
limit; a status event to whoever may see the item."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from ..actions.context import Actor
from ..actions.records import notify
from ..config import Config
from ..store import activity, outbox, users
from ..store.db import Database, Tx
from .policy import Schedule, Verdict, next_attempt, retry_after, verdict

# Forward only: a status callback or a late answer never takes an item back.
RANK = {"queued": 0, "sent": 1, "failed": 1, "delivered": 2, "read": 3}
OUTBOUND = "outbound"  # the ``ip`` of what the delivery worker did: no user, no address


@dataclass(frozen=True, slots=True)
class Attempt:
    code: int | None            # the receiver's status code; None without an answer
    error: str | None           # what went wrong, in words; None when sent
    retry_after: str | None = None
    provider_id: str | None = None
    final: bool = False         # fails at once whatever the code (no URL, a private address)
    verdict: Verdict | None = None  # set where codes mean something else than in HTTP (SMTP)


@dataclass(frozen=True, slots=True)
class Kind:
    """How the outbox reads, updates and announces one kind of item."""

    name: str       # the outbox kind: "chat", "email"
    target: str     # what a target is: "channel", "inbox" (activity entries, notifications)
    get: Callable[[Tx, int], Awaitable[dict[str, Any] | None]]
    set_delivery: Callable[..., Awaitable[dict[str, Any]]]
    emit: Callable[[Tx, dict[str, Any], float], Awaitable[None]]


def outcome_of(result: Attempt) -> Verdict:
    if result.final:
        return "failed"
    return result.verdict or verdict(result.code)


async def record(db: Database, config: Config, kind: Kind, outbox_id: int, result: Attempt | None) -> None:
    schedule = Schedule(config.outbound_retry_base_seconds, config.outbound_retry_max_seconds,
                        config.outbound_give_up_seconds)
    now = config.clock()

    async def job(tx: Tx) -> None:
        row = await outbox.get(tx, outbox_id)
        if row is None:  # settled meanwhile (a status callback)
            return
        item = await kind.get(tx, row["item_id"])
        if item is None or result is None:
            await outbox.remove(tx, outbox_id, now)
            return
        outcome = outcome_of(result)
        status, error = item["status"], result.error
        if outcome == "retry":
            due = next_attempt(schedule, row["attempts"] + 1, row["queued_at"], now,
                               retry_after(result.retry_after, now), random.random)
            if due is None:
                outcome = "failed"
                error = f"gave up after {config.outbound_give_up_seconds / 3600:g} h; last: {error}"
            else:
                await outbox.reschedule(tx, outbox_id, due)
        if outcome != "retry":
            await outbox.remove(tx, outbox_id, now)
        if outcome == "sent":
            status = "sent" if RANK[status] < RANK["sent"] else status
            await outbox.succeeded(tx, kind.name, row["target_id"])
        elif outcome == "failed" and RANK[status] < RANK["delivered"]:
            status = "failed"
        updated = await kind.set_delivery(tx, item["id"], status=status, attempted=True, code=result.code,
                                          error=error, provider_id=result.provider_id)
        if outcome != "sent":  # a missing URL counts too: admins hear of a target that cannot send
            await _count_failure(tx, config, kind, row["target_id"], error or "", now)
        await kind.emit(tx, updated, now)

    await db.write(job)


async def requeue(tx: Tx, kind: Kind, actor: Actor, item: dict[str, Any], *, target_id: int, lane: int,
                  webhook_id: str, noun: str, data: dict[str, Any]) -> dict[str, Any]:
    """Queue a failed item again by hand, with the id it always had (the receiver recognises the new
    attempt as the same item): back to ``queued``, an ``<noun>.retried`` activity entry, a status
    event. Returns the item as it now is."""
    await outbox.enqueue(tx, kind=kind.name, target_id=target_id, item_id=item["id"], lane=lane,
                         webhook_id=webhook_id, now=actor.now)
    updated = await kind.set_delivery(tx, item["id"], status="queued", attempted=False, code=None,
                                      error=item["last_error"])
    await activity.append(tx, at=actor.now, actor_id=actor.user_id, ip=actor.ip, type=f"{noun}.retried",
                          object_type=noun, object_id=item["id"], data=data)
    await kind.emit(tx, updated, actor.now)
    return updated


async def _count_failure(tx: Tx, config: Config, kind: Kind, target_id: int, error: str, now: float) -> None:
    failures = await outbox.failed(tx, kind.name, target_id, error)
    if failures < config.outbound_pause_after or not await outbox.pause(tx, kind.name, target_id, now):
        return
    data = {f"{kind.target}_id": target_id, "failures": failures, "last_error": error}
    await activity.append(tx, at=now, actor_id=None, ip=OUTBOUND, type=f"{kind.target}.paused",
                          object_type=kind.target, object_id=target_id, data=data)
    await notify(tx, Actor(None, OUTBOUND, now), await users.active_admin_ids(tx), None, f"{kind.target}.paused", data)
