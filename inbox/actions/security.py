"""Two-step verification and the workspace security policy: every change checked, written and logged.

Every check of a second factor happens inside a write job, so "is this code new?" and "remember it
was used" are one transaction: two concurrent requests with the same code get one success
(checklist 11). Changing one's second factor ends every other session and rotates this one
(checklist 7), like a password change.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import segno

from auth import totp
from auth.gates import login_allowed
from auth.network import parse_allowlist
from auth.tokens import new_token, token_hash

from ..config import Config
from ..errors import Problem, conflict, invalid, ip_refused, not_found, too_many, unauthorized
from ..sealing import Sealer
from ..store import activity, events, throttle
from ..store import security as rows
from ..store import sessions as session_rows
from ..store import users as user_rows
from ..store.db import Database, Tx
from .context import Actor
from .sessions import throttle_delay


def _log(tx: Tx, actor: Actor, type_: str, user_id: int, data: dict | None = None):
    return activity.append(tx, at=actor.now, actor_id=actor.user_id, ip=actor.ip, type=type_, object_type="user",
                           object_id=user_id, data=data or {})


async def _rotate(tx: Tx, actor: Actor, user_id: int, user_agent: str) -> tuple[str, int]:
    """End every session of the user and open a fresh one for the caller."""
    ended = await session_rows.delete_user_sessions(tx, user_id)
    token = new_token()
    await session_rows.insert_session(tx, user_id=user_id, token_hash=token_hash(token), user_agent=user_agent,
                                      ip=actor.ip, now=actor.now)
    return token, len(ended)


async def _second_factor(tx: Tx, sealer: Sealer, user_id: int, *, code: str | None, recovery_code: str | None,
                         now: float, confirming: bool) -> str | None:
    """Check and consume a TOTP code or a recovery code. Returns which one worked, or None.
    ``confirming``: check against the enrolment waiting for confirmation, never the confirmed one."""
    row = await rows.totp(tx, user_id)
    if row is None or (row["confirmed_at"] is None) != confirming:
        return None
    if code:
        step = totp.accepted_step(sealer.open(row["secret_sealed"]), code, now=now, last_step=row["last_step"])
        if step is not None:
            await rows.accept_step(tx, user_id, step)
            return "totp"
    if recovery_code and not confirming:
        for r in await rows.unused_recovery_codes(tx, user_id):
            if totp.recovery_matches(recovery_code, r["salt"], r["code_hash"]):
                return "recovery_code" if await rows.use_recovery_code(tx, r["id"], now) else None
    return None


@dataclass(frozen=True, slots=True)
class Checked:
    used: str | None        # "totp" or "recovery_code" when a factor worked
    wait: float = 0.0       # > 0: throttled, nothing was checked


async def _checked_factor(tx: Tx, sealer: Sealer, config: Config, actor: Actor, user_id: int, *,
                          code: str | None, recovery_code: str | None, failed: str,
                          throttled: str = "2fa.throttled", confirming: bool = False) -> Checked:
    """The one throttled check of a second factor, for every place that checks one (sign-in, confirm,
    disable, new recovery codes): one budget of wrong codes per user (checklist 13), so a stolen
    session cannot brute-force 2FA off. Deciding and counting happen in this write job, so parallel
    guesses are counted one after another: N at once check at most the limit. Returns instead of
    raising, so the failure row and the log entry commit; the caller raises."""
    key = f"totp:{user_id}"
    past = await throttle.failures(tx, key, actor.now - config.login_window_seconds)
    wait = throttle_delay(past, now=actor.now, limit=config.totp_failure_limit,
                          max_delay=config.login_max_delay_seconds)
    if wait > 0:
        if await throttle.first_refusal(tx, key, locked_since=max(past), now=actor.now):
            await _log(tx, actor, throttled, user_id)
        return Checked(None, wait)
    used = await _second_factor(tx, sealer, user_id, code=code, recovery_code=recovery_code, now=actor.now,
                                confirming=confirming)
    if used is None:
        await throttle.record(tx, (key,), actor.now)
        await _log(tx, actor, failed, user_id)
    else:
        await throttle.clear(tx, key)
    return Checked(used)


def _refused(checked: Checked) -> Problem:
    if checked.wait > 0:
        return too_many("Too many wrong codes; wait before trying again.", checked.wait)
    return Problem(403, "second-factor-failed", "Second factor not accepted",
                   "The code or recovery code is not correct (a code works only once).")


def _new_codes() -> tuple[list[str], list[tuple[str, str]]]:
    codes = totp.new_recovery_codes()
    hashed = []
    for code in codes:
        salt = secrets.token_hex(8)
        hashed.append((salt, totp.hash_recovery(code, salt)))
    return codes, hashed


async def status(db: Database, user_id: int, policy: dict) -> dict[str, Any]:
    row = await rows.totp(db, user_id)
    left = len(await rows.unused_recovery_codes(db, user_id))
    return {"enabled": bool(row and row["confirmed_at"]), "pending": bool(row and not row["confirmed_at"]),
            "recovery_codes_left": left, "required": bool(policy.get("require_2fa"))}


async def do_enrol(db: Database, sealer: Sealer, config: Config, actor: Actor, *, email: str) -> dict[str, Any]:
    secret = totp.new_secret()

    async def job(tx: Tx) -> None:
        row = await rows.totp(tx, actor.user_id)
        if row is not None and row["confirmed_at"] is not None:
            raise conflict("Two-step verification is already on; disable it first to enrol a new device.")
        await rows.start_totp(tx, actor.user_id, sealer.seal(secret), actor.now)
        await _log(tx, actor, "2fa.enrolment_started", actor.user_id)

    await db.write(job)
    uri = totp.provisioning_uri(secret, email, config.totp_issuer)
    png = segno.make(uri, error="m").png_data_uri(scale=4)
    return {"secret": secret, "provisioning_uri": uri, "qr_png": png,
            "next": "POST /api/v1/auth/2fa/confirm with a code from the authenticator app"}


async def do_confirm(db: Database, sealer: Sealer, config: Config, actor: Actor, code: str,
                     user_agent: str) -> dict[str, Any]:
    codes, hashed = _new_codes()

    async def job(tx: Tx) -> dict[str, Any] | Checked:
        row = await rows.totp(tx, actor.user_id)
        if row is None or row["confirmed_at"] is not None:
            raise conflict("There is no enrolment waiting for confirmation; start one at /auth/2fa/enrol.")
        checked = await _checked_factor(tx, sealer, config, actor, actor.user_id, code=code, recovery_code=None,
                                        failed="2fa.confirm_failed", confirming=True)
        if checked.used is None:
            return checked
        await rows.confirm_totp(tx, actor.user_id, actor.now)
        await rows.replace_recovery_codes(tx, actor.user_id, hashed)
        token, ended = await _rotate(tx, actor, actor.user_id, user_agent)
        await _log(tx, actor, "2fa.enabled", actor.user_id, {"sessions_ended": ended})
        return {"recovery_codes": codes, "token": token}

    result = await db.write(job)
    if isinstance(result, Checked):
        if result.wait > 0:
            raise _refused(result)
        raise invalid("The code is not correct; check the authenticator app's clock and try the current code.",
                      [{"path": "code", "message": "wrong or expired code"}])
    return result


async def do_disable(db: Database, sealer: Sealer, config: Config, actor: Actor, *, code: str | None,
                     recovery_code: str | None, user_agent: str) -> str:
    async def job(tx: Tx) -> str | Checked:
        row = await rows.totp(tx, actor.user_id)
        if row is None or row["confirmed_at"] is None:
            raise conflict("Two-step verification is not on.")
        checked = await _checked_factor(tx, sealer, config, actor, actor.user_id, code=code,
                                        recovery_code=recovery_code, failed="2fa.disable_failed")
        if checked.used is None:
            return checked
        await rows.remove_totp(tx, actor.user_id)
        token, ended = await _rotate(tx, actor, actor.user_id, user_agent)
        await _log(tx, actor, "2fa.disabled", actor.user_id, {"with": checked.used, "sessions_ended": ended})
        return token

    result = await db.write(job)
    if isinstance(result, Checked):
        raise _refused(result)
    return result


async def do_new_recovery_codes(db: Database, sealer: Sealer, config: Config, actor: Actor, code: str) -> list[str]:
    codes, hashed = _new_codes()

    async def job(tx: Tx) -> Checked:
        if not await rows.enrolled(tx, actor.user_id):
            raise conflict("Two-step verification is not on; there are no recovery codes to replace.")
        checked = await _checked_factor(tx, sealer, config, actor, actor.user_id, code=code, recovery_code=None,
                                        failed="2fa.recovery_codes_failed")
        if checked.used is not None:
            await rows.replace_recovery_codes(tx, actor.user_id, hashed)
            await _log(tx, actor, "2fa.recovery_codes_replaced", actor.user_id)
        return checked

    checked = await db.write(job)
    if checked.used is None:
        raise _refused(checked)
    return codes


async def do_admin_reset(db: Database, actor: Actor, user_id: int) -> None:
    async def job(tx: Tx) -> None:
        if await user_rows.get_user(tx, user_id) is None:
            raise not_found("user")
        if not await rows.remove_totp(tx, user_id):
            raise conflict("This user has no two-step verification to reset.")
        ended = await session_rows.delete_user_sessions(tx, user_id)
        await _log(tx, actor, "2fa.reset", user_id, {"sessions_ended": len(ended)})

    await db.write(job)


# --- login, second step ---

@dataclass(frozen=True)
class SecondStep:
    token: str
    session_id: int
    user_id: int


async def do_second_factor(db: Database, sealer: Sealer, config: Config, *, challenge: str, code: str | None,
                           recovery_code: str | None, ip: str, user_agent: str) -> SecondStep:
    now = config.clock()
    found = await rows.challenge(db, token_hash(challenge)) if challenge.isascii() else None
    if found is None or found["expires_at"] < now:
        raise unauthorized("The sign-in challenge has expired or was already used; sign in again.")
    uid = found["user_id"]
    actor = Actor(uid, ip, now)
    if not login_allowed(await rows.settings(db), ip):
        # Both steps of signing in are gated by the whitelist (SPEC 3), whichever address the first came from.
        await db.write(lambda tx: _log(tx, actor, "login.ip_refused", uid, {"step": "second factor"}))
        raise ip_refused(ip)
    token = new_token()

    async def job(tx: Tx) -> int | Checked:
        checked = await _checked_factor(tx, sealer, config, actor, uid, code=code, recovery_code=recovery_code,
                                        failed="login.2fa_failed", throttled="login.2fa_throttled")
        if checked.used is None:
            return checked
        if not await rows.drop_challenge(tx, found["id"], now):
            return Checked(None)  # a parallel request used this challenge first
        sid = await session_rows.insert_session(tx, user_id=uid, token_hash=token_hash(token), user_agent=user_agent,
                                                ip=ip, now=now)
        await activity.append(tx, at=now, actor_id=uid, ip=ip, type="login.ok", object_type="session", object_id=sid,
                              data={"user_agent": user_agent[:200], "second_factor": checked.used})
        return sid

    sid = await db.write(job)
    if isinstance(sid, Checked):
        if sid.wait > 0:
            raise _refused(sid)
        raise unauthorized("The code is not correct (a code works only once).")
    return SecondStep(token, sid, uid)


# --- workspace policy (/account/security) ---

def policy_json(policy: dict) -> dict[str, Any]:
    return {"require_2fa": bool(policy.get("require_2fa")), "ip_whitelist": list(policy.get("ip_whitelist", [])),
            "block_untrusted_api": bool(policy.get("block_untrusted_api"))}


async def do_update_policy(db: Database, actor: Actor, changes: dict[str, Any]) -> dict[str, Any]:
    if "ip_whitelist" in changes:
        entries = []
        for i, entry in enumerate(changes["ip_whitelist"]):
            try:
                net = parse_allowlist([entry["cidr"]])[0]
            except ValueError:
                raise invalid(f"ip_whitelist.{i}.cidr: {entry['cidr']!r} is not an IPv4 or IPv6 address or CIDR range",
                              [{"path": f"ip_whitelist.{i}.cidr", "message": "not an address or CIDR"}]) from None
            entries.append({"cidr": str(net), "note": entry.get("note", "")})
        changes = {**changes, "ip_whitelist": entries}
        # Checklist 23: never let an admin save a list that locks themselves out.
        if entries and not login_allowed({"ip_whitelist": entries}, actor.ip):
            raise conflict(f"This list would lock you out: your address {actor.ip} is not in it. Add {actor.ip} "
                           f"(or a range that contains it) and save again.", your_address=actor.ip)

    async def job(tx: Tx) -> dict[str, Any]:
        before = policy_json(await rows.settings(tx))
        after = {**before, **changes}
        await rows.save_settings(tx, {**await rows.settings(tx), **after})
        diff = [k for k in after if after[k] != before[k]]
        if diff:
            await events.emit(tx, "security.changed", {}, actor.now)
            await activity.append(tx, at=actor.now, actor_id=actor.user_id, ip=actor.ip, type="security.updated",
                                  object_type="workspace", object_id=1,
                                  data={"before": {k: before[k] for k in diff}, "after": {k: after[k] for k in diff}})
        return after

    return await db.write(job)
