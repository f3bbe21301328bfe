"""Outbound calls go to public addresses only (SECURITY-CHECKLIST: server-side request forgery).

A URL is checked when an admin sets it, and again at every connection: a host name is resolved by
``GuardedResolver``, which refuses private, loopback, link-local and other non-global addresses, so
a name that later resolves somewhere private (DNS rebinding) is refused where it is used. An IP
literal never reaches a resolver, so ``check_literal`` covers it before the request.
``INBOX_OUTBOUND_ALLOW_PRIVATE=true`` lifts the rule (for tests, and for receivers on a private LAN).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver
from aiohttp.resolver import DefaultResolver

MAX_URL = 2048
RESOLVE_SECONDS = 5.0  # when an admin sets a URL: an answer, not a hung request


class PrivateAddress(OSError):
    pass


def public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def _literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


def url_problem(url: str, *, allow_private: bool) -> str | None:
    """What is wrong with an outbound URL (for a 422), or None."""
    if len(url) > MAX_URL:
        return f"longer than {MAX_URL} characters"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"not a valid URL ({exc})"
    if parts.scheme not in ("http", "https"):
        return "the scheme must be http or https"
    if not parts.hostname:
        return "the URL has no host"
    if parts.username is not None or parts.password is not None:
        return "credentials in the URL are not allowed (they would be logged); authenticate by the signature"
    if port == 0:
        return "port 0 is not a port"
    if parts.fragment:
        return "the URL must not have a fragment"
    if allow_private:
        return None
    literal = _literal(parts.hostname)
    if literal is not None and not public(literal):
        return f"{literal} is not a public address (set INBOX_OUTBOUND_ALLOW_PRIVATE=true to allow private ones)"
    if literal is None and (parts.hostname == "localhost" or parts.hostname.endswith((".localhost", ".local"))):
        return f"{parts.hostname} is not a public host (set INBOX_OUTBOUND_ALLOW_PRIVATE=true to allow private ones)"
    return None


def check_literal(url: str, *, allow_private: bool) -> None:
    """Raise PrivateAddress for a URL whose host is a non-public IP literal."""
    if allow_private:
        return
    host = urlsplit(url).hostname or ""
    literal = _literal(host)
    if literal is not None and not public(literal):
        raise PrivateAddress(f"{literal} is not a public address")


class GuardedResolver(AbstractResolver):
    """The default resolver, with every non-public answer dropped (all of them: an error)."""

    def __init__(self, *, allow_private: bool) -> None:
        self._inner = DefaultResolver()
        self._allow_private = allow_private

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[dict[str, Any]]:
        found = await self._inner.resolve(host, port, family)
        if self._allow_private:
            return found
        kept = [entry for entry in found if public(entry["host"])]
        if not kept:
            raise PrivateAddress(f"{host} resolves only to addresses that are not public")
        return kept

    async def close(self) -> None:
        await self._inner.close()


async def resolution_problem(url: str) -> str | None:
    """What is wrong with where a URL's host name points now (for a 422 when it is set)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if _literal(host) is not None:  # literals were judged by url_problem
        return None
    found = await _resolve(host, parts.port or 443)
    if isinstance(found, str):
        return found
    private = [address for address in found if not public(address)]
    if private:
        return f"{host} resolves to {', '.join(private)}, which is not public"
    return None


async def _resolve(host: str, port: int) -> list[str] | str:
    """The addresses a host stands for, or what went wrong."""
    literal = _literal(host)
    if literal is not None:
        return [literal]
    try:
        found = await asyncio.wait_for(asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_STREAM), RESOLVE_SECONDS)
    except TimeoutError:
        return f"{host} did not resolve within {RESOLVE_SECONDS:g} s"
    except OSError as exc:
        return f"{host} does not resolve ({exc})"
    return sorted({entry[4][0] for entry in found})


async def smtp_host_problem(host: str, port: int, security: str, *, allow_private: bool) -> str | None:
    """What is wrong with an SMTP server setting (for a 422), or None. Sending without TLS is for a
    relay on this machine only: the password and every email would cross the network in clear."""
    found = await _resolve(host, port)
    if isinstance(found, str):
        return found
    if security == "none" and not all(ipaddress.ip_address(a.split("%", 1)[0]).is_loopback for a in found):
        return "security none is only for a relay on this machine (a loopback address); use starttls or tls"
    if not allow_private:
        private = [a for a in found if not public(a)]
        if private and security != "none":
            return (f"{host} is {', '.join(private)}, which is not public (set INBOX_OUTBOUND_ALLOW_PRIVATE=true"
                    " to allow private ones)")
    return None
