"""Creating a workspace and its first administrator, outside any HTTP request (CLI and tests)."""

from __future__ import annotations

import orjson

from auth.passwords import Hasher, password_problem

from .actions.context import Actor
from .actions.people import do_create_user
from .config import Config
from .store.db import Database, Tx


class SetupError(Exception):
    pass


async def workspace_exists(db: Database) -> bool:
    return bool(await db.fetchval("SELECT count(*) FROM workspace"))


async def init_workspace(db: Database, hasher: Hasher, config: Config, *, name: str, email: str,
                         admin_name: str, password: str) -> int:
    """Create the workspace and its first user, who is an administrator (SPEC 1)."""
    problem = password_problem(password, email=email, name=admin_name)
    if problem:
        raise SetupError(problem)
    if await workspace_exists(db):
        raise SetupError(f"{config.db_path} already holds a workspace; use another --data-dir.")
    now = config.clock()

    async def create(tx: Tx) -> None:
        await tx.execute("INSERT INTO workspace (id, name, settings, created_at) VALUES (1, ?, ?, ?)",
                         (name, orjson.dumps({}).decode(), now))

    await db.write(create)
    return await do_create_user(db, Actor(None, "cli", now), email=email, name=admin_name,
                                password_hash=await hasher.hash(password))
