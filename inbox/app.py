"""The aiohttp application factory. Each resource is opened and closed by a cleanup context."""

from __future__ import annotations

from typing import AsyncIterator

from aiohttp import web

from auth.passwords import Hasher

# Registration order is match order: fixed paths such as /leads/custom_fields before /leads/{id}.
# isort: off
from .api import (auth_routes, catalog_routes, chats_routes, groups_roles_routes, meta_routes,  # noqa: F401  (register routes)
                  activity_routes, hooks_routes, inboxes_routes, media_routes, participants_routes, records_routes, security_routes, users_routes,
                  ws_routes)
# isort: on
from media.storage import MediaStore

from .api.middleware import access, errors
from .api.routing import registry
from .config import Config
from .keys import CONFIG, DB, HASHER, HUB, MEDIA, OUTBOUND, SEALER
from .outbound.worker import Outbound
from .realtime.hub import Hub
from .sealing import Sealer, load_key
from .store.db import Database

# Bodies larger than this are refused with 413 before they are read; media uploads get their own limit.
MAX_JSON_BODY = 1024 * 1024


def create_app(config: Config) -> web.Application:
    app = web.Application(middlewares=[errors, access], client_max_size=MAX_JSON_BODY)
    app[CONFIG] = config
    app[HASHER] = Hasher(time_cost=config.argon2_time_cost, memory_cost=config.argon2_memory_kib)
    app[SEALER] = Sealer(load_key(config.data_dir, config.secret_key))
    app[MEDIA] = MediaStore(config.data_dir / "media")

    async def database(app: web.Application) -> AsyncIterator[None]:
        db = Database(config.db_path, synchronous=config.sqlite_synchronous)
        await db.open()
        app[DB] = db
        hub = Hub(db, buffer_bytes=config.ws_buffer_bytes, retention_seconds=config.event_retention_seconds, clock=config.clock)
        await hub.start()
        app[HUB] = hub
        outbound = Outbound(db, config, app[SEALER], app[MEDIA])
        await outbound.start()
        app[OUTBOUND] = outbound
        yield
        await outbound.stop()
        await hub.stop()
        await db.close()

    async def close_sockets(app: web.Application) -> None:
        # Before aiohttp waits for open handlers: otherwise every websocket holds shutdown up.
        await app[HUB].close_all()

    app.cleanup_ctx.append(database)
    app.on_shutdown.append(close_sockets)
    registry.install(app)
    return app
