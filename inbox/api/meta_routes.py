"""Health and the OpenAPI document."""

from __future__ import annotations

from aiohttp import web

from ..keys import DB
from .openapi import openapi_document
from .responses import Health, OpenApiDocument
from .routing import Access, json_response, registry

route = registry.route


@route("GET", "/healthz", response=Health, access=Access.PUBLIC, tag="meta",
       summary="Liveness and database reachability")
async def healthz(request: web.Request) -> web.Response:
    await request.app[DB].fetchval("SELECT 1")
    return json_response({"status": "ok"})


@route("GET", "/api/v1/openapi.json", response=OpenApiDocument, access=Access.PUBLIC, tag="meta",
       summary="This API as OpenAPI 3.1")
async def openapi(request: web.Request) -> web.Response:
    return json_response(openapi_document(registry.routes))
