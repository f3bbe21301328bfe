"""Two-step verification: TOTP codes (RFC 6238, via pyotp) and recovery codes. Pure: the clock and
the stored state are passed in.

Replay guard (checklist 11): a code is accepted only for a time step later than the last step
accepted for that user, so a code that worked once is refused for the rest of its window, and the
store applies "check and advance" in one write transaction so two concurrent uses yield one success.
Window (checklist 12): the current step and one step either side, never more.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

import pyotp

STEP = 30
DIGITS = 6
RECOVERY_CODES = 10
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: codes are read off paper


def new_secret() -> str:
    return pyotp.random_base32()  # 160 bits, as RFC 4226 recommends


def provisioning_uri(secret: str, account: str, issuer: str) -> str:
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP).provisioning_uri(name=account, issuer_name=issuer)


def code_at(secret: str, step: int) -> str:
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP).generate_otp(step)


def accepted_step(secret: str, code: str, *, now: float, last_step: int) -> int | None:
    """The time step this code belongs to, if it is valid now and newer than ``last_step``."""
    code = code.strip().replace(" ", "")
    if len(code) != DIGITS or not code.isascii() or not code.isdigit():
        return None
    current = int(now // STEP)
    found = None
    for step in (current - 1, current, current + 1):
        # Compare every candidate, so the time taken does not say which step matched.
        if hmac.compare_digest(code_at(secret, step), code) and step > last_step and found is None:
            found = step
    return found


def new_recovery_codes(n: int = RECOVERY_CODES) -> list[str]:
    """Ten codes of 10 characters (~49 bits each), shown once, formatted xxxxx-xxxxx."""
    out = []
    for _ in range(n):
        raw = "".join(secrets.choice(_ALPHABET) for _ in range(10))
        out.append(f"{raw[:5]}-{raw[5:]}")
    return out


def normalise_recovery(code: str) -> str:
    return code.strip().lower().replace("-", "").replace(" ", "")


def hash_recovery(code: str, salt: str) -> str:
    """Salted SHA-256 (checklist 15). The codes are random and long, so a slow hash adds nothing."""
    return hashlib.sha256(f"{salt}:{normalise_recovery(code)}".encode()).hexdigest()


def recovery_matches(code: str, salt: str, stored: str) -> bool:
    return hmac.compare_digest(hash_recovery(code, salt), stored)
