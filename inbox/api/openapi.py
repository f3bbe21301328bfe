"""OpenAPI 3.1 built from the route registry; pydantic models give the JSON Schemas."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Sequence

from pydantic import BaseModel, TypeAdapter

from .responses import Problem
from .routing import Access, Route

_PARAM = re.compile(r"\{(\w+)(?::[^}]*)?\}")
REF = "#/components/schemas/{model}"


def _component(schemas: dict[str, Any], name: str, schema: dict[str, Any]) -> None:
    # Two different models of one name would silently overwrite each other's schema.
    if schemas.setdefault(name, schema) != schema:
        raise ValueError(f"two different schemas are both named {name!r} in the OpenAPI document")


def schema_of(tp: Any, schemas: dict[str, Any]) -> dict[str, Any]:
    """A $ref to a named model, or the inline schema of a union; nested models go to components."""
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        schema = tp.model_json_schema(ref_template=REF)
        name = tp.__name__
    else:
        schema, name = TypeAdapter(tp).json_schema(ref_template=REF), None
    for def_name, sub in schema.pop("$defs", {}).items():
        _component(schemas, def_name, sub)
    if name is None:
        return schema
    _component(schemas, name, schema)
    return {"$ref": REF.format(model=name)}


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
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema_of(r.body, schemas)}}}
    responses = {**_success(r, schemas), "422": _problem("The request is not valid")}
    if r.access is not Access.PUBLIC:
        responses["401"] = _problem("Not signed in, or the session ended")
        op["security"] = [{"bearer": []}, {"cookie": []}]
    if r.access is Access.ADMIN:
        responses["403"] = _problem("Administrators only")
    if "{" in r.path:
        responses["404"] = _problem("No such resource visible to the caller")
    op["responses"] = responses
    return op


def _success(r: Route, schemas: dict[str, Any]) -> dict[str, Any]:
    if r.status == 204:
        return {"204": {"description": "No content"}}
    if not r.media:
        return {"101": {"description": "Switches to the websocket protocol (docs/realtime.md)"}}
    if r.media == "application/json":
        schema = schema_of(r.response, schemas) if r.response is not None else {}
    elif r.media == "text/csv":
        schema = {"type": "string"}
    else:  # a download: whatever type the file was sniffed as
        schema = {"type": "string", "format": "binary"}
    ok = {"description": "Success", "content": {r.media: {"schema": schema}}}
    return {str(status): ok for status in (r.status, *r.also)}


@lru_cache(maxsize=4)
def _build(routes: tuple[Route, ...]) -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    schema_of(Problem, schemas)
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
