"""A chat provider played by a real aiohttp server on a loopback port: it receives our outgoing
replies, checks each signature with the Standard Webhooks library, records what came, and answers
from a script (a status code, a body, headers, or a hang)."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from standardwebhooks.webhooks import Webhook

from auth.signing import sign


@dataclass
class Answer:
    status: int = 200
    body: Any = None               # JSON-encoded when not bytes
    headers: dict = field(default_factory=dict)
    hang: float = 0.0              # seconds to wait before answering (past our timeout: a hang)


@dataclass
class Received:
    at: float
    headers: dict
    body: bytes
    verified: bool

    @property
    def json(self) -> dict:
        return json.loads(self.body)

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


class Provider:
    def __init__(self, secret: str = "") -> None:
        self.secret = secret
        self.script: list[Answer] = []
        self.default = Answer(200, {"id": "auto"})
        self.received: list[Received] = []
        self.other_paths: list[str] = []
        self._arrived = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> Provider:
        app = web.Application()
        app.router.add_post("/outbound", self._handle)
        app.router.add_route("*", "/{tail:.*}", self._other)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/outbound"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def verify(self, headers: dict, body: bytes) -> bool:
        """The scheme's own library computes the expected signature. Its ``verify`` also compares the
        timestamp with the real clock, which a test server's fake clock is not; that part is checked
        against the timestamp header instead."""
        wh = Webhook(self.secret)
        stamp = datetime.fromtimestamp(int(headers["webhook-timestamp"]), UTC)
        expected = wh.sign(headers["webhook-id"], stamp, body)
        return expected in headers.get("webhook-signature", "").split(" ")

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        async with self._arrived:
            self.received.append(Received(time.monotonic(), headers, body, self.verify(headers, body)))
            self._arrived.notify_all()
        answer = self.script.pop(0) if self.script else self.default
        if answer.hang:
            await asyncio.sleep(answer.hang)
        data = answer.body if isinstance(answer.body, bytes) else json.dumps(answer.body).encode() \
            if answer.body is not None else b""
        return web.Response(status=answer.status, body=data, headers=answer.headers,
                            content_type="application/json" if data else None)

    async def _other(self, request: web.Request) -> web.StreamResponse:
        self.other_paths.append(request.path)
        return web.Response(status=200)

    async def wait_for(self, count: int, timeout: float = 20.0) -> list[Received]:
        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(lambda: len(self.received) >= count), timeout)
        return list(self.received)


def signed_status(secret: str, payload: dict, now: float) -> tuple[bytes, dict]:
    """A status callback as a provider signs it (the inbound scheme, docs/ingestion.md)."""
    body = json.dumps(payload).encode()
    stamp = str(int(now))
    return body, {"X-Inbox-Timestamp": stamp, "X-Inbox-Signature": sign(secret, stamp, body),
                  "Content-Type": "application/json"}
