"""/auth and /account: signing in and out, one's own profile, password and sessions."""

from __future__ import annotations

from aiohttp import web

from auth.tokens import csrf_token

from ..actions import people
from ..actions.sessions import check_current_password, do_end_sessions, do_login, do_set_password
from ..keys import CONFIG, DB, HASHER, SEALER
from ..store import sessions as session_rows
from ..store import users as rows
from .common import actor
from .identity import COOKIE, CSRF_COOKIE, Identity, check_cross_site, client_ip, identity, presented_token
from .models import AccountUpdate, LoginIn, PasswordChange
from .problems import Problem, not_found
from .responses import Account, Ended, LoginAnswer, SessionList, Token
from .routing import Access, body, int_id, json_response, registry
from .users_routes import check_password, session_json, user_json

route = registry.route


def _set_cookies(request: web.Request, response: web.Response, token: str) -> None:
    secure = request.app[CONFIG].cookie_secure
    max_age = int(request.app[CONFIG].session_absolute_seconds)
    response.set_cookie(COOKIE, token, httponly=True, samesite="Lax", secure=secure, path="/", max_age=max_age)
    # Readable by the page's script, which echoes it in X-CSRF-Token (double submit).
    response.set_cookie(CSRF_COOKIE, csrf_token(token), httponly=False, samesite="Lax", secure=secure, path="/",
                        max_age=max_age)


async def account_json(request: web.Request, user_id: int) -> dict:
    db = request.app[DB]
    row = await rows.get_user(db, user_id)
    out = user_json(row, await rows.group_ids_of(db, user_id), full=True)
    eff = await people.load_effective(db, user_id, is_admin=bool(row["is_admin"]))
    out["effective_rights"] = eff.rights.to_json()
    out["effective_field_default"] = eff.field_default
    return out


@route("POST", "/api/v1/auth/login", response=LoginAnswer, access=Access.PUBLIC, tag="auth", body=LoginIn,
       summary="Sign in with email and password; returns a bearer token and sets the session cookie")
async def login(request: web.Request) -> web.Response:
    check_cross_site(request)  # no login CSRF from other sites
    data: LoginIn = await body(request)
    try:
        old_token, _ = presented_token(request)
    except Problem:  # a malformed old credential is simply not rotated
        old_token = None
    result = await do_login(request.app[DB], request.app[HASHER], request.app[CONFIG], email=data.email.strip(),
                            password=data.password, ip=client_ip(request),
                            user_agent=request.headers.get("User-Agent", ""), old_token=old_token,
                            identifier_key=request.app[SEALER].derive("login-identifiers"))
    if result.challenge:
        return json_response({"two_factor_required": True, "challenge": result.challenge,
                              "expires_in": int(request.app[CONFIG].login_challenge_seconds),
                              "next": "POST /api/v1/auth/2fa with the challenge and a code or recovery code"})
    return signed_in(request, result.token, result.session_id, await account_json(request, result.user_id))


def signed_in(request: web.Request, token: str, session_id: int, account: dict) -> web.Response:
    payload = {"token": token, "csrf_token": csrf_token(token), "session_id": session_id, "user": account}
    response = json_response(payload)
    _set_cookies(request, response, token)
    return response


@route("POST", "/api/v1/auth/logout", access=Access.USER, tag="auth", status=204, summary="End this session",
       setup=True)
async def logout(request: web.Request) -> web.Response:
    ident = identity(request)
    await do_end_sessions(request.app[DB], actor(request), ident.user_id, session_id=ident.session_id,
                          reason="logout")
    response = web.Response(status=204)
    response.del_cookie(COOKIE, path="/")
    response.del_cookie(CSRF_COOKIE, path="/")
    return response


@route("GET", "/api/v1/account", response=Account, access=Access.USER, tag="auth",
       summary="Who am I: profile and effective rights", setup=True)
async def get_account(request: web.Request) -> web.Response:
    return json_response(await account_json(request, identity(request).user_id))


@route("PATCH", "/api/v1/account", response=Account, access=Access.USER, tag="auth", body=AccountUpdate,
       summary="Change one's own name or avatar")
async def update_account(request: web.Request) -> web.Response:
    data: AccountUpdate = await body(request)
    changes = {k: getattr(data, k) for k in data.model_fields_set}
    if "name" in changes and changes["name"] is None:
        changes.pop("name")
    uid = identity(request).user_id
    await people.do_update_user(request.app[DB], actor(request), uid, changes)
    return json_response(await account_json(request, uid))


@route("POST", "/api/v1/account/password", response=Token, access=Access.USER, tag="auth", body=PasswordChange,
       summary="Change one's own password; every session ends and this one is rotated to a new token")
async def change_password(request: web.Request) -> web.Response:
    data: PasswordChange = await body(request)
    ident: Identity = identity(request)
    db, hasher = request.app[DB], request.app[HASHER]
    row = await rows.get_user(db, ident.user_id)
    await check_current_password(db, hasher, request.app[CONFIG], actor(request), row, data.current_password)
    check_password(data.new_password, email=row["email"], name=row["name"], path="new_password")
    token = await do_set_password(db, hasher, actor(request), ident.user_id, data.new_password,
                                  reason="user.password_changed", user_agent=request.headers.get("User-Agent", ""))
    response = json_response({"token": token, "csrf_token": csrf_token(token)})
    if ident.via_cookie:
        _set_cookies(request, response, token)
    return response


@route("GET", "/api/v1/sessions", response=SessionList, access=Access.USER, tag="sessions",
       summary="One's own sessions: device, address, created and last activity")
async def list_sessions(request: web.Request) -> web.Response:
    ident = identity(request)
    found = await session_rows.list_sessions(request.app[DB], ident.user_id)
    return json_response({"items": [session_json(r, ident.session_id) for r in found]})


@route("DELETE", "/api/v1/sessions", response=Ended, access=Access.USER, tag="sessions",
       summary="Log out all other sessions")
async def end_other_sessions(request: web.Request) -> web.Response:
    ident = identity(request)
    ended = await do_end_sessions(request.app[DB], actor(request), ident.user_id, keep=ident.session_id,
                                  reason="session.ended_others")
    return json_response({"ended": ended})


@route("DELETE", "/api/v1/sessions/{id}", access=Access.USER, tag="sessions", status=204,
       summary="End one session: one's own, or anyone's for an administrator")
async def end_session(request: web.Request) -> web.Response:
    sid = int_id(request)
    ident = identity(request)
    db = request.app[DB]
    row = await session_rows.get_session(db, sid)
    if row is None or (row["user_id"] != ident.user_id and not ident.is_admin):
        raise not_found("session")
    reason = "session.ended" if row["user_id"] == ident.user_id else "session.ended_by_admin"
    await do_end_sessions(db, actor(request), row["user_id"], session_id=sid, reason=reason)
    return web.Response(status=204)


