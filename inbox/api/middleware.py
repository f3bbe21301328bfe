"""Two middlewares: one renders every error as problem+json, one enforces each route's access."""

from __future__ import annotations

import logging
import sqlite3

import orjson
from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from ..store.space import out_of_space
from .identity import IDENTITY, authenticate, check_gates
from .problems import Problem, forbidden
from .routing import Access, route_of

log = logging.getLogger("inbox.api")

_STATUS_SLUGS = {404: "not-found", 405: "method-not-allowed", 413: "too-large", 400: "bad-request"}


def problem_response(request: web.Request, problem: Problem) -> web.Response:
    headers = {"Cache-Control": "no-store", **problem.headers}
    return web.Response(body=orjson.dumps(problem.body(request.path)), status=problem.status,
                        content_type="application/problem+json", headers=headers)


@web.middleware
async def errors(request: web.Request, handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except Problem as problem:
        return problem_response(request, problem)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        detail = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else None
        problem = Problem(exc.status, _STATUS_SLUGS.get(exc.status, "http-error"), exc.reason, detail)
        if exc.status == 405:
            problem.headers["Allow"] = exc.headers.get("Allow", "")
        if exc.status == 404:
            problem = Problem(404, "not-found", "Not found", f"There is no route {request.method} {request.path}.")
        return problem_response(request, problem)
    except RequestPayloadError as exc:
        # The body could not be read as sent (gzip that is not gzip, say): the handler did nothing with it.
        lines = str(exc).strip().splitlines()
        reason = lines[-1].strip() if lines else "it ended early"
        return problem_response(request, Problem(400, "bad-request", "Bad request",
                                                 f"The body could not be read ({reason}). Send it uncompressed, "
                                                 "or compressed as its Content-Encoding header says."))
    except sqlite3.IntegrityError:
        # A constraint the action did not check first (it should: its 409 can say what to do). The job
        # rolled back, so nothing changed; the client's request conflicts with data, it is not a crash.
        log.exception("constraint failed without an explicit check", extra={"method": request.method,
                                                                             "path": request.path})
        return problem_response(request, Problem(409, "conflict", "Conflict",
                                                 "The change conflicts with other data that refers to it or "
                                                 "that it refers to; nothing was changed."))
    except Exception as exc:
        storage = out_of_space(exc)
        if storage:
            # An operating condition, not a bug: one line (no traceback), and an answer that says
            # nothing was stored and when to come back. The writes rolled back; space frees, it works.
            log.error("out of disk space", extra={"method": request.method, "path": request.path,
                                                  "status": 507, "storage": storage, "error": str(exc)})
            problem = Problem(507, "insufficient-storage", "Insufficient storage",
                              f"The server's disk is full ({storage}), so nothing was stored. "
                              "Send the request again later.")
            problem.headers["Retry-After"] = "60"
            return problem_response(request, problem)
        log.exception("unhandled error", extra={"method": request.method, "path": request.path})
        return problem_response(request, Problem(500, "internal", "Internal error",
                                                 "The server failed; the error is logged."))
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    if request.path.startswith("/api/"):
        response.headers.setdefault("Cache-Control", "no-store")
    return response


@web.middleware
async def access(request: web.Request, handler) -> web.StreamResponse:
    route = route_of(request)
    if route is None or route.access is Access.PUBLIC:
        return await handler(request)
    ident = await authenticate(request)
    request[IDENTITY] = ident
    check_gates(request, ident.settings, has_2fa=ident.has_2fa, enrolling=route.setup)
    if route.access is Access.ADMIN and not ident.is_admin:
        raise forbidden("Only administrators may do this.")
    return await handler(request)
