"""Every error is an RFC 9457 ``application/problem+json`` body. The errors themselves live in
``inbox/errors.py`` so that actions raise them without importing the HTTP layer; this module is
where ``api`` takes them from, and the error middleware renders them."""

from __future__ import annotations

from ..errors import PROBLEM_TYPE, Problem, conflict, forbidden, invalid, ip_refused, not_found, too_many, unauthorized

__all__ = ["PROBLEM_TYPE", "Problem", "conflict", "forbidden", "invalid", "ip_refused", "not_found", "too_many",
           "unauthorized"]
