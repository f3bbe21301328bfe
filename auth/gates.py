"""The workspace gates every signed-in caller passes, whatever the door: a REST request, a websocket
handshake, a signed media link, an open socket when the policy changes. Pure: the server passes in
the policy, the client address and the caller's second-factor state.

Why one function: a black-box test found the websocket handshake skipping the 2FA requirement that
the REST middleware applied, because each door wrote its own checks. Every door now asks ``refusal``
and renders its answer its own way (a 403 problem, a 4003 close, a refused link).

The session itself (ended, expired, user disabled) is checked where the session is read, before
this: a caller without a live session never reaches the gates.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from .network import Network, address_allowed, parse_allowlist


class Refusal(enum.Enum):
    IP_NOT_ALLOWED = "ip-not-allowed"              # API blocking is on and the address is outside the whitelist
    TWO_FACTOR_REQUIRED = "two-factor-required"    # the workspace requires 2FA and the caller has not enrolled


def whitelist(policy: Mapping[str, Any]) -> tuple[Network, ...]:
    """The workspace IP whitelist as networks (stored normalised, so parsing cannot fail)."""
    return parse_allowlist(e["cidr"] for e in policy.get("ip_whitelist", ()))


def login_allowed(policy: Mapping[str, Any], ip: str) -> bool:
    """The whitelist always gates signing in, both steps of it (SPEC 3), API blocking or not."""
    return address_allowed(ip, whitelist(policy))


def refusal(policy: Mapping[str, Any], *, ip: str, has_2fa: bool, enrolling: bool = False) -> Refusal | None:
    """Why a signed-in caller may not go on, or None. ``enrolling``: the request is one of the few
    a user without 2FA may still make while the workspace requires it (enrol, confirm, sign out)."""
    if policy.get("block_untrusted_api") and not address_allowed(ip, whitelist(policy)):
        return Refusal.IP_NOT_ALLOWED
    if policy.get("require_2fa") and not has_2fa and not enrolling:
        return Refusal.TWO_FACTOR_REQUIRED
    return None
