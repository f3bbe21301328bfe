"""Fixtures: the real app on a loopback port, a real SQLite file in a temp directory, named personas.

Every request made through these fixtures is recorded, and when the whole suite runs, a route that no
test called fails the run (SECURITY-CHECKLIST 17, zulip-style).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

import conformance

from inbox.api.routing import registry
from inbox.app import create_app
from inbox.config import Config
from inbox.keys import CONFIG, DB, HASHER
from inbox.workspace import init_workspace

ADMIN_EMAIL, ADMIN_PASSWORD = "ada@example.com", "ada-correct-horse"
START = 1_800_000_000.0
# For modules that create many users: cheap password hashing (hashing has its own tests, which keep
# the real parameters). Use as ``config_overrides`` or spread into it.
FAST_HASHING = {"argon2_time_cost": 1, "argon2_memory_kib": 1024}  # a fixed UTC instant, so times in tests are reproducible

CALLED_ROUTES: set[tuple[str, str]] = set()
TESTS_DIR = Path(__file__).parent


class Clock:
    """The server's clock in tests: time moves only when a test says so."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Reply:
    status: int
    body: Any
    headers: Any
    content_type: str
    text: str


@dataclass
class Persona:
    email: str
    password: str
    user_id: int
    token: str
    name: str = ""
    extra: dict = field(default_factory=dict)


class Api:
    """A thin HTTP client over the real server. ``who`` picks the persona whose token is sent."""

    def __init__(self, client, app: web.Application, clock: Clock) -> None:
        self.client = client
        self.app = app
        self.clock = clock
        self.db = app[DB]
        self.hasher = app[HASHER]

    async def call(self, method: str, path: str, *, who: Persona | str | None = None, json_body: Any = ...,
                   data: Any = None, headers: dict | None = None, params: dict | None = None) -> Reply:
        headers = dict(headers or {})
        if who is not None:
            headers["Authorization"] = f"Bearer {who if isinstance(who, str) else who.token}"
        kwargs: dict[str, Any] = {"headers": headers}
        if json_body is not ...:
            kwargs["json"] = json_body
        elif data is not None:
            kwargs["data"] = data
        if params:
            kwargs["params"] = params
        async with self.client.request(method, path, **kwargs) as resp:
            text = await resp.text(errors="replace")  # downloads are bytes
            ctype = resp.headers.get("Content-Type", "").split(";")[0]
            parsed = json.loads(text) if text and ctype.endswith("json") else None
            return Reply(resp.status, parsed, resp.headers, ctype, text)

    async def get(self, path, **kw):
        return await self.call("GET", path, **kw)

    async def post(self, path, json=..., **kw):
        return await self.call("POST", path, json_body=json, **kw)

    async def patch(self, path, json=..., **kw):
        return await self.call("PATCH", path, json_body=json, **kw)

    async def put(self, path, json=..., **kw):
        return await self.call("PUT", path, json_body=json, **kw)

    async def delete(self, path, **kw):
        return await self.call("DELETE", path, **kw)

    async def login(self, email: str, password: str, **kw) -> Reply:
        return await self.post("/api/v1/auth/login", {"email": email, "password": password}, **kw)

    async def persona(self, email: str, password: str) -> Persona:
        r = await self.login(email, password)
        assert r.status == 200, r.body
        return Persona(email, password, r.body["user"]["id"], r.body["token"], r.body["user"]["name"])

    async def add_user(self, admin: Persona, name: str, **fields) -> Persona:
        email = fields.pop("email", f"{name.lower()}@example.com")
        password = fields.pop("password", f"{name.lower()}-secret-pass")
        r = await self.post("/api/v1/users", {"email": email, "name": name, "password": password, **fields},
                            who=admin)
        assert r.status == 201, r.body
        return await self.persona(email, password)

    async def rows(self, sql: str, params=()) -> list:
        return [tuple(r) for r in await self.db.fetchall(sql, params)]


def make_config(tmp_path: Path, clock: Clock, **overrides) -> Config:
    return Config(data_dir=tmp_path, clock=clock, **overrides)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def config_overrides() -> dict:
    """Override in a test module to start the server with other settings."""
    return {}


@pytest.fixture
async def api(aiohttp_client, tmp_path, clock, config_overrides) -> Api:
    app = create_app(make_config(tmp_path, clock, **config_overrides))

    async def record(request: web.Request, response: web.StreamResponse) -> None:
        handler_route = getattr(request.match_info.handler, "__route__", None)
        if handler_route is not None:
            CALLED_ROUTES.add((handler_route.method, handler_route.path))
            conformance.check(handler_route, response)

    app.on_response_prepare.append(record)
    # Personas authenticate by bearer token; cookie tests open their own session with a real jar.
    client = await aiohttp_client(app, cookie_jar=aiohttp.DummyCookieJar())
    await init_workspace(app[DB], app[HASHER], app[CONFIG], name="Test workspace", email=ADMIN_EMAIL,
                         admin_name="Ada", password=ADMIN_PASSWORD)
    return Api(client, app, clock)


@pytest.fixture
async def admin(api: Api) -> Persona:
    return await api.persona(ADMIN_EMAIL, ADMIN_PASSWORD)


@pytest.fixture(autouse=True)
def responses_match_their_schemas():
    """Every answer the server gives in a test is held to its route's declared schema (tests/conformance.py);
    a body with a key its model lacks, or a wrong type, fails the test that produced it."""
    seen = len(conformance.MISMATCHES)
    yield
    if len(conformance.MISMATCHES) > seen:
        pytest.fail("Responses that do not match their declared schema:\n" +
                    "\n".join(m[:3000] for m in conformance.MISMATCHES[seen:]), pytrace=False)


# --- route coverage: every declared route must be exercised by some test ---

def pytest_collection_finish(session: pytest.Session) -> None:
    collected = {Path(str(item.path)).name for item in session.items}
    every = {p.name for p in TESTS_DIR.glob("test_*.py")}
    session.config._inbox_full_run = every <= collected and not session.config.option.keyword \
        and not session.config.option.markexpr and not getattr(session.config.option, "lf", False)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if exitstatus != 0 or not getattr(session.config, "_inbox_full_run", False):
        return
    declared = {(r.method, r.path) for r in registry.routes}
    missing = sorted(declared - CALLED_ROUTES)
    if missing:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        lines = "\n".join(f"  {m} {p}" for m, p in missing)
        reporter.write_line(f"\nRoutes that no test called (SECURITY-CHECKLIST 17):\n{lines}", red=True)
        session.exitstatus = 1
