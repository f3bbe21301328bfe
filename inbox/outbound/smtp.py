"""Sending one composed email by SMTP (aiosmtplib), and what its answer means.

The connection is made here, to an address checked like an outbound URL's (``addresses``: no
private receivers unless allowed), and handed to aiosmtplib as a connected socket, so the name is
resolved once and the check holds for the address actually used. 2xx: sent. 4xx: the server asks
to try later. 5xx: refused for good, with the server's text. No answer: tried again later.
"""

from __future__ import annotations

import asyncio
import socket

import aiosmtplib

from .addresses import PrivateAddress, public
from .policy import Verdict


async def _connect(host: str, port: int, *, allow_private: bool, timeout: float) -> socket.socket:
    loop = asyncio.get_running_loop()
    found = await asyncio.wait_for(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout)
    usable = [f for f in found if allow_private or public(f[4][0])]
    if not usable:
        raise PrivateAddress(f"{host} resolves only to addresses that are not public")
    family, kind, proto, _, address = usable[0]
    sock = socket.socket(family, kind, proto)
    sock.setblocking(False)
    try:
        await asyncio.wait_for(loop.sock_connect(sock, address), timeout)
    except BaseException:
        sock.close()
        raise
    return sock


async def send(message: bytes, sender: str, recipients: list[str], *, host: str, port: int, security: str,
               username: str | None, password: str | None, allow_private: bool,
               timeout: float) -> tuple[Verdict, int | None, str | None]:
    """Send a composed message (its bytes) from ``sender`` to ``recipients``: (verdict, SMTP code,
    error in words)."""
    try:
        sock = await _connect(host, port, allow_private=allow_private, timeout=timeout)
    except PrivateAddress as exc:
        return "failed", None, f"refused: {exc}"
    except TimeoutError:
        return "retry", None, f"no connection to {host}:{port} within {timeout:g} s"
    except OSError as exc:
        return "retry", None, f"connection to {host}:{port} failed: {exc}"
    # From connect() on the socket belongs to the client's transport, which closes it (after a TLS
    # shutdown, later): closing it here too would free the descriptor while the old transport still
    # watches it, and the next connection, given the same number, would fail. aiosmtplib.send leaves
    # a failed login's transport open, hence the client by hand, closed whatever happens.
    client = aiosmtplib.SMTP(hostname=host, port=None, sock=sock, username=username or None,
                             password=password or None, use_tls=security == "tls", start_tls=security == "starttls",
                             timeout=timeout)
    try:
        await client.connect()
        await client.sendmail(sender, recipients, message)
        try:
            await client.quit()
        except aiosmtplib.SMTPException:
            pass  # sent is sent: the server's goodbye does not matter
    except aiosmtplib.SMTPRecipientsRefused as exc:
        codes = [e.code for e in exc.recipients]
        text = "; ".join(f"{e.recipient}: {e.code} {e.message}" for e in exc.recipients)[:300]
        temporary = any(400 <= c < 500 for c in codes)
        return ("retry" if temporary else "failed"), (codes[0] if codes else None), f"recipients refused: {text}"
    except aiosmtplib.SMTPResponseException as exc:
        verdict: Verdict = "retry" if 400 <= exc.code < 500 else "failed"
        return verdict, exc.code, f"SMTP {exc.code}: {exc.message}"[:300]
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        return "retry", None, f"SMTP conversation with {host}:{port} failed: {exc.__class__.__name__}: {exc}"[:300]
    finally:
        client.close()
    return "sent", 250, None
