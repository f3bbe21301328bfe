"""Who is calling: the client address, the session behind a token or cookie, and CSRF checks."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from auth.gates import Refusal, refusal
from auth.network import client_address
from auth.tokens import csrf_ok, session_expired, token_hash

from ..keys import CONFIG, DB
from ..store import activity
from ..store import security as security_rows
from ..store import sessions as session_rows
from .problems import Problem, forbidden, unauthorized

COOKIE = "inbox_session"
CSRF_COOKIE = "inbox_csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class Identity:
    user_id: int
    session_id: int
    email: str
    name: str
    is_admin: bool
    token: str
    via_cookie: bool
    has_2fa: bool = False
    settings: dict = field(default_factory=dict)   # workspace security policy, read with the session
    # What the user's Subject is built from, read with the session (see ``session_with_rights``).
    source_rows: list = field(default_factory=list, repr=False)
    comembers: list = field(default_factory=list, repr=False)


IDENTITY = web.RequestKey("identity", Identity)
CLIENT_IP = web.RequestKey("client_ip", str)


def client_ip(request: web.Request) -> str:
    cached = request.get(CLIENT_IP)
    if cached is None:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        cached = client_address(peer[0] if peer else None, request.headers.get("X-Forwarded-For"),
                                request.app[CONFIG].trusted_proxies)
        request[CLIENT_IP] = cached
    return cached


def identity(request: web.Request) -> Identity:
    ident = request.get(IDENTITY)
    if ident is None:  # a route declared PUBLIC asked for a caller: a programming error
        raise unauthorized()
    return ident


def origin_allowed(request: web.Request, origin: str) -> bool:
    origin = origin.rstrip("/")
    return origin == f"{request.scheme}://{request.host}" or origin in request.app[CONFIG].allowed_origins


def check_cross_site(request: web.Request) -> None:
    """Refuse browser requests from other sites (SECURITY-CHECKLIST 21)."""
    if request.headers.get("Sec-Fetch-Site") == "cross-site":
        raise forbidden("Cross-site requests are refused (Sec-Fetch-Site: cross-site).")
    origin = request.headers.get("Origin")
    if origin and not origin_allowed(request, origin):
        raise forbidden(f"Origin {origin!r} is not allowed; add it to INBOX_ALLOWED_ORIGINS.")


def presented_token(request: web.Request) -> tuple[str | None, bool]:
    auth = request.headers.get("Authorization", "")
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthorized("The Authorization header must be 'Bearer <token>'.")
        token = token.strip()
        if not token.isascii():
            raise unauthorized("The token is not valid; sign in again.")
        return token, False
    cookie = request.cookies.get(COOKIE)
    if cookie and not cookie.isascii():
        raise unauthorized("The session cookie is not valid; sign in again.")
    return (cookie, True) if cookie else (None, False)


async def authenticate(request: web.Request) -> Identity:
    token, via_cookie = presented_token(request)
    if not token:
        raise unauthorized()
    return await identify(request, token, via_cookie)


async def identify(request: web.Request, token: str, via_cookie: bool) -> Identity:
    """The session behind a token: checked for expiry, CSRF (cookie writes) and touched."""
    config, db = request.app[CONFIG], request.app[DB]
    row, source_rows, comembers = await session_rows.session_with_rights(db, token_hash(token))
    if row is None or not row["is_active"]:
        raise unauthorized("The session has ended or never existed; sign in again.")
    now = config.clock()
    expired = session_expired(now=now, created_at=row["session_created_at"], last_seen_at=row["last_seen_at"],
                              idle_timeout=config.session_idle_seconds,
                              absolute_timeout=config.session_absolute_seconds)
    if expired:
        sid, uid, ip = row["session_id"], row["id"], client_ip(request)

        async def end(tx) -> None:
            await session_rows.delete_session(tx, sid)
            await activity.append(tx, at=now, actor_id=uid, ip=ip, type="session.expired", object_type="session",
                                  object_id=sid, data={"timeout": expired})

        await db.write(end)
        raise unauthorized(f"The session expired ({expired} timeout); sign in again.")
    if via_cookie and request.method not in SAFE_METHODS:
        check_cross_site(request)
        if not csrf_ok(token, request.headers.get(CSRF_HEADER)):
            raise forbidden(f"Cookie-authenticated changes need the {CSRF_HEADER} header "
                            f"(its value is in the {CSRF_COOKIE} cookie and the login response).")
    if now - row["last_seen_at"] >= config.session_touch_seconds:
        sid = row["session_id"]
        await db.write(lambda tx: session_rows.touch(tx, sid, now))
    return Identity(row["id"], row["session_id"], row["email"], row["name"], bool(row["is_admin"]), token, via_cookie,
                    bool(row["has_2fa"]), security_rows.policy_of(row["workspace_settings"]), source_rows, comembers)


_REFUSED = {
    Refusal.IP_NOT_ALLOWED: ("Address not allowed", "Access from {ip} is blocked by the workspace IP whitelist."),
    Refusal.TWO_FACTOR_REQUIRED: (
        "Two-step verification required",
        "This workspace requires two-step verification: enrol at POST /api/v1/auth/2fa/enrol, "
        "then confirm with a code at POST /api/v1/auth/2fa/confirm."),
}


def check_gates(request: web.Request, policy: dict, *, has_2fa: bool, enrolling: bool = False) -> None:
    """Every workspace gate, for every door (REST, websocket, signed link): raises the refusal as a 403
    problem whose slug names it. The one place the doors share (see ``auth.gates``)."""
    ip = client_ip(request)
    why = refusal(policy, ip=ip, has_2fa=has_2fa, enrolling=enrolling)
    if why is not None:
        title, detail = _REFUSED[why]
        raise Problem(403, why.value, title, detail.format(ip=ip))
