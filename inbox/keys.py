"""Typed application state."""

from __future__ import annotations

from aiohttp import web

from auth.passwords import Hasher
from media.storage import MediaStore

from .config import Config
from .outbound.worker import Outbound
from .realtime.hub import Hub
from .sealing import Sealer
from .store.db import Database

CONFIG = web.AppKey("config", Config)
DB = web.AppKey("db", Database)
HASHER = web.AppKey("hasher", Hasher)
SEALER = web.AppKey("sealer", Sealer)
HUB = web.AppKey("hub", Hub)
MEDIA = web.AppKey("media", MediaStore)
OUTBOUND = web.AppKey("outbound", Outbound)
