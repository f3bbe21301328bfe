"""Configuration: flags override ``INBOX_*`` environment variables, which override the defaults."""

from __future__ import annotations

import ipaddress
import os
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _networks(text: str) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip())


def _origins(text: str) -> tuple[str, ...]:
    return tuple(o.strip().rstrip("/") for o in text.split(",") if o.strip())


@dataclass
class Config:
    data_dir: Path = Path("./data")
    host: str = "127.0.0.1"
    port: int = 8080
    # An agent's chat client stays open all day; activity on it (requests, websocket) keeps it alive.
    session_idle_seconds: float = 12 * 3600
    session_absolute_seconds: float = 14 * 24 * 3600
    # last_seen_at is written at most this often per session, so reads do not become writes.
    session_touch_seconds: float = 60
    # X-Forwarded-For is honoured only when the TCP peer is one of these (SPEC 3, checklist 24).
    trusted_proxies: tuple[Network, ...] = ()
    # Origins allowed to use cookie auth and open websockets; same-origin requests are always allowed.
    allowed_origins: tuple[str, ...] = ()
    cookie_secure: bool = False
    # Login throttling (checklist 10): per account and per address, within a sliding window.
    login_window_seconds: float = 30 * 60
    login_account_limit: int = 5
    login_ip_limit: int = 20
    login_max_delay_seconds: float = 15 * 60
    argon2_time_cost: int = 2
    argon2_memory_kib: int = 19 * 1024
    sqlite_synchronous: str = "FULL"
    log_level: str = "INFO"
    # Fernet key for secrets at rest; empty: <data_dir>/secret.key, created on first start.
    secret_key: str = field(default="", repr=False)
    totp_issuer: str = "Inbox"
    # Password accepted, code pending: how long the login challenge lives.
    login_challenge_seconds: float = 300
    # Bytes a websocket may have waiting unsent before the server closes it as too slow (code 4008).
    ws_buffer_bytes: int = 512 * 1024
    # Events older than this are pruned; a client resuming from before gets a "resync" frame.
    event_retention_seconds: float = 7 * 86400
    # Media (SPEC section 6): upload size limit, image pixel cap, signed-link lifetime.
    media_max_bytes: int = 25 * 1024 * 1024
    media_max_pixels: int = 50_000_000
    media_link_seconds: float = 300
    # A rotated webhook secret keeps working this long, so providers can switch over.
    secret_overlap_seconds: float = 24 * 3600
    # Wrong second-factor codes per user before the back-off starts (checklist 13).
    totp_failure_limit: int = 5
    # Inbound email (docs/ingestion.md): the standard library's parser is pure Python and superlinear
    # on hostile input, so messages are parsed in worker processes, within these limits (413 beyond).
    mail_workers: int = 2
    mail_max_parts: int = 100              # MIME parts in the whole tree, the message itself included
    mail_max_depth: int = 10               # multiparts and attached messages inside each other
    mail_max_headers: int = 200            # header fields of any one part
    mail_max_header_bytes: int = 16 * 1024  # one field, name included; repeated To fields count together
    mail_max_addresses: int = 1000         # addresses in From, and in To
    mail_parse_seconds: float = 5.0        # CPU time one message may take in its worker
    # Outbound replies (docs/outbound.md). Private, loopback and link-local receivers are refused
    # unless allowed (tests, or a provider on a private LAN).
    outbound_allow_private: bool = False
    outbound_timeout_seconds: float = 10.0     # one attempt, connect to last byte of the answer
    outbound_retry_base_seconds: float = 5.0   # the first retry waits about this long, doubling after
    outbound_retry_max_seconds: float = 3600.0
    outbound_give_up_seconds: float = 86400.0  # a message still unsent this long after queueing fails
    outbound_pause_after: int = 10             # consecutive failed attempts that pause a channel
    outbound_concurrency: int = 4              # attempts in flight per channel
    outbound_link_seconds: float = 3600.0      # attachment links in an outgoing payload stay valid this long
    # Where providers reach this server (attachment links in outgoing payloads); empty: http://host:port.
    public_url: str = ""
    clock: Callable[[], float] = field(default=time.time, repr=False)

    @property
    def base_url(self) -> str:
        return self.public_url.rstrip("/") or f"http://{self.host}:{self.port}"

    @property
    def db_path(self) -> Path:
        return self.data_dir / "inbox.sqlite3"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides) -> Config:
        environ = dict(os.environ if environ is None else environ)
        values: dict = {}
        for f in fields(cls):
            if f.name == "clock":
                continue
            raw = environ.get(f"INBOX_{f.name.upper()}")
            if raw is None:
                continue
            values[f.name] = _parse(f.name, f.type, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def _parse(name: str, kind: str, raw: str):
    try:
        if name == "trusted_proxies":
            return _networks(raw)
        if name == "allowed_origins":
            return _origins(raw)
        if kind == "Path":
            return Path(raw)
        if kind == "bool":
            if raw.lower() not in {"1", "0", "true", "false", "yes", "no"}:
                raise ValueError("expected true or false")
            return raw.lower() in {"1", "true", "yes"}
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        return raw
    except ValueError as exc:
        raise SystemExit(f"INBOX_{name.upper()}={raw!r} is not valid: {exc}") from None
