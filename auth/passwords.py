"""Password hashing and password policy (SECURITY-CHECKLIST 1-3).

argon2id at m = 19 MiB, t = 2, p = 1 is the OWASP minimum profile; on this 2-core machine one hash
costs ~29 ms. Hashes made with weaker parameters are upgraded at the next successful login.
Hashing runs in a worker thread so a login never stalls the event loop.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

MIN_LENGTH = 8
# Long passphrases are welcome, but an unbounded input is a CPU lever for an attacker.
MAX_LENGTH = 1024


@lru_cache(maxsize=1)
def _common_passwords() -> frozenset[str]:
    text = resources.files("auth").joinpath("data/common-passwords.txt").read_text("utf-8")
    return frozenset(line.strip().lower() for line in text.splitlines() if line.strip())


def password_problem(password: str, *, email: str = "", name: str = "") -> str | None:
    """Why a new password is refused, or None. Any character set is accepted (checklist 3)."""
    if len(password) < MIN_LENGTH:
        return f"password must have at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"password must have at most {MAX_LENGTH} characters"
    lowered = password.lower()
    if lowered in _common_passwords():
        return "this password is on the list of common or breached passwords; choose another"
    local = email.split("@", 1)[0].lower()
    if lowered in {email.lower(), local, name.lower()} - {""}:
        return "password must not be the email address or name"
    return None


@dataclass
class Hasher:
    """argon2id with counters, so tests can prove unknown users cost the same work (checklist 2)."""

    time_cost: int = 2
    memory_cost: int = 19 * 1024
    parallelism: int = 1
    hash_calls: int = 0
    verify_calls: int = 0

    def __post_init__(self) -> None:
        self._ph = PasswordHasher(time_cost=self.time_cost, memory_cost=self.memory_cost,
                                  parallelism=self.parallelism, type=Type.ID)
        # Verified when the email is unknown, so both paths cost one argon2 verification.
        self._dummy = self._ph.hash("not a real password, used for timing parity")

    async def hash(self, password: str) -> str:
        self.hash_calls += 1
        return await asyncio.to_thread(self._ph.hash, password)

    async def verify(self, encoded: str | None, password: str) -> bool:
        self.verify_calls += 1
        return await asyncio.to_thread(self._verify, encoded or self._dummy, password) and encoded is not None

    def _verify(self, encoded: str, password: str) -> bool:
        try:
            return self._ph.verify(encoded, password)
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, encoded: str) -> bool:
        try:
            return self._ph.check_needs_rehash(encoded)
        except InvalidHashError:
            return True
