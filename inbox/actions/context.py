"""What every action needs to know about the caller: who, from where, and when."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Actor:
    user_id: int | None
    ip: str
    now: float
