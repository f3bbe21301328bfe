"""Small helpers shared by handlers: the acting caller, timestamps and the list envelope."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from auth.policy import Subject

from ..actions.access import load_subject
from ..actions.context import Actor
from ..keys import CONFIG, DB
from .identity import IDENTITY, client_ip, identity

SUBJECT = web.RequestKey("subject", Subject)


def actor(request: web.Request) -> Actor:
    ident = request.get(IDENTITY)
    return Actor(ident.user_id if ident else None, client_ip(request), request.app[CONFIG].clock())


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def page_of(items: list[Any], *, page: int, limit: int, total: int) -> dict[str, Any]:
    return {"items": items, "page": page, "limit": limit, "total": total}


async def subject_of(request: web.Request) -> Subject:
    """The caller's rights, read fresh for every request (rule 13)."""
    subject = request.get(SUBJECT)
    if subject is None:
        ident = identity(request)
        subject = await load_subject(request.app[DB], ident.user_id, is_admin=ident.is_admin)
        request[SUBJECT] = subject
    return subject
