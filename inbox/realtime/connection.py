"""One authenticated websocket as the hub sees it, and the frames written to it.

Why frames go straight to the transport: a server-to-client websocket frame is unmasked, so the
bytes on the wire are the same for every reader who gets the same redaction. The hub builds each
distinct frame once (``text_frame``) and hands the same ``bytes`` to every recipient's transport,
which never blocks: it either sends at once or keeps the rest in its write buffer. That buffer is
the connection's bounded queue: past ``limit`` bytes unsent, the reader is too slow and is closed
with ``CLOSE_SLOW`` (it resumes by cursor). Nobody waits on a slow socket, frames keep their order
(every write happens on the event loop, whole frames at a time, so aiohttp's own pongs and close
frames only ever fall between ours), and an idle socket costs no task and no queue.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import orjson
from aiohttp import web

from auth.policy import Subject

# Close codes (documented in docs/realtime.md).
CLOSE_PROTOCOL = 4000      # the first frame was not a valid auth frame
CLOSE_SESSION = 4001       # the session ended, expired, or the user was disabled: sign in again
CLOSE_FORBIDDEN = 4003     # a workspace gate refuses the session (IP whitelist, required 2FA); the reason names it
CLOSE_SLOW = 4008          # the client fell behind its buffer: reconnect with last_event_id
CLOSE_GOING_AWAY = 1001    # the server is stopping

# How long catch-up waits for a reader to make room before calling it too slow, and how often it looks.
CATCH_UP_PATIENCE = 10.0
CATCH_UP_POLL = 0.005
# How long a server-side close may take (close frame behind a full buffer, the client's answer)
# before the connection is dropped.
CLOSE_PATIENCE = 5.0


def text_frame(payload: bytes) -> bytes:
    """A complete, unmasked, final websocket text frame (RFC 6455 section 5.2) around ``payload``."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return struct.pack("!BBH", 0x81, 126, n) + payload
    return struct.pack("!BBQ", 0x81, 127, n) + payload


def frame(kind: str, **fields: Any) -> bytes:
    return text_frame(orjson.dumps({"type": kind, **fields}))


class Connection:
    __slots__ = ("ws", "transport", "user_id", "session_id", "ip", "has_2fa", "subject", "limit", "cursor", "live",
                 "pending", "closed", "closer", "staged")

    def __init__(self, ws: web.WebSocketResponse, transport: asyncio.Transport | None, subject: Subject,
                 session_id: int, ip: str, limit: int, *, has_2fa: bool = False) -> None:
        self.ws = ws
        self.transport = transport
        self.user_id = subject.user_id
        self.session_id = session_id
        self.ip = ip
        # Fixed for the session's life: turning 2FA on or off ends every session of the user.
        self.has_2fa = has_2fa
        self.subject = subject
        self.limit = limit              # bytes the transport may hold unsent before the reader is too slow
        self.cursor = 0                 # the last event id this connection has handled
        self.live = False
        self.pending: list | None = None  # events published while catching up
        self.closed = False
        self.closer: asyncio.Task | None = None
        self.staged: list[bytes] | None = None  # this burst's frames, written together by ``flush``

    def stage(self, data: bytes, dirty: list[Connection] | None) -> None:
        """Hold a frame until the end of the dispatcher's burst: one write (one system call, the
        largest cost per delivery) for all the frames a burst of events brings this reader. With no
        burst (``dirty`` None: a lone event, or catch-up) write it now."""
        if dirty is None:
            self.send(data)
            return
        if self.closed:
            return
        staged = self.staged
        if staged is None:
            self.staged = [data]
            dirty.append(self)
        else:
            staged.append(data)

    def flush(self) -> None:
        staged, self.staged = self.staged, None
        if staged:
            self.send(staged[0] if len(staged) == 1 else b"".join(staged))

    def send(self, data: bytes) -> None:
        if self.closed:
            return
        transport = self.transport
        if transport is None or transport.is_closing():
            self.closed = True  # the peer went away; the reader loop notices and detaches
            return
        if transport.get_write_buffer_size() > self.limit:
            self.close(CLOSE_SLOW)
            return
        transport.write(data)

    async def wait_for_room(self) -> bool:
        """Catch-up goes at the reader's pace: wait until half the buffer is free (False: too slow)."""
        transport = self.transport
        deadline = asyncio.get_running_loop().time() + CATCH_UP_PATIENCE
        while not self.closed and transport is not None and transport.get_write_buffer_size() > self.limit // 2:
            if asyncio.get_running_loop().time() > deadline:
                self.close(CLOSE_SLOW)
                return False
            await asyncio.sleep(CATCH_UP_POLL)
        return not self.closed

    def close(self, code: int, reason: str = "") -> None:
        """Close from any task without waiting; ``closer`` finishes the job."""
        if self.closed:
            return
        self.closed = True
        self.closer = asyncio.ensure_future(self._close(code, reason))

    async def _close(self, code: int, reason: str) -> None:
        try:
            await asyncio.wait_for(self.ws.close(code=code, message=reason.encode()), CLOSE_PATIENCE)
        except (TimeoutError, ConnectionError, RuntimeError):
            if self.transport is not None:
                self.transport.abort()
