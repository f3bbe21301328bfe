"""Load a user's ``Subject`` for the permission core. Read on every request, so a rights change
takes effect on the very next one (rule 13); it costs three indexed reads."""

from __future__ import annotations

from auth.policy import Subject

from ..store import users as rows
from ..store.db import Database, Tx
from .people import load_effective


async def load_subject(db: Database | Tx, user_id: int, *, is_admin: bool) -> Subject:
    effective = await load_effective(db, user_id)
    members = await rows.group_comembers(db, user_id)
    return Subject(user_id, is_admin=is_admin, effective=effective, members=members)
