"""Secrets at rest (TOTP seeds): sealed with Fernet (AES-128-CBC + HMAC-SHA256) under a server key.

The key comes from INBOX_SECRET_KEY, or from ``<data_dir>/secret.key``, created on first start with
mode 0600. A stolen database without the key does not give away anyone's second factor.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken


class Sealer:
    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)
        self.key_bytes = key  # other keys are derived from it (e.g. media links), never used raw
        self._opened: dict[str, str] = {}

    def derive(self, purpose: str) -> bytes:
        """A key of its own for one purpose, so no two uses share a key."""
        return hashlib.sha256(purpose.encode() + b":" + self.key_bytes).digest()

    def seal(self, text: str) -> str:
        return self._fernet.encrypt(text.encode()).decode()

    def open(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken:
            raise RuntimeError("a sealed secret does not open with this server key; was INBOX_SECRET_KEY or "
                               "secret.key changed?") from None

    def open_cached(self, sealed: str) -> str:
        """``open``, remembered by sealed text: webhook secrets are needed on every delivery, and a
        decrypt costs more than the HMAC. Nothing to invalidate: a sealed text always opens to the same
        secret, and a rotated secret is a new sealed text (whether the old one is still accepted is the
        caller's rule, applied to the current row)."""
        secret = self._opened.get(sealed)
        if secret is None:
            if len(self._opened) >= 4096:  # bounded: old rotations must not pile up
                self._opened.clear()
            secret = self._opened[sealed] = self.open(sealed)
        return secret


def load_key(data_dir: Path, configured: str = "") -> bytes:
    if configured:
        return configured.encode()
    path = data_dir / "secret.key"
    if path.exists():
        return path.read_bytes().strip()
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # the owner's alone, like all it holds
    key = Fernet.generate_key()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    return key
