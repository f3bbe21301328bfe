"""The websocket hub: every committed event goes, in id order, to each connection whose user may see
it, redacted for that user, serialised once per distinct redaction.

Shape (REALTIME-LESSONS):
- One dispatcher task consumes committed events in order. Control events (rights, groups, roles,
  subscriptions, security policy, field definitions) are applied before the next event is filtered,
  so a rights change takes effect "from the next event on".
- Each connection has a bounded queue and one writer task; a full queue closes that connection with
  ``CLOSE_SLOW`` and the client resumes by cursor. Nobody waits on a slow socket.
- Resume: a connection is registered first (live events are buffered), then catches up from the
  database after ``last_event_id``, then drains the buffer skipping ids it already handled: no gap,
  no duplicate. A cursor older than the retained log gets a ``resync`` frame.
- A sweeper closes sockets whose session ended or whose user was disabled, within half a second.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson
from aiohttp import web

from auth.network import address_allowed, parse_allowlist
from auth.policy import Subject

from ..actions.access import load_subject
from ..actions.records import load_defs
from ..times import iso
from ..store import events as event_rows
from ..store import security as security_rows
from ..store.db import Database
from ..store.events import Event
from .views import lost_lead, view

log = logging.getLogger("inbox.realtime")

# Close codes (documented in docs/realtime.md).
CLOSE_PROTOCOL = 4000      # the first frame was not a valid auth frame
CLOSE_SESSION = 4001       # the session ended, expired, or the user was disabled: sign in again
CLOSE_FORBIDDEN = 4003     # the address is outside the workspace IP whitelist
CLOSE_SLOW = 4008          # the client fell behind its buffer: reconnect with last_event_id
CLOSE_GOING_AWAY = 1001    # the server is stopping

# How long catch-up waits for a reader to make room before calling it too slow.
CATCH_UP_PATIENCE = 10.0

CONTROL = frozenset({"access.changed", "subscription.changed", "security.changed", "fields.changed"})


class Connection:
    __slots__ = ("ws", "user_id", "session_id", "ip", "subject", "queue", "cursor", "live", "pending",
                 "closed", "writer", "close_code")

    def __init__(self, ws: web.WebSocketResponse, subject: Subject, session_id: int, ip: str, buffer: int) -> None:
        self.ws = ws
        self.user_id = subject.user_id
        self.session_id = session_id
        self.ip = ip
        self.subject = subject
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(buffer)
        self.cursor = 0                 # the last event id this connection has handled
        self.live = False
        self.pending: list[Event] = []
        self.closed = False
        self.writer: asyncio.Task | None = None
        self.close_code: int | None = None

    def offer(self, frame: str) -> None:
        if self.closed:
            return
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.close(CLOSE_SLOW)

    def close(self, code: int) -> None:
        """Close from any task without waiting: the writer finishes the job."""
        if self.closed:
            return
        self.closed = True
        self.close_code = code
        while not self.queue.empty():  # drop what a slow client would never read
            self.queue.get_nowait()
        self.queue.put_nowait(None)

    async def run_writer(self) -> None:
        try:
            while True:
                frame = await self.queue.get()
                if frame is None:
                    break
                await self.ws.send_str(frame)
        except (ConnectionError, RuntimeError):
            pass  # the peer went away; the reader notices too
        finally:
            self.closed = True
            if not self.ws.closed and self.close_code is not None:
                await self.ws.close(code=self.close_code)


def _frame(kind: str, **fields: Any) -> str:
    return orjson.dumps({"type": kind, **fields}).decode()


class Hub:
    def __init__(self, db: Database, *, buffer: int = 1024, sweep_seconds: float = 0.5,
                 retention_seconds: float = 7 * 86400, clock=time.time) -> None:
        self.db = db
        self.retention_seconds = retention_seconds
        self.clock = clock
        self.buffer = buffer
        self.sweep_seconds = sweep_seconds
        self.connections: dict[int, set[Connection]] = {}
        self.defs: dict = {}
        self.policy: dict = {}
        self._inbox: asyncio.Queue[Event | None] = asyncio.Queue()
        self._tasks: list[asyncio.Task] = []
        self.delivered = 0  # frames queued, for metrics and benchmarks

    # --- lifecycle ---

    async def start(self) -> None:
        self.defs = await load_defs(self.db)
        self.policy = await security_rows.settings(self.db)
        self.db.listeners.append(self._inbox.put_nowait)
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
        for conn in self.all():
            conn.close(CLOSE_GOING_AWAY)
        writers = [c.writer for c in self.all() if c.writer]
        await asyncio.gather(*writers, return_exceptions=True)

    def all(self) -> list[Connection]:
        return [c for conns in self.connections.values() for c in conns]

    # --- connections ---

    async def attach(self, conn: Connection, last_event_id: int | None) -> None:
        self.connections.setdefault(conn.user_id, set()).add(conn)  # buffer live events from now on
        conn.writer = asyncio.create_task(conn.run_writer(), name=f"ws-writer-{conn.user_id}")
        oldest, newest = await event_rows.bounds(self.db)
        if last_event_id is None or last_event_id > newest:
            conn.cursor = newest if last_event_id is None else last_event_id
        elif last_event_id < oldest - 1:
            conn.offer(_frame("resync", oldest_event_id=oldest, last_event_id=newest))
            conn.cursor = newest
        else:
            conn.cursor = last_event_id
        conn.offer(_frame("ready", user_id=conn.user_id, last_event_id=max(conn.cursor, newest)))
        while not conn.closed:
            batch = await event_rows.after(self.db, conn.cursor)
            if not batch:
                break
            for event in batch:
                # Catch-up goes at the reader's pace: wait for room rather than overflow the buffer.
                for frame in self._frames_for(conn, event, {}):
                    try:
                        await asyncio.wait_for(conn.queue.put(frame), CATCH_UP_PATIENCE)
                    except asyncio.TimeoutError:
                        conn.close(CLOSE_SLOW)
                        return
                    if conn.closed:
                        return
        # No await from here on: the buffered live events join exactly where the catch-up ended.
        for event in conn.pending:
            self._handle_for(conn, event, {})
        conn.pending = []
        conn.live = True

    def detach(self, conn: Connection) -> None:
        conns = self.connections.get(conn.user_id)
        if conns is not None:
            conns.discard(conn)
            if not conns:
                del self.connections[conn.user_id]

    # --- delivery ---

    async def _dispatch(self) -> None:
        while True:
            event = await self._inbox.get()
            if event is None:
                return
            try:
                if event.type in CONTROL:
                    await self._control(event)
                self._deliver(event)
            except Exception:
                log.exception("event dispatch failed", extra={"event_id": event.id, "type": event.type})
            # A committed batch arrives as a burst; letting the writers run between events keeps a
            # reader's queue short, so only a reader that really falls behind fills its buffer.
            await asyncio.sleep(0)

    def _deliver(self, event: Event) -> None:
        cache: dict[tuple, str] = {}
        for conns in list(self.connections.values()):
            for conn in list(conns):
                if conn.live:
                    self._handle_for(conn, event, cache)
                else:
                    conn.pending.append(event)

    def _handle_for(self, conn: Connection, event: Event, cache: dict[tuple, str]) -> None:
        for frame in self._frames_for(conn, event, cache):
            conn.offer(frame)

    def _frames_for(self, conn: Connection, event: Event, cache: dict[tuple, str]) -> list[str]:
        """The frames one connection gets for one event (usually none or one); advances its cursor."""
        if event.id <= conn.cursor or conn.closed:
            return []
        conn.cursor = event.id
        frames = []
        lost = lost_lead(conn.subject, event)
        if lost is not None:
            frames.append(_frame("access_revoked", id=event.id, lead_id=lost))
        if event.type == "access.changed" and self._concerns(conn, event):
            frames.append(_frame("access_changed", id=event.id))
        shown = view(conn.subject, event, self.defs)
        if shown is not None:
            frame = cache.get(shown.signature)
            if frame is None:
                frame = _frame("event", id=event.id, event=event.type, at=iso(event.at), data=shown.build())
                cache[shown.signature] = frame
            frames.append(frame)
            self.delivered += 1
        return frames

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
            for uid in (list(self.connections) if users is None else users):
                await self._reload(uid)

    async def _reload(self, user_id: int) -> None:
        conns = self.connections.get(user_id)
        if not conns:
            return
        row = await self.db.fetchone("SELECT is_admin, is_active FROM users WHERE id = ?", (user_id,))
        if row is None or not row["is_active"]:
            for conn in list(conns):
                conn.close(CLOSE_SESSION)
            return
        subject = await load_subject(self.db, user_id, is_admin=bool(row["is_admin"]))
        for conn in list(self.connections.get(user_id, ())):
            conn.subject = subject

    def _enforce_policy(self) -> None:
        if not self.policy.get("block_untrusted_api"):
            return
        allowed = parse_allowlist(e["cidr"] for e in self.policy.get("ip_whitelist", ()))
        for conn in self.all():
            if not address_allowed(conn.ip, allowed):
                conn.close(CLOSE_FORBIDDEN)

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
                removed = await self.db.write(lambda tx: event_rows.prune(tx, cutoff))
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
            rows = await self.db.fetchall(
                f"SELECT s.id FROM sessions s JOIN users u ON u.id = s.user_id WHERE u.is_active = 1"
                f" AND s.id IN ({','.join('?' * len(chunk))})", chunk)
            alive.update(r[0] for r in rows)
        for conn in conns:
            if conn.session_id not in alive:
                conn.close(CLOSE_SESSION)

