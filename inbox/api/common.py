"""Small helpers shared by handlers: the acting caller, timestamps and the list envelope."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from auth.policy import Subject

from ..actions.access import load_subject, subject_from
from ..actions.context import Actor
from ..keys import CONFIG, DB
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
        subject = await subject_for(request.app[DB], identity(request))
        request[SUBJECT] = subject
    return subject


async def subject_for(db, ident) -> Subject:
    if ident.source_rows is not None:  # read with the session, in the same trip
        return subject_from(ident.user_id, ident.is_admin, ident.source_rows, ident.comembers)
    return await load_subject(db, ident.user_id, is_admin=ident.is_admin)
