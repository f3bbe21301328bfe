"""/auth/2fa (two-step verification) and /account/security (the workspace policy)."""

from __future__ import annotations

from aiohttp import web

from auth.tokens import csrf_token

from ..actions import security
from ..keys import CONFIG, DB, SEALER
from ..store import security as rows
from .auth_routes import _set_cookies, account_json, signed_in
from .common import actor
from .identity import check_cross_site, client_ip, identity
from .models import CodeIn, FactorIn, SecondFactorLogin, SecurityUpdate
from .responses import Confirmed, Enrolment, RecoveryCodes, SecurityPolicy, SignedIn, Token, TwoFactorStatus
from .routing import Access, body, int_id, json_response, registry

route = registry.route


def _rotated(request: web.Request, token: str, extra: dict | None = None) -> web.Response:
    response = json_response({"token": token, "csrf_token": csrf_token(token), **(extra or {})})
    if identity(request).via_cookie:
        _set_cookies(request, response, token)
    return response


@route("POST", "/api/v1/auth/2fa", response=SignedIn, access=Access.PUBLIC, tag="auth", body=SecondFactorLogin,
       summary="Second sign-in step: the login challenge with a TOTP code or a recovery code")
async def second_step(request: web.Request) -> web.Response:
    check_cross_site(request)
    data: SecondFactorLogin = await body(request)
    result = await security.do_second_factor(
        request.app[DB], request.app[SEALER], request.app[CONFIG], challenge=data.challenge, code=data.code,
        recovery_code=data.recovery_code, ip=client_ip(request), user_agent=request.headers.get("User-Agent", ""))
    return signed_in(request, result.token, result.session_id, await account_json(request, result.user_id))


@route("GET", "/api/v1/auth/2fa", response=TwoFactorStatus, access=Access.USER, tag="auth", setup=True,
       summary="Your two-step verification: on or off, recovery codes left, required by the workspace")
async def two_factor_status(request: web.Request) -> web.Response:
    ident = identity(request)
    return json_response(await security.status(request.app[DB], ident.user_id, ident.settings))


@route("POST", "/api/v1/auth/2fa/enrol", response=Enrolment, access=Access.USER, tag="auth", setup=True, status=201,
       summary="Start enrolment: a new secret, its provisioning URI and a QR code (PNG data URI)")
async def enrol(request: web.Request) -> web.Response:
    ident = identity(request)
    out = await security.do_enrol(request.app[DB], request.app[SEALER], request.app[CONFIG], actor(request),
                                  email=ident.email)
    return json_response(out, status=201)


@route("POST", "/api/v1/auth/2fa/confirm", response=Confirmed, access=Access.USER, tag="auth", setup=True, body=CodeIn,
       summary="Confirm enrolment with a code; returns ten recovery codes, shown once, and a rotated token")
async def confirm(request: web.Request) -> web.Response:
    data: CodeIn = await body(request)
    out = await security.do_confirm(request.app[DB], request.app[SEALER], request.app[CONFIG], actor(request),
                                    data.code, request.headers.get("User-Agent", ""))
    return _rotated(request, out["token"], {"recovery_codes": out["recovery_codes"]})


@route("POST", "/api/v1/auth/2fa/disable", response=Token, access=Access.USER, tag="auth", body=FactorIn,
       summary="Turn two-step verification off with a code or a recovery code; other sessions end")
async def disable(request: web.Request) -> web.Response:
    data: FactorIn = await body(request)
    token = await security.do_disable(request.app[DB], request.app[SEALER], request.app[CONFIG], actor(request),
                                      code=data.code, recovery_code=data.recovery_code,
                                      user_agent=request.headers.get("User-Agent", ""))
    return _rotated(request, token)


@route("POST", "/api/v1/auth/2fa/recovery_codes", response=RecoveryCodes, access=Access.USER, tag="auth", body=CodeIn,
       summary="Replace your recovery codes (the old set stops working); needs a current code")
async def new_recovery_codes(request: web.Request) -> web.Response:
    data: CodeIn = await body(request)
    codes = await security.do_new_recovery_codes(request.app[DB], request.app[SEALER], request.app[CONFIG],
                                                 actor(request), data.code)
    return json_response({"recovery_codes": codes})


@route("DELETE", "/api/v1/users/{id}/2fa", access=Access.ADMIN, tag="users", status=204,
       summary="Reset a user's two-step verification (admin; logged; their sessions end)")
async def admin_reset(request: web.Request) -> web.Response:
    await security.do_admin_reset(request.app[DB], actor(request), int_id(request))
    return web.Response(status=204)


@route("GET", "/api/v1/account/security", response=SecurityPolicy, access=Access.ADMIN, tag="security",
       summary="The workspace security policy: 2FA requirement, IP whitelist, API blocking (admin)")
async def get_policy(request: web.Request) -> web.Response:
    policy = security.policy_json(await rows.settings(request.app[DB]))
    return json_response({**policy, "your_address": client_ip(request)})


@route("PATCH", "/api/v1/account/security", response=SecurityPolicy, access=Access.ADMIN, tag="security",
       body=SecurityUpdate,
       summary="Change the policy; a whitelist that would exclude your own address is refused (409)")
async def update_policy(request: web.Request) -> web.Response:
    data: SecurityUpdate = await body(request)
    changes = data.model_dump(exclude_unset=True)
    policy = await security.do_update_policy(request.app[DB], actor(request), changes)
    return json_response({**security.policy_json(policy), "your_address": client_ip(request)})
