"""Webhook signatures: HMAC-SHA256 over ``timestamp + "." + body`` (SPEC section 5). Pure.

Headers: ``X-Inbox-Timestamp`` (UNIX seconds) and ``X-Inbox-Signature: sha256=<hex>``. Compared in
constant time; a timestamp more than the tolerance away in either direction is refused, which bounds
replays (and provider ids are deduplicated besides). During a rotation two secrets verify.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Iterable

TOLERANCE = 300.0


def sign(secret: str, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def check(secrets: Iterable[str], timestamp: str | None, signature: str | None, body: bytes, *, now: float,
          tolerance: float = TOLERANCE) -> str | None:
    """None when the request is authentic; otherwise what is wrong, for the 401 detail."""
    if not timestamp or not signature:
        return "missing X-Inbox-Timestamp or X-Inbox-Signature"
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        return "X-Inbox-Timestamp must be UNIX seconds"
    if abs(now - int(timestamp)) > tolerance:
        return f"the timestamp is more than {int(tolerance)} s away from the server's clock"
    if not signature.isascii():
        return "the signature does not match"
    ok = False
    for secret in secrets:  # check every secret, so timing does not tell which one matched
        ok |= hmac.compare_digest(sign(secret, timestamp, body), signature)
    return None if ok else "the signature does not match"


# --- Standard Webhooks (https://www.standardwebhooks.com): what the server signs when it calls out ---

def webhook_key(secret: str) -> bytes:
    """The HMAC key of an outgoing signature: the secret after ``whsec_``, base64-decoded, as the
    scheme says. Secrets made before outbound delivery used the URL-safe alphabet without padding;
    those decode the same way here (the scheme's own libraries need a standard-alphabet secret:
    rotate to get one)."""
    body = secret.removeprefix("whsec_")
    padded = body + "=" * (-len(body) % 4)
    if "-" in body or "_" in body:
        return base64.urlsafe_b64decode(padded)
    return base64.b64decode(padded)


def webhook_signature(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 of "id.timestamp.body">``, the ``webhook-signature`` header value."""
    mac = hmac.new(webhook_key(secret), f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def webhook_headers(secret: str, webhook_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {"webhook-id": webhook_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": webhook_signature(secret, webhook_id, timestamp, body)}
