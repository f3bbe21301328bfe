"""Errors the actions raise, each with what a client needs to know: an HTTP status, a problem type,
a title and a detail. ``inbox/api`` renders them as RFC 9457 ``application/problem+json`` bodies
(``api/problems.py`` and the error middleware); nothing below ``api`` imports from it."""

from __future__ import annotations

from typing import Any

PROBLEM_TYPE = "https://inbox.invalid/problems/"  # documented in docs/api.md; not dereferenceable


class Problem(Exception):
    """An error with its HTTP status; the error middleware renders it."""

    def __init__(self, status: int, slug: str, title: str, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail or title)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.extra = extra
        self.headers: dict[str, str] = {}

    def body(self, instance: str) -> dict[str, Any]:
        body = {"type": PROBLEM_TYPE + self.slug, "title": self.title, "status": self.status}
        if self.detail:
            body["detail"] = self.detail
        body["instance"] = instance
        body.update(self.extra)
        return body


def invalid(detail: str, errors: list[dict[str, str]] | None = None) -> Problem:
    return Problem(422, "validation", "Request is not valid", detail, errors=errors or [])


def unauthorized(detail: str = "Sign in first: send 'Authorization: Bearer <token>' or the session cookie.") -> Problem:
    return Problem(401, "unauthorized", "Authentication required", detail)


def forbidden(detail: str) -> Problem:
    return Problem(403, "forbidden", "Not allowed", detail)


def not_found(what: str = "resource") -> Problem:
    # One answer for "does not exist" and "not yours", so ids cannot be probed (rule 14).
    return Problem(404, "not-found", "Not found", f"No {what} with that id is visible to you.")


def conflict(detail: str, **extra: Any) -> Problem:
    return Problem(409, "conflict", "Conflict", detail, **extra)


def too_many(detail: str, retry_after: float) -> Problem:
    p = Problem(429, "too-many-requests", "Too many attempts", detail, retry_after=int(retry_after + 0.999))
    p.headers["Retry-After"] = str(int(retry_after + 0.999))
    return p


def ip_refused(ip: str) -> Problem:
    return Problem(403, "ip-not-allowed", "Address not allowed",
                   f"Sign-in from {ip} is not allowed by the workspace IP whitelist.")
