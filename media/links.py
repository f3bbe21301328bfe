"""Short-lived signed download links for clients that cannot send headers (an <img> tag). Pure.

The signature binds the file, the user and the expiry; the download still asks the permission core
whether that user may see the file now, so a link dies with the user's access (checklist 29).
"""

from __future__ import annotations

import hashlib
import hmac


def signature(key: bytes, media_id: int, user_id: int, expires: int) -> str:
    return hmac.new(key, f"media:{media_id}:{user_id}:{expires}".encode(), hashlib.sha256).hexdigest()


def valid(key: bytes, media_id: int, user_id: int, expires: int, sig: str, now: float) -> bool:
    if now > expires or not sig.isascii():
        return False
    return hmac.compare_digest(signature(key, media_id, user_id, expires), sig)
