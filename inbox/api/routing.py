"""The route registry: every route declares who may call it, what it reads, and what it is for.

Deny by default (SECURITY-CHECKLIST 17): a route without an ``access`` cannot be declared, the
middleware enforces the declaration before the handler runs, and the OpenAPI document is built from
the same registry, so a route cannot be served without being documented.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from .problems import invalid

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Access(enum.Enum):
    PUBLIC = "public"      # no session needed (login, health, webhooks with their own signature)
    USER = "user"          # any signed-in, active user; finer checks happen in the handler
    ADMIN = "admin"        # administrators only


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    access: Access
    summary: str
    tag: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    status: int = 200
    # Reachable while the workspace requires 2FA and the caller has not enrolled yet (SPEC 3).
    setup: bool = False
    # The success body: a pydantic model or a union of them (inbox/api/responses.py), published in the
    # OpenAPI document and checked against every answer in tests; None with a 204 or a non-JSON media.
    response: Any = None
    media: str = "application/json"   # "text/csv" for exports, "*/*" for downloads, "" for the websocket
    also: tuple[int, ...] = ()        # other success statuses with the same body (a webhook's duplicate: 200)


class Registry:
    def __init__(self) -> None:
        self.routes: list[Route] = []

    def route(self, method: str, path: str, *, access: Access, summary: str, tag: str,
              body: type[BaseModel] | None = None, query: type[BaseModel] | None = None,
              status: int = 200, setup: bool = False, response: Any = None, media: str = "application/json",
              also: tuple[int, ...] = ()) -> Callable[[Handler], Handler]:
        if not isinstance(access, Access):
            raise TypeError(f"{method} {path}: access must be an Access, not {access!r}")

        def decorate(handler: Handler) -> Handler:
            route = Route(method, path, handler, access, summary, tag, body, query, status, setup, response, media,
                          also)
            handler.__route__ = route  # read by the middleware through request.match_info.handler
            self.routes.append(route)
            return handler

        return decorate

    def install(self, app: web.Application) -> None:
        for r in self.routes:
            app.router.add_route(r.method, r.path, r.handler)


registry = Registry()


def route_of(request: web.Request) -> Route | None:
    return getattr(request.match_info.handler, "__route__", None)


def _errors(exc: ValidationError, prefix: str = "") -> list[dict[str, str]]:
    out = []
    for err in exc.errors(include_url=False):
        path = ".".join(str(p) for p in err["loc"])
        out.append({"path": prefix + path if path else prefix.rstrip(".") or "$", "message": err["msg"]})
    return out


def validate(model: type[BaseModel], data: Any, *, where: str = "body") -> BaseModel:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = _errors(exc)
        raise invalid(f"The {where} has {len(errors)} problem(s): " +
                      "; ".join(f"{e['path']}: {e['message']}" for e in errors[:5]), errors) from None


async def body(request: web.Request) -> Any:
    """The request body, parsed as JSON and validated against the route's declared model."""
    route = route_of(request)
    raw = await request.read()
    try:
        data = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError as exc:
        raise invalid(f"The body is not valid JSON: {exc}. Send a JSON object with "
                      "'Content-Type: application/json'.", [{"path": "$", "message": "malformed JSON"}]) from None
    if route is None or route.body is None:
        return data
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise invalid("The body must be a JSON object.", [{"path": "$", "message": "expected an object"}])
    return validate(route.body, data)


def query(request: web.Request) -> Any:
    route = route_of(request)
    assert route is not None and route.query is not None, "route declares no query model"
    params: dict[str, Any] = {}
    for key in request.query:
        values = request.query.getall(key)
        params[key] = values if len(values) > 1 else values[0]
    return validate(route.query, params, where="query string")


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json",
                        headers=headers)


def int_id(request: web.Request, name: str = "id") -> int:
    raw = request.match_info[name]
    # isascii: isdigit() is also true for digits int() refuses, such as "²".
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise invalid(f"'{name}' in the path must be a positive integer, got {raw!r}.",
                      [{"path": f"path.{name}", "message": "expected a positive integer"}])
    return int(raw)
