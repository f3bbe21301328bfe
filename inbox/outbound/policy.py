"""What an attempt's outcome means, and when to try again. Pure.

2xx: sent. Timeouts, connection errors, 408, 429 and 5xx: try again later, with exponential backoff
and jitter, never sooner than the receiver's ``Retry-After``, until the give-up time. Anything else
(a 3xx, since redirects are not followed, or another 4xx): failed at once, with the receiver's reason.
"""

from __future__ import annotations

import email.utils
from dataclasses import dataclass
from typing import Callable, Literal

Verdict = Literal["sent", "retry", "failed"]
RETRY_CODES = frozenset({408, 429})


@dataclass(frozen=True, slots=True)
class Schedule:
    base: float = 5.0          # the first retry waits about this long
    ceiling: float = 3600.0    # no wait is longer, however many attempts failed
    give_up: float = 86400.0   # after this long since it was queued, an item fails for good


def verdict(code: int | None) -> Verdict:
    """``None`` is an attempt that got no answer (timeout, refused or reset connection)."""
    if code is None or code in RETRY_CODES or code >= 500:
        return "retry"
    if 200 <= code < 300:
        return "sent"
    return "failed"


def retry_after(value: str | None, now: float) -> float | None:
    """Seconds from ``now`` that a ``Retry-After`` header asks for (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(min(int(value), 10**9))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)


def next_attempt(schedule: Schedule, attempts: int, queued_at: float, now: float, asked: float | None,
                 rand: Callable[[], float]) -> float | None:
    """When to try again after ``attempts`` failed ones, or None to give up. Equal jitter: half the
    exponential step fixed, half random, so receivers coming back up are not hit in lockstep."""
    step = min(schedule.ceiling, schedule.base * 2 ** max(0, attempts - 1))
    delay = step / 2 + rand() * step / 2
    if asked is not None:
        delay = max(delay, asked)
    due = now + delay
    return None if due > queued_at + schedule.give_up else due
