"""Creating a workspace and its first administrator, outside any HTTP request (CLI and tests)."""

from __future__ import annotations

from auth.passwords import Hasher, password_problem

from .actions.context import Actor
from .actions.people import do_create_user
from .config import Config
from .store import security as security_rows
from .store.db import Database


class SetupError(Exception):
    pass


workspace_exists = security_rows.workspace_exists


async def init_workspace(db: Database, hasher: Hasher, config: Config, *, name: str, email: str,
                         admin_name: str, password: str) -> int:
    """Create the workspace and its first user, who is an administrator (SPEC 1)."""
    problem = password_problem(password, email=email, name=admin_name)
    if problem:
        raise SetupError(problem)
    if await workspace_exists(db):
        raise SetupError(f"{config.db_path} already holds a workspace; use another --data-dir.")
    now = config.clock()

    await db.write(lambda tx: security_rows.create_workspace(tx, name, now))
    return await do_create_user(db, Actor(None, "cli", now), email=email, name=admin_name,
                                password_hash=await hasher.hash(password))
