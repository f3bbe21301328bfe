"""Small helpers shared by handlers: the acting caller, timestamps and the list envelope."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from auth.policy import Subject

from ..actions.access import subject_from
from ..actions.context import Actor
from ..keys import CONFIG
from ..times import iso  # noqa: F401  (re-exported for handlers)
from .identity import IDENTITY, client_ip, identity

SUBJECT = web.RequestKey("subject", Subject)


def actor(request: web.Request) -> Actor:
    ident = request.get(IDENTITY)
    return Actor(ident.user_id if ident else None, client_ip(request), request.app[CONFIG].clock())


def page_of(items: list[Any], *, page: int, limit: int, total: int) -> dict[str, Any]:
    return {"items": items, "page": page, "limit": limit, "total": total}


async def subject_of(request: web.Request) -> Subject:
    """The caller's rights, read fresh for every request (rule 13)."""
    subject = request.get(SUBJECT)
    if subject is None:
        subject = subject_for(identity(request))
        request[SUBJECT] = subject
    return subject


def subject_for(ident) -> Subject:
    """From the rights sources and co-members read with the session, in the same trip."""
    return subject_from(ident.user_id, ident.is_admin, ident.source_rows, ident.comembers)
