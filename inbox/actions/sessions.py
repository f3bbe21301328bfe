"""Login, logout, password changes and session ends, with throttling (SECURITY-CHECKLIST 2-10)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from auth.gates import login_allowed
from auth.passwords import Hasher
from auth.tokens import new_token, token_hash

from ..config import Config
from ..errors import Problem, forbidden, ip_refused, not_found, too_many, unauthorized
from ..store import activity, throttle
from ..store import security as security_rows
from ..store import sessions as session_rows
from ..store import users as user_rows
from ..store.db import Database, Tx
from .context import Actor

# One body for "no such user" and "wrong password" (checklist 2): nothing tells them apart.
BAD_LOGIN = "The email or password is not correct."


@dataclass(frozen=True)
class Login:
    token: str | None          # None while a second factor is pending
    session_id: int | None
    user_id: int
    challenge: str | None = None


def throttle_delay(failures: list[float], *, now: float, limit: int, max_delay: float) -> float:
    """Seconds to wait before another attempt: 0 below ``limit`` failures in the window, then doubling
    from one minute per extra failure, capped at ``max_delay``. Pure, so it is tested directly."""
    if len(failures) < limit:
        return 0.0
    # Cap the exponent first: a burst of concurrent failures must not overflow the float.
    delay = min(max_delay, 60.0 * 2 ** min(len(failures) - limit, 32))
    return max(0.0, max(failures) + delay - now)


async def reserve_attempt(db: Database, config: Config, limits: Iterable[tuple[str, int]], *, now: float,
                          throttled: Callable[[Tx], Awaitable[Any]]) -> list[int]:
    """Let a password check go ahead, or raise 429. Deciding and counting are one step: the attempt
    counts as a failure under every key before its password is checked, in the write job that read the
    counts, so N parallel attempts check at most the limit (a black-box test once had 60 parallel wrong
    passwords all checked against a limit of 5). A right password takes its rows back
    (``throttle.take_back``); a crash in between leaves the attempt counted, never uncounted."""
    since = now - config.login_window_seconds

    async def reserve(tx: Tx) -> tuple[float, list[int]]:
        wait, first = 0.0, False
        for key, limit in limits:
            past = await throttle.failures(tx, key, since)
            delay = throttle_delay(past, now=now, limit=limit, max_delay=config.login_max_delay_seconds)
            if delay > 0:
                wait = max(wait, delay)
                first = await throttle.first_refusal(tx, key, locked_since=max(past), now=now) or first
        if wait > 0:
            if first:
                await throttled(tx)
            return wait, []
        return 0.0, await throttle.record(tx, [key for key, _ in limits], now)

    wait, reserved = await db.write(reserve)
    if wait > 0:
        raise too_many("Too many failed password attempts; wait before trying again, or ask an administrator "
                       "to reset the password.", wait)
    return reserved


async def check_current_password(db: Database, hasher: Hasher, config: Config, actor: Actor, user, password: str,
                                 ) -> None:
    """A password check inside a session (changing it) spends the same budget as signing in to the
    account, so a stolen session cannot guess the password faster than the login page allows."""
    key = f"email:{user['email'].lower()}"

    def log(type_: str):
        return lambda tx: activity.append(tx, at=actor.now, actor_id=actor.user_id, ip=actor.ip, type=type_,
                                          object_type="user", object_id=user["id"])

    reserved = await reserve_attempt(db, config, ((key, config.login_account_limit),), now=actor.now,
                                     throttled=log("user.password_change_throttled"))
    if await hasher.verify(user["password_hash"], password):
        await db.write(lambda tx: throttle.take_back(tx, reserved))
        return
    await db.write(log("user.password_change_failed"))
    raise forbidden("The current password is not correct.")


def attempted(email: str, target, key: bytes) -> dict[str, str]:
    """What a refused sign-in logs of the identifier typed: the address when it names an account,
    otherwise only a keyed digest, because people type passwords into the email field and the activity
    log must never hold a secret (checklist 30). Keyed with a server secret, so a reader of the log or
    of a stolen database cannot test guesses against it; equal identifiers still show as equal."""
    if target is not None:
        return {"email": email}
    return {"email_digest": hmac.new(key, email.strip().lower().encode(), hashlib.sha256).hexdigest()[:16]}


async def do_login(db: Database, hasher: Hasher, config: Config, *, email: str, password: str, ip: str,
                   user_agent: str, old_token: str | None, identifier_key: bytes) -> Login:
    now = config.clock()
    policy = await security_rows.settings(db)
    # Refused and throttled attempts name the account they aimed at, so the log filters by user.
    user = await user_rows.get_user_by_email(db, email)
    target_id = user["id"] if user else None
    typed = attempted(email, user, identifier_key)
    if not login_allowed(policy, ip):
        # The whitelist always gates login (SPEC 3), before any password is looked at.
        await db.write(lambda tx: activity.append(tx, at=now, actor_id=target_id, ip=ip, type="login.ip_refused",
                                                  data=typed))
        raise ip_refused(ip)
    account_key, ip_key = f"email:{email.lower()}", f"ip:{ip}"

    # Per account (whatever the source address) and per address (checklist 10).
    reserved = await reserve_attempt(
        db, config, ((account_key, config.login_account_limit), (ip_key, config.login_ip_limit)), now=now,
        throttled=lambda tx: activity.append(tx, at=now, actor_id=target_id, ip=ip, type="login.throttled",
                                             data=typed))
    ok = await hasher.verify(user["password_hash"] if user else None, password)
    if not ok or not user["is_active"]:
        async def fail(tx: Tx) -> None:  # the reservation stays: it was a failure
            await throttle.prune(tx, now - config.login_window_seconds)
            await activity.append(tx, at=now, actor_id=target_id, ip=ip, type="login.failed",
                                  data={**typed, "reason": "disabled" if ok else "bad credentials"})
        await db.write(fail)
        if ok:  # the right password proves who is asking: say why, so they know whom to ask
            raise Problem(403, "account-disabled", "Account disabled",
                          "This account is disabled; ask an administrator to enable it.")
        raise unauthorized(BAD_LOGIN)

    new_hash = await hasher.hash(password) if hasher.needs_rehash(user["password_hash"]) else None
    token = new_token()

    async def succeed(tx: Tx) -> int | None:
        if new_hash:  # upgrade old argon2 parameters at login (checklist 1)
            await user_rows.set_password_hash(tx, user["id"], new_hash)
        if old_token:  # a new login rotates the token: the one sent with it stops working (checklist 5)
            await session_rows.delete_by_token(tx, token_hash(old_token))
        await throttle.take_back(tx, reserved)
        await throttle.clear(tx, account_key)
        if await security_rows.enrolled(tx, user["id"]):
            # Password right, second factor pending: a short-lived challenge, no session yet.
            await security_rows.insert_challenge(tx, token_hash=token_hash(token), user_id=user["id"], ip=ip,
                                                 user_agent=user_agent, expires_at=now + config.login_challenge_seconds)
            await activity.append(tx, at=now, actor_id=user["id"], ip=ip, type="login.password_ok",
                                  object_type="user", object_id=user["id"], data={"second_factor": "pending"})
            return None
        sid = await session_rows.insert_session(tx, user_id=user["id"], token_hash=token_hash(token),
                                                user_agent=user_agent, ip=ip, now=now)
        await activity.append(tx, at=now, actor_id=user["id"], ip=ip, type="login.ok", object_type="session",
                              object_id=sid, data={"user_agent": user_agent[:200]})
        return sid

    sid = await db.write(succeed)
    if sid is None:
        return Login(None, None, user["id"], challenge=token)
    return Login(token, sid, user["id"])


async def do_end_sessions(db: Database, actor: Actor, user_id: int, *, session_id: int | None = None,
                          keep: int | None = None, reason: str) -> list[int]:
    """End one session, or all of a user's sessions except ``keep``. Returns the ended ids."""

    async def job(tx: Tx) -> list[int]:
        if session_id is not None:
            row = await session_rows.get_session(tx, session_id)
            if row is None or row["user_id"] != user_id:
                return []
            await session_rows.delete_session(tx, session_id)
            ended = [session_id]
        else:
            ended = await session_rows.delete_user_sessions(tx, user_id, keep=keep)
        if ended:
            await activity.append(tx, at=actor.now, actor_id=actor.user_id, ip=actor.ip, type=reason,
                                  object_type="user", object_id=user_id, data={"session_ids": ended})
        return ended

    return await db.write(job)


async def do_set_password(db: Database, hasher: Hasher, actor: Actor, user_id: int, new_password: str, *,
                          reason: str, user_agent: str) -> str | None:
    """Set a password and end every session of the user (checklist 7).

    When users change their own password, the session that did it is rotated: a fresh token is
    returned and the old one stops working. An admin reset also clears the login throttle, so a
    locked account can recover (checklist 10).
    """
    encoded = await hasher.hash(new_password)
    own = actor.user_id == user_id
    token = new_token() if own else None

    async def job(tx: Tx) -> None:
        row = await user_rows.get_user(tx, user_id)
        if row is None:
            raise not_found("user")
        await user_rows.set_password_hash(tx, user_id, encoded, actor.now)
        ended = await session_rows.delete_user_sessions(tx, user_id)
        await throttle.clear(tx, f"email:{row['email'].lower()}")
        if token:
            await session_rows.insert_session(tx, user_id=user_id, token_hash=token_hash(token),
                                              user_agent=user_agent, ip=actor.ip, now=actor.now)
        await activity.append(tx, at=actor.now, actor_id=actor.user_id, ip=actor.ip, type=reason,
                              object_type="user", object_id=user_id, data={"sessions_ended": len(ended)})

    await db.write(job)
    return token
