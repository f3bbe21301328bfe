"""Webhooks read their channel or inbox row and its opened secrets from memory (store/rowcache.py).
These fail if that memory ever serves a deleted row, a secret rotated away, a grace period that
has ended, or a row changed by any other statement."""

from __future__ import annotations

import asyncio

import pytest

from conftest import FAST_HASHING
from test_email import mail, post_mail
from test_ingest import deliver, make_channel, message

from inbox.keys import SEALER
from inbox.store.rowcache import RowCache


@pytest.fixture
def config_overrides() -> dict:
    return {**FAST_HASHING, "media_max_bytes": 64 * 1024}


async def test_a_second_rotation_drops_the_first_secret_at_once_and_the_grace_ends_on_time(api, admin):
    channel, s1 = await make_channel(api, admin)
    cid = channel["id"]
    assert (await deliver(api, cid, s1, message("a"))).status == 201  # the row and s1 are now in memory
    s2 = (await api.post(f"/api/v1/channels/{cid}/rotate", who=admin)).body["secret"]
    assert (await deliver(api, cid, s1, message("b"))).status == 201  # within its grace
    assert (await deliver(api, cid, s2, message("c"))).status == 201
    s3 = (await api.post(f"/api/v1/channels/{cid}/rotate", who=admin)).body["secret"]
    assert (await deliver(api, cid, s1, message("d"))).status == 401  # two rotations old
    assert (await deliver(api, cid, s3, message("e"))).status == 201
    assert (await deliver(api, cid, s2, message("f"))).status == 201  # the previous one, in grace
    api.clock.advance(24 * 3600 + 1)  # no write in between: the grace is checked on every request
    assert (await deliver(api, cid, s2, message("g"))).status == 401
    assert (await deliver(api, cid, s3, message("h"))).status == 201


async def test_a_deleted_channel_is_not_found_even_right_after_it_was_read(api, admin):
    channel, secret = await make_channel(api, admin)
    cid = channel["id"]
    # A refused delivery still reads (and remembers) the row, and creates no conversation to block deletion.
    assert (await deliver(api, cid, secret, message("x"), signature="sha256=" + "0" * 64)).status == 401
    assert (await api.delete(f"/api/v1/channels/{cid}", who=admin)).status == 204
    assert (await deliver(api, cid, secret, message("x"))).status == 404


async def test_any_statement_that_changes_a_signing_row_is_seen(api, admin):
    """Not only the actions that know about the cache: a future "disable", a repair by hand."""
    channel, secret = await make_channel(api, admin)
    cid = channel["id"]
    assert (await deliver(api, cid, secret, message("a"))).status == 201
    other = "whsec_replaced"
    sealed = api.app[SEALER].seal(other)
    await api.db.write(lambda tx: tx.execute("UPDATE channels SET secret_sealed = ? WHERE id = ?", (sealed, cid)))
    assert (await deliver(api, cid, secret, message("b"))).status == 401
    assert (await deliver(api, cid, other, message("c"))).status == 201


async def test_inbox_rotation_and_deletion_are_seen_by_the_email_hook(api, admin):
    r = await api.post("/api/v1/inboxes", {"name": "Sales", "user_ids": []}, who=admin)
    iid, s1 = r.body["id"], r.body["secret"]
    assert (await post_mail(api, iid, s1, mail("one", "<1@x>"))).status == 201
    s2 = (await api.post(f"/api/v1/inboxes/{iid}/rotate", who=admin)).body["secret"]
    s3 = (await api.post(f"/api/v1/inboxes/{iid}/rotate", who=admin)).body["secret"]
    assert (await post_mail(api, iid, s1, mail("two", "<2@x>"))).status == 401
    assert (await post_mail(api, iid, s3, mail("three", "<3@x>"))).status == 201
    assert s2 != s3
    assert (await api.delete(f"/api/v1/inboxes/{iid}", who=admin)).status == 204
    assert (await post_mail(api, iid, s3, mail("four", "<4@x>"))).status == 404


class _Reads:
    """A stand-in database whose reads finish only when the test says so."""

    def __init__(self) -> None:
        self.value = "old"
        self.gate: asyncio.Event | None = None
        self.reads = 0

    async def fetchone(self, sql: str, params) -> str:
        self.reads += 1
        seen = self.value
        if self.gate is not None:
            await self.gate.wait()
        return seen


async def _started(task: asyncio.Task, reads: _Reads, before: int) -> None:
    while reads.reads == before:
        await asyncio.sleep(0)


async def test_a_read_that_raced_a_change_is_used_once_and_never_remembered():
    cache, db = RowCache(), _Reads()
    assert await cache.get(db, "channels", 1) == "old"  # remembered
    assert await cache.get(db, "channels", 1) == "old" and db.reads == 1

    cache._changed()  # the writer thread's trigger, before COMMIT
    db.value = "new"
    assert await cache.get(db, "channels", 1) == "new" and db.reads == 2  # memory bypassed until settled
    cache.settle()
    assert await cache.get(db, "channels", 1) == "new" and db.reads == 3

    # A read in flight across a whole change (trigger, COMMIT, settle) answers its own request only.
    db.value, db.gate = "stale", asyncio.Event()
    cache.settle()
    cache._changed()
    cache.settle()
    pending = asyncio.create_task(cache.get(db, "channels", 2))
    await _started(pending, db, 3)
    db.value = "fresh"
    cache._changed()
    cache.settle()
    db.gate.set()
    assert await pending == "stale"
    assert await cache.get(db, "channels", 2) == "fresh"

    # A read that starts after the trigger but before settle is not kept either.
    db.gate = asyncio.Event()
    cache._changed()
    pending = asyncio.create_task(cache.get(db, "channels", 3))
    await _started(pending, db, 5)
    db.gate.set()
    assert await pending == "fresh"
    cache.settle()
    db.gate, db.value = None, "newest"
    assert await cache.get(db, "channels", 3) == "newest"


async def test_only_tables_with_triggers_can_be_cached():
    with pytest.raises(ValueError):
        await RowCache().get(_Reads(), "users", 1)
