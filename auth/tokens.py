"""Session tokens: random, stored only as SHA-256 (SECURITY-CHECKLIST 4), and their expiry rule."""

from __future__ import annotations

import hashlib
import hmac
import secrets

# 32 bytes = 256 bits from the OS CSPRNG; the checklist asks for at least 128.
TOKEN_BYTES = 32


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_token(token: str) -> str:
    """Double-submit value bound to the session: derivable by the server, never stored."""
    return hashlib.sha256(b"csrf:" + token.encode()).hexdigest()[:43]


def csrf_ok(token: str, presented: str | None) -> bool:
    # compare_digest refuses non-ASCII str, and a header is client input: a stranger value is simply wrong.
    if presented is None or not presented.isascii():
        return False
    return hmac.compare_digest(csrf_token(token), presented)


def session_expired(*, now: float, created_at: float, last_seen_at: float,
                    idle_timeout: float, absolute_timeout: float) -> str | None:
    """Which limit a session has passed, or None (checklist 6)."""
    if now - created_at > absolute_timeout:
        return "absolute"
    if now - last_seen_at > idle_timeout:
        return "idle"
    return None
