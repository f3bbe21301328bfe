"""The delivery worker: runs an attempt for each outbox row as it falls due.

Woken by the commit of new rows (``Tx.nudge``), by an attempt finishing, and by the next retry's due
time; otherwise it sleeps. At most one attempt per lane (conversation or thread) is in flight, which
keeps a conversation's replies in order, and at most ``outbound_concurrency`` per target (channel or
inbox), so a slow or dead receiver holds only its own slots: REST, websockets and other channels
never wait for it. Attempts run on the event loop as plain aiohttp requests with a total timeout.

Single process: which rows are in flight is known in memory. A crash loses only that knowledge; the
rows are still in the outbox and are attempted again after the restart, with the same webhook id.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import Any, Awaitable

import aiohttp

from media.storage import MediaStore

from ..config import Config
from ..sealing import Sealer
from ..store import outbox
from ..store.db import Database
from . import chat, email
from .addresses import GuardedResolver
from .outcomes import Attempt, Kind, record

log = logging.getLogger("inbox.outbound")

IDLE_SECONDS = 30.0      # a re-scan with nothing announced: a safety net, one indexed query
BATCH = 500              # due rows looked at per scan
COOLDOWN_SECONDS = 5.0   # an attempt that raised (a bug, a full disk) is not retried at once



class Outbound:
    def __init__(self, db: Database, config: Config, sealer: Sealer, files: MediaStore) -> None:
        self.db, self.config, self.sealer, self.files = db, config, sealer, files
        self._wake = asyncio.Event()
        self._stopping = False
        self._rows: set[int] = set()
        self._lanes: set[tuple[str, int]] = set()
        self._targets: Counter[tuple[str, int]] = Counter()
        self._cooling: dict[int, float] = {}
        # Rows whose attempt ended since the current scan began: the scan's answer may predate the
        # outcome (a sent row still listed), and must not start them again.
        self._ended: set[int] = set()
        self._tasks: set[asyncio.Task] = set()
        self._runner: asyncio.Task | None = None
        self.session: aiohttp.ClientSession | None = None
        self.attempts = 0  # for metrics and benchmarks

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(resolver=GuardedResolver(allow_private=self.config.outbound_allow_private),
                                         limit=0, ttl_dns_cache=60)
        self.session = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(),
                                             trust_env=False)
        self.db.nudges[outbox.OUTBOX] = self.wake
        self._runner = asyncio.create_task(self._run(), name="outbound")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        self.db.nudges.pop(outbox.OUTBOX, None)
        tasks = [t for t in (self._runner, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        # An attempt cut short is not recorded: its row stays due and is sent again after a restart.
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.session is not None:
            await self.session.close()

    def wake(self) -> None:
        self._wake.set()

    def _attempt(self, row: dict[str, Any]) -> tuple[Awaitable[Attempt | None], Kind]:
        """The attempt for a row, and how to record it."""
        if row["kind"] == "chat":
            assert self.session is not None
            return (chat.attempt(self.session, self.db, self.config, self.sealer, row["item_id"], row["webhook_id"]),
                    chat.KIND)
        if row["kind"] == "email":
            return email.attempt(self.db, self.config, self.sealer, self.files, row["item_id"]), email.KIND
        raise ValueError(f"no sender for {row['kind']!r}")

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                sleep = await self._scan()
            except Exception:  # a failed read: log it and look again later, never stop delivering
                log.exception("outbox scan failed")
                sleep = COOLDOWN_SECONDS
            # asyncio.timeout, not wait_for: on Python 3.11 a cancellation that meets the wake-up in
            # the same step is swallowed by wait_for, and stop() then waited for the next wake.
            try:
                async with asyncio.timeout(sleep):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def _scan(self) -> float:
        """Start every attempt that is due and has room; how long to sleep until the next is due."""
        now = self.config.clock()
        mono = time.monotonic()
        self._cooling = {k: v for k, v in self._cooling.items() if v > mono}
        self._ended.clear()
        limit = self.config.outbound_concurrency
        busy = [f"{kind}:{target}" for (kind, target), n in self._targets.items() if n >= limit]
        for row in await outbox.due(self.db, now, BATCH, per_target=limit, busy=busy):
            lane, target = (row["kind"], row["lane"]), (row["kind"], row["target_id"])
            if row["id"] in self._rows or row["id"] in self._ended or row["id"] in self._cooling \
                    or lane in self._lanes or self._targets[target] >= limit:
                continue  # each of these wakes the worker when it changes
            self._rows.add(row["id"])
            self._lanes.add(lane)
            self._targets[target] += 1
            task = asyncio.create_task(self._run_one(dict(row)), name=f"outbound-{row['kind']}-{row['item_id']}")
            self._tasks.add(task)
        upcoming = await outbox.next_due(self.db, now)
        sleep = IDLE_SECONDS if upcoming is None else min(IDLE_SECONDS, max(0.0, upcoming - now))
        if self._cooling:
            sleep = min(sleep, max(0.0, min(self._cooling.values()) - mono))
        return sleep

    async def _run_one(self, row: dict[str, Any]) -> None:
        started = time.monotonic()
        try:
            attempt, kind = self._attempt(row)
            result = await attempt
            self.attempts += 1  # before its outcome is written: whoever sees the outcome sees the count
            await record(self.db, self.config, kind, row["id"], result)
            log.info("outbound attempt", extra={
                "kind": row["kind"], "item_id": row["item_id"], "target_id": row["target_id"],
                "webhook_id": row["webhook_id"], "attempt": row["attempts"] + 1,
                "code": getattr(result, "code", None), "error": getattr(result, "error", None),
                "ms": round((time.monotonic() - started) * 1000, 1)})
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("outbound attempt failed to run", extra={"kind": row["kind"], "item_id": row["item_id"]})
            self._cooling[row["id"]] = time.monotonic() + COOLDOWN_SECONDS
        finally:
            self._ended.add(row["id"])
            self._rows.discard(row["id"])
            self._lanes.discard((row["kind"], row["lane"]))
            self._targets[(row["kind"], row["target_id"])] -= 1
            self._tasks.discard(asyncio.current_task())  # type: ignore[arg-type]
            self._wake.set()
