"""Every answer a test run produces, held to the schema its route declares (issue 13, test quality).

The fixtures' server calls ``check`` as each response is prepared; a mismatch is kept in MISMATCHES
and fails the test that caused it (conftest.py). The response models forbid unknown keys, so a field a
handler sends and its model lacks is a failure, not an undocumented extra.
"""

from __future__ import annotations

from collections import Counter
from functools import cache
from typing import Any

from aiohttp import web
from pydantic import TypeAdapter, ValidationError

from inbox.api.responses import Problem
from inbox.api.routing import Route

CHECKED: Counter[tuple[str, str, int]] = Counter()  # (method, path, status) -> answers that passed
MISMATCHES: list[str] = []


@cache
def adapter(tp: Any) -> TypeAdapter:
    return TypeAdapter(tp)


def check(route: Route, response: web.StreamResponse) -> None:
    problem = mismatch(route, response.status, response.headers.get("Content-Type", ""),
                       response.body if isinstance(response, web.Response) else None)
    if problem:
        MISMATCHES.append(f"{route.method} {route.path} answered {response.status}: {problem}")
    else:
        CHECKED[route.method, route.path, response.status] += 1


def mismatch(route: Route, status: int, content_type: str, body: Any) -> str | None:
    """What is wrong with this answer, or None; ``body`` is None for a streamed one."""
    media = content_type.split(";")[0].strip()
    if status == 101 and not route.media:
        return None
    if status >= 400:
        if media != "application/problem+json":
            return f"an error must be application/problem+json, not {media!r}"
        model: Any = Problem
    elif status not in (route.status, *route.also):
        return f"the route declares {(route.status, *route.also)}"
    elif status == 204:
        return f"a 204 has no body, got {len(body)} bytes" if body else None
    elif route.media != "application/json":
        # CSV exports and downloads: the declared media type (downloads are whatever was sniffed).
        if route.media not in (media, "*/*"):
            return f"declared {route.media!r}, sent {media!r}"
        model = None
    elif media != "application/json":
        return f"declared application/json, sent {media!r}"
    elif route.response is None:
        return "the route declares no response model (response= on registry.route)"
    else:
        model = route.response
    if model is not None:
        if body is None:
            return "a streamed JSON answer cannot be checked"
        try:
            adapter(model).validate_json(bytes(body), strict=True)
        except ValidationError as exc:
            return str(exc)
    return None
