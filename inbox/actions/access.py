"""Load a user's ``Subject`` for the permission core. Read on every request, so a rights change
takes effect on the very next one (rule 13); it costs three indexed reads."""

from __future__ import annotations

from auth.policy import Subject

from ..store import users as rows
from ..store.db import Database, Tx
from .people import effective_from

# Team-mates have the same circle (everyone they share a group with, themselves included): keep one
# copy of each, as an open websocket holds its user's Subject for hours. Bounded by clearing.
_CIRCLES: dict[frozenset[int], frozenset[int]] = {}
_CIRCLES_MAX = 65536


async def load_subject(db: Database | Tx, user_id: int, *, is_admin: bool) -> Subject:
    return subject_from(user_id, is_admin, await rows.rights_sources(db, user_id),
                        await rows.group_comembers(db, user_id))


def subject_from(user_id: int, is_admin: bool, source_rows, comembers) -> Subject:
    """A Subject from ``users.RIGHTS_SOURCES`` rows and co-member ids, however they were read."""
    circle = frozenset(comembers) | {user_id}
    if len(_CIRCLES) >= _CIRCLES_MAX:
        _CIRCLES.clear()
    circle = _CIRCLES.setdefault(circle, circle)
    return Subject(user_id, is_admin=is_admin, effective=effective_from(source_rows), members=circle)
