"""/ws: one websocket per session, fed by the hub (SPEC section 4; protocol in docs/realtime.md).

The first frame authenticates: ``{"type": "auth", "token": "...", "last_event_id": 123}``. A browser
may instead rely on its session cookie, and then its ``Origin`` must be allowed (checklist 22); a
token in the URL is never accepted, so it cannot leak into logs.
"""

from __future__ import annotations

import asyncio

import orjson
from aiohttp import WSMsgType, web

from ..keys import HUB
from ..realtime.connection import CLOSE_FORBIDDEN, CLOSE_PROTOCOL, CLOSE_SESSION, Connection
from .common import subject_for
from .identity import COOKIE, check_gates, client_ip, identify, origin_allowed
from .problems import Problem, forbidden
from .routing import Access, registry

AUTH_TIMEOUT = 10.0


async def _close(ws: web.WebSocketResponse, code: int, reason: str) -> None:
    await ws.close(code=code, message=reason.encode()[:120])


@registry.route("GET", "/api/v1/ws", media="", access=Access.PUBLIC, tag="realtime",
                summary="Websocket of live events; first frame {type: auth, token?, last_event_id?}")
async def websocket(request: web.Request) -> web.StreamResponse:
    origin = request.headers.get("Origin")
    if origin and not origin_allowed(request, origin):
        raise forbidden(f"Origin {origin!r} may not open a websocket; add it to INBOX_ALLOWED_ORIGINS.")
    # timeout: how long a server-side close waits for the client's answer (a slow client may never).
    # compress=False: permessage-deflate would compress every frame once per recipient, undoing
    # the one-serialisation-per-redaction fan-out.
    ws = web.WebSocketResponse(heartbeat=30, max_msg_size=64 * 1024, timeout=2.0, compress=False)
    await ws.prepare(request)
    opened = await _open(request, ws)
    if opened is None:
        return ws
    conn, last_event_id = opened
    del opened
    hub = request.app[HUB]
    try:
        await hub.attach(conn, last_event_id)
        async for msg in ws:  # clients only ping; anything else is ignored
            if msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                break
    finally:
        hub.detach(conn)
        if conn.closer is not None:
            await asyncio.gather(conn.closer, return_exceptions=True)
        _release(request)
    return ws


def _release(request: web.Request) -> None:
    """Break a cycle aiohttp (3.14) leaves behind a finished websocket: the connection's protocol
    keeps the heartbeat callback (protocol -> WebSocketResponse._on_data_received -> response ->
    request -> protocol). Only a full collection frees such a cycle, about 40 objects per closed
    socket, and a full collection stops the loop for every open socket (35 ms with 1,000)."""
    protocol = request.protocol
    if getattr(protocol, "_data_received_cb", None) is not None:
        protocol._data_received_cb = None


async def _open(request: web.Request, ws: web.WebSocketResponse) -> tuple[Connection, int | None] | None:
    """Authenticate from the first frame, or close with the reason. Its own function so that
    nothing it reads (the frame, the identity, the workspace policy) stays referenced by the
    handler for the life of the socket: an idle socket should cost only what it needs."""
    try:
        msg = await ws.receive(timeout=AUTH_TIMEOUT)
    except TimeoutError:
        return await _close(ws, CLOSE_PROTOCOL, "send an auth frame first")
    try:
        first = orjson.loads(msg.data) if msg.type == WSMsgType.TEXT else None
    except orjson.JSONDecodeError:
        first = None
    last = first.get("last_event_id") if isinstance(first, dict) else None
    if not isinstance(first, dict) or first.get("type") != "auth" or not (
            last is None or (isinstance(last, int) and not isinstance(last, bool) and last >= 0)):
        return await _close(ws, CLOSE_PROTOCOL, "expected {type: auth, token?, last_event_id?}")
    token, via_cookie = first.get("token"), False
    if not token:
        token, via_cookie = request.cookies.get(COOKIE), True
    if not isinstance(token, str) or not token or not token.isascii():
        return await _close(ws, CLOSE_SESSION, "no session")
    try:
        ident = await identify(request, token, via_cookie)
    except Problem:
        return await _close(ws, CLOSE_SESSION, "the session has ended; sign in again")
    try:  # the same gates as every REST request: IP blocking, required 2FA
        check_gates(request, ident.settings, has_2fa=ident.has_2fa)
    except Problem as refused:
        return await _close(ws, CLOSE_FORBIDDEN, refused.slug)
    ip = client_ip(request)
    subject = subject_for(ident)
    return request.app[HUB].connection(ws, request.transport, subject, ident.session_id, ip,
                                       has_2fa=ident.has_2fa), last
