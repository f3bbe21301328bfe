"""The websocket hub: every committed event goes, in id order, to each connection whose user may see
it, redacted for that user, serialised once per distinct redaction.

Shape (REALTIME-LESSONS):
- One dispatcher task consumes committed events in order. Control events (rights, groups, roles,
  subscriptions, security policy, field definitions) are applied before the next event is filtered,
  so a rights change takes effect "from the next event on".
- Only the connections that could see an event are asked (``reach.Reach``), and each distinct frame
  is built once and written to every recipient's transport without waiting (``connection``); a
  reader whose unsent bytes pass its limit is closed with ``CLOSE_SLOW`` and resumes by cursor.
- Resume: a connection is registered first (live events are buffered), then catches up from the
  database after ``last_event_id``, then drains the buffer skipping ids it already handled: no gap,
  no duplicate. A cursor older than the retained log gets a ``resync`` frame.
- A sweeper closes sockets whose session ended or whose user was disabled, within half a second.
"""

from __future__ import annotations

import asyncio
import logging
import time

from auth.gates import refusal

from ..actions.access import load_subject
from ..actions.records import load_defs
from ..store import events as event_rows
from ..store import security as security_rows
from ..store import users as user_rows
from ..store.db import Database
from ..store.events import Event
from ..times import iso
from .connection import CLOSE_FORBIDDEN, CLOSE_GOING_AWAY, CLOSE_SESSION, Connection, frame
from .reach import Reach
from .views import View, lost_lead, reader_class, view

log = logging.getLogger("inbox.realtime")

CONTROL = frozenset({"access.changed", "subscription.changed", "security.changed", "fields.changed"})
# Events that may take a lead out of a reader's sight or change their rights (extra frames).
REVOKING = frozenset({"lead.updated", "subscription.changed", "access.changed"})
# Most events the dispatcher takes in one burst (see ``_dispatch``).
MAX_BURST = 64
_UNDECIDED = object()


class Hub:
    def __init__(self, db: Database, *, buffer_bytes: int = 512 * 1024, sweep_seconds: float = 0.5,
                 retention_seconds: float = 7 * 86400, clock=time.time) -> None:
        self.db = db
        self.retention_seconds = retention_seconds
        self.clock = clock
        self.buffer_bytes = buffer_bytes
        self.sweep_seconds = sweep_seconds
        self.reach = Reach()                      # live connections, indexed by what they may see
        self.attaching: set[Connection] = set()   # catching up; live events wait in their ``pending``
        self.defs: dict = {}
        self.policy: dict = {}
        self._inbox: asyncio.Queue[Event | None] = asyncio.Queue()
        self._tasks: list[asyncio.Task] = []
        self.delivered = 0  # event frames written, for metrics and benchmarks

    # --- lifecycle ---

    async def start(self) -> None:
        self.defs = await load_defs(self.db)
        self.policy = await security_rows.settings(self.db)
        self.db.bus.subscribe(self._inbox.put_nowait)
        self._tasks = [asyncio.create_task(self._dispatch(), name="hub-dispatch"),
                       asyncio.create_task(self._sweep(), name="hub-sweep"),
                       asyncio.create_task(self._prune(), name="hub-prune")]

    async def stop(self) -> None:
        self._inbox.put_nowait(None)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.close_all()

    async def close_all(self) -> None:
        conns = self.all()
        for conn in conns:
            conn.close(CLOSE_GOING_AWAY)
        await asyncio.gather(*(c.closer for c in conns if c.closer), return_exceptions=True)

    def all(self) -> list[Connection]:
        return [*self.reach.everyone, *self.attaching]

    def connection(self, ws, transport, subject, session_id: int, ip: str, *, has_2fa: bool) -> Connection:
        return Connection(ws, transport, subject, session_id, ip, self.buffer_bytes, has_2fa=has_2fa)

    # --- connections ---

    async def attach(self, conn: Connection, last_event_id: int | None) -> None:
        conn.pending = []
        self.attaching.add(conn)  # buffer live events from now on
        # The handshake checked the gates with the policy read with the session; a policy change the
        # hub applied since then would miss this socket, so check again against the hub's policy. No
        # await since joining ``attaching``: a change applied after this closes the socket there.
        if not self._admits(conn):
            self.attaching.discard(conn)
            return
        try:
            await self._catch_up(conn, last_event_id)
        finally:
            self.attaching.discard(conn)
        if conn.closed:
            return
        # No await from here on: the buffered live events join exactly where the catch-up ended.
        for event in conn.pending:
            self._handle_for(conn, event, {})
        conn.pending = None
        conn.live = True
        self.reach.add(conn)

    async def _catch_up(self, conn: Connection, last_event_id: int | None) -> None:
        oldest, newest = await event_rows.bounds(self.db)
        if last_event_id is None or last_event_id > newest:
            conn.cursor = newest if last_event_id is None else last_event_id
        elif last_event_id < oldest - 1:
            conn.send(frame("resync", oldest_event_id=oldest, last_event_id=newest))
            conn.cursor = newest
        else:
            conn.cursor = last_event_id
        conn.send(frame("ready", user_id=conn.user_id, last_event_id=max(conn.cursor, newest)))
        while not conn.closed:
            batch = await event_rows.after(self.db, conn.cursor)
            if not batch:
                return
            for event in batch:
                if not await conn.wait_for_room():
                    return
                self._handle_for(conn, event, {})

    def detach(self, conn: Connection) -> None:
        conn.closed = True
        self.attaching.discard(conn)
        if conn.live:
            conn.live = False
            self.reach.remove(conn)

    # --- delivery ---

    async def _dispatch(self) -> None:
        inbox = self._inbox
        while True:
            burst = [await inbox.get()]
            # A committed batch arrives as a burst: take what is waiting (bounded, to keep the first
            # event's latency short) and write each reader's frames from all of it at once.
            while len(burst) < MAX_BURST and not inbox.empty():
                burst.append(inbox.get_nowait())
            # Staging pays only when a reader gets several frames; a lone event is written as it is
            # decided, so its first readers do not wait for the last one's decision.
            dirty: list[Connection] | None = [] if len(burst) > 1 else None
            for event in burst:
                if event is None:
                    self._flush(dirty)
                    return
                try:
                    if event.type in CONTROL:
                        self._flush(dirty)  # what came before a rights change goes out under the old rights
                        await self._control(event)
                    self._deliver(event, dirty)
                except Exception:
                    log.exception("event dispatch failed", extra={"event_id": event.id, "type": event.type})
            self._flush(dirty)
            await asyncio.sleep(0)  # let readers and new requests run between bursts

    @staticmethod
    def _flush(dirty: list[Connection] | None) -> None:
        if dirty:
            for conn in dirty:
                conn.flush()
            dirty.clear()

    def _deliver(self, event: Event, dirty: list[Connection] | None) -> None:
        for conn in self.attaching:
            conn.pending.append(event)
        if not self.reach:
            return
        frames: dict[tuple, bytes] = {}          # one serialisation per distinct redaction
        views: dict[tuple, View | None] = {}     # one decision per class of reader
        for conn in self.reach.candidates(event.type, event.data):
            self._handle_for(conn, event, frames, views, dirty)

    def _handle_for(self, conn: Connection, event: Event, frames: dict[tuple, bytes],
                    views: dict[tuple, View | None] | None = None, dirty: list[Connection] | None = None) -> None:
        """What one connection gets for one event (usually nothing or one frame): staged for the
        burst's flush when ``dirty`` is given, else written now (catch-up)."""
        if event.id <= conn.cursor or conn.closed:
            return
        conn.cursor = event.id
        subject = conn.subject
        if event.type in REVOKING:
            lost = lost_lead(subject, event)
            if lost is not None:
                conn.stage(frame("access_revoked", id=event.id, lead_id=lost), dirty)
            if event.type == "access.changed" and self._concerns(conn, event):
                conn.stage(frame("access_changed", id=event.id), dirty)
        key = reader_class(subject, event) if views is not None else None
        if key is None:
            shown = view(subject, event, self.defs)
        else:
            shown = views.get(key, _UNDECIDED)
            if shown is _UNDECIDED:
                shown = views[key] = view(subject, event, self.defs)
        if shown is not None:
            signature, build = shown
            data = frames.get(signature)
            if data is None:
                data = frames[signature] = frame("event", id=event.id, event=event.type, at=iso(event.at),
                                                 data=build())
            conn.stage(data, dirty)
            self.delivered += 1

    @staticmethod
    def _concerns(conn: Connection, event: Event) -> bool:
        users = event.data.get("user_ids")
        return users is None or conn.user_id in users

    async def _control(self, event: Event) -> None:
        if event.type == "fields.changed":
            self.defs = await load_defs(self.db)
        elif event.type == "security.changed":
            self.policy = await security_rows.settings(self.db)
            self._enforce_policy()
        elif event.type == "access.changed":
            users = event.data.get("user_ids")
            for uid in (list({c.user_id for c in self.all()}) if users is None else users):
                await self._reload(uid)

    def _of_user(self, user_id: int) -> list[Connection]:
        return [*self.reach.by_user.get(user_id, ()), *(c for c in self.attaching if c.user_id == user_id)]

    async def _reload(self, user_id: int) -> None:
        if not self._of_user(user_id):
            return
        row = await user_rows.activity_of(self.db, user_id)
        if row is None or not row["is_active"]:
            for conn in self._of_user(user_id):
                conn.close(CLOSE_SESSION)
            return
        subject = await load_subject(self.db, user_id, is_admin=bool(row["is_admin"]))
        for conn in self._of_user(user_id):  # again: the set may have changed while loading
            if conn.live:
                self.reach.remove(conn)
                conn.subject = subject
                self.reach.add(conn)
            else:
                conn.subject = subject

    def _admits(self, conn: Connection) -> bool:
        """The workspace gates (``auth.gates``), as the handshake applies them; closes a refused socket."""
        why = refusal(self.policy, ip=conn.ip, has_2fa=conn.has_2fa)
        if why is not None:
            conn.close(CLOSE_FORBIDDEN, why.value)
        return why is None

    def _enforce_policy(self) -> None:
        """Apply the workspace gates to open sockets at once, as the handshake applies them to new ones."""
        for conn in self.all():
            self._admits(conn)

    async def _sweep(self) -> None:
        """Close sockets whose session ended (logout, revocation, expiry cleanup) or user was disabled."""
        while True:
            await asyncio.sleep(self.sweep_seconds)
            try:
                await self._sweep_once()
            except Exception:
                log.exception("session sweep failed")

    async def _prune(self) -> None:
        """Drop events past the retention window; a client older than that gets ``resync``."""
        while True:
            try:
                cutoff = self.clock() - self.retention_seconds
                removed = await self.db.write(lambda tx: event_rows.prune(tx, cutoff))  # noqa: B023 (awaited here)
                if removed:
                    log.info("pruned events", extra={"removed": removed})
            except Exception:
                log.exception("event pruning failed")
            await asyncio.sleep(3600)

    async def _sweep_once(self) -> None:
        conns = [c for c in self.all() if not c.closed]
        ids = sorted({c.session_id for c in conns})
        alive: set[int] = set()
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            alive |= await user_rows.live_sessions(self.db, chunk)
        for conn in conns:
            if conn.session_id not in alive:
                conn.close(CLOSE_SESSION)

