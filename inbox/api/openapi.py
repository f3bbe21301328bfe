"""OpenAPI 3.1 built from the route registry; pydantic models give the JSON Schemas."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Sequence

from .problems import PROBLEM_TYPE
from .routing import Access, Route

_PARAM = re.compile(r"\{(\w+)(?::[^}]*)?\}")

PROBLEM_SCHEMA = {
    "type": "object",
    "description": f"RFC 9457 problem details; type is {PROBLEM_TYPE}<slug>",
    "properties": {"type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
                   "detail": {"type": "string"}, "instance": {"type": "string"},
                   "errors": {"type": "array", "items": {"type": "object", "properties": {
                       "path": {"type": "string"}, "message": {"type": "string"}}}}},
    "required": ["type", "title", "status"],
}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}


def _operation(r: Route, schemas: dict[str, Any]) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": r.summary, "tags": [r.tag],
                          "operationId": f"{r.handler.__module__.rsplit('.', 1)[-1]}.{r.handler.__name__}",
                          "x-access": r.access.value}
    params = [{"name": n, "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}
              for n in _PARAM.findall(r.path)]
    if r.query is not None:
        qs = r.query.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, prop in qs.get("properties", {}).items():
            params.append({"name": name, "in": "query", "required": name in qs.get("required", []), "schema": prop})
    if params:
        op["parameters"] = params
    if r.body is not None:
        schema = r.body.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[r.body.__name__] = schema
        op["requestBody"] = {"required": True, "content": {"application/json": {
            "schema": {"$ref": f"#/components/schemas/{r.body.__name__}"}}}}
    ok = {"description": "No content"} if r.status == 204 else {
        "description": "Success", "content": {"application/json": {"schema": {"type": "object"}}}}
    responses = {str(r.status): ok, "422": _problem("The request is not valid")}
    if r.access is not Access.PUBLIC:
        responses["401"] = _problem("Not signed in, or the session ended")
        op["security"] = [{"bearer": []}, {"cookie": []}]
    if r.access is Access.ADMIN:
        responses["403"] = _problem("Administrators only")
    if "{" in r.path:
        responses["404"] = _problem("No such resource visible to the caller")
    op["responses"] = responses
    return op


@lru_cache(maxsize=4)
def _build(routes: tuple[Route, ...]) -> dict[str, Any]:
    schemas: dict[str, Any] = {"Problem": PROBLEM_SCHEMA}
    paths: dict[str, Any] = {}
    for r in routes:
        paths.setdefault(_PARAM.sub(r"{\1}", r.path), {})[r.method.lower()] = _operation(r, schemas)
    return {
        "openapi": "3.1.0",
        "info": {"title": "inbox", "version": "1", "description":
                 "Chat and shared-inbox backend for CRM teams, with one permission core."},
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "cookie": {"type": "apiKey", "in": "cookie", "name": "inbox_session"}}},
    }


def openapi_document(routes: Sequence[Route]) -> dict[str, Any]:
    return _build(tuple(routes))
