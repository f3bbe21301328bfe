"""Two-step verification, the workspace IP whitelist and API blocking (SPEC 3, seed 002,
SECURITY-CHECKLIST 7, 11-16, 23, 24, 30). The server's clock is the test's, so codes are exact."""

from __future__ import annotations

import asyncio
import ipaddress
import json

import pyotp
import pytest

from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, FAST_HASHING

PROXY = {"trusted_proxies": (ipaddress.ip_network("127.0.0.0/8"),), **FAST_HASHING}


@pytest.fixture
def config_overrides() -> dict:
    # The test client is a trusted proxy, so X-Forwarded-For picks the client address per request.
    return PROXY


def xff(address: str) -> dict:
    return {"X-Forwarded-For": address}


async def enrol(api, who) -> tuple[str, list[str], str]:
    """Turn 2FA on for ``who``; returns the secret, the recovery codes and the rotated token."""
    r = await api.post("/api/v1/auth/2fa/enrol", who=who)
    assert r.status == 201, r.body
    secret = r.body["secret"]
    r = await api.post("/api/v1/auth/2fa/confirm", {"code": pyotp.TOTP(secret).at(api.clock.now)}, who=who)
    assert r.status == 200, r.body
    return secret, r.body["recovery_codes"], r.body["token"]


async def password_step(api, email, password, **kw) -> str:
    r = await api.login(email, password, **kw)
    assert r.status == 200 and r.body["two_factor_required"] is True and "token" not in r.body, r.body
    return r.body["challenge"]


async def logged(api, type_: str) -> list[tuple]:
    return await api.rows("SELECT actor_id, ip, object_id, data FROM activity WHERE type = ? ORDER BY id", (type_,))


async def test_enrol_confirm_and_sign_in_in_two_steps(api, admin):
    bob = await api.add_user(admin, "Bob")
    r = await api.post("/api/v1/auth/2fa/enrol", who=bob)
    assert r.status == 201
    secret = r.body["secret"]
    assert r.body["provisioning_uri"].startswith("otpauth://totp/") and "issuer=Inbox" in r.body["provisioning_uri"]
    assert r.body["qr_png"].startswith("data:image/png;base64,")
    # A wrong code does not confirm.
    r = await api.post("/api/v1/auth/2fa/confirm", {"code": "000000"}, who=bob)
    assert r.status == 422 and (await api.get("/api/v1/auth/2fa", who=bob)).body["enabled"] is False
    r = await api.post("/api/v1/auth/2fa/confirm", {"code": pyotp.TOTP(secret).at(api.clock.now)}, who=bob)
    assert r.status == 200
    codes, token = r.body["recovery_codes"], r.body["token"]
    assert len(codes) == 10 == len(set(codes))
    # Checklist 7: an MFA change ends the other sessions and rotates this one.
    assert (await api.get("/api/v1/account", who=bob)).status == 401
    status = await api.get("/api/v1/auth/2fa", who=token)
    assert status.body == {"enabled": True, "pending": False, "recovery_codes_left": 10, "required": False}
    assert (await api.post("/api/v1/auth/2fa/enrol", who=token)).status == 409
    # Sign-in now takes two steps; the password alone gives no token.
    challenge = await password_step(api, bob.email, bob.password)
    r = await api.post("/api/v1/auth/2fa", {"challenge": challenge, "code": "123456"})
    assert r.status == 401
    api.clock.advance(30)  # the confirm consumed the current step; the next step's code is fresh
    code = pyotp.TOTP(secret).at(api.clock.now)
    r = await api.post("/api/v1/auth/2fa", {"challenge": challenge, "code": code})
    assert r.status == 200 and r.body["user"]["id"] == bob.user_id
    assert (await api.get("/api/v1/account", who=r.body["token"])).status == 200
    # Checklist 11: the same code is refused a second time, inside its window, on a new challenge.
    again = await password_step(api, bob.email, bob.password)
    assert (await api.post("/api/v1/auth/2fa", {"challenge": again, "code": code})).status == 401
    # A challenge is single-use.
    assert (await api.post("/api/v1/auth/2fa", {"challenge": challenge, "code": code})).status == 401
    # Checklist 12: one step either side is accepted, two steps old is not.
    api.clock.advance(90)
    stale = pyotp.TOTP(secret).at(api.clock.now - 60)
    assert (await api.post("/api/v1/auth/2fa", {"challenge": again, "code": stale})).status == 401
    late = pyotp.TOTP(secret).at(api.clock.now - 30)
    assert (await api.post("/api/v1/auth/2fa", {"challenge": again, "code": late})).status == 200
    ok = await logged(api, "login.ok")
    assert json.loads(ok[-1][3])["second_factor"] == "totp"
    assert await logged(api, "login.2fa_failed")
    assert await logged(api, "2fa.enabled")


async def test_challenge_expires(api, admin):
    bob = await api.add_user(admin, "Bob")
    secret, _, _ = await enrol(api, bob)
    challenge = await password_step(api, bob.email, bob.password)
    api.clock.advance(301)
    r = await api.post("/api/v1/auth/2fa", {"challenge": challenge, "code": pyotp.TOTP(secret).at(api.clock.now)})
    assert r.status == 401 and "expired" in r.body["detail"]


async def test_recovery_codes_work_once_and_a_new_set_replaces_the_old(api, admin):
    bob = await api.add_user(admin, "Bob")
    secret, codes, token = await enrol(api, bob)
    challenge = await password_step(api, bob.email, bob.password)
    r = await api.post("/api/v1/auth/2fa", {"challenge": challenge, "recovery_code": codes[0].upper()})
    assert r.status == 200
    challenge = await password_step(api, bob.email, bob.password)
    assert (await api.post("/api/v1/auth/2fa", {"challenge": challenge, "recovery_code": codes[0]})).status == 401
    assert (await api.get("/api/v1/auth/2fa", who=r.body["token"])).body["recovery_codes_left"] == 9
    api.clock.advance(30)
    r = await api.post("/api/v1/auth/2fa/recovery_codes", {"code": pyotp.TOTP(secret).at(api.clock.now)},
                       who=r.body["token"])
    assert r.status == 200 and len(r.body["recovery_codes"]) == 10
    fresh = r.body["recovery_codes"]
    assert (await api.post("/api/v1/auth/2fa", {"challenge": challenge, "recovery_code": codes[1]})).status == 401
    challenge = await password_step(api, bob.email, bob.password)
    assert (await api.post("/api/v1/auth/2fa", {"challenge": challenge, "recovery_code": fresh[1]})).status == 200
    # Checklist 15: stored salted and hashed, never as given.
    stored = await api.rows("SELECT salt, code_hash FROM recovery_codes WHERE user_id = ?", (bob.user_id,))
    assert len(stored) == 10 and not any(c.replace("-", "") in h for c in fresh for _, h in stored)
    assert len({s for s, _ in stored}) == 10


async def test_disable_needs_a_second_factor(api, admin):
    bob = await api.add_user(admin, "Bob")
    secret, codes, token = await enrol(api, bob)
    r = await api.post("/api/v1/auth/2fa/disable", {"code": "000000"}, who=token)
    assert r.status == 403
    assert await logged(api, "2fa.disable_failed")
    r = await api.post("/api/v1/auth/2fa/disable", {"recovery_code": codes[3]}, who=token)
    assert r.status == 200
    assert (await api.get("/api/v1/account", who=token)).status == 401  # rotated
    assert (await api.get("/api/v1/auth/2fa", who=r.body["token"])).body["enabled"] is False
    assert (await api.login(bob.email, bob.password)).body["token"]
    r = await api.post("/api/v1/auth/2fa/disable", {"code": "1", "recovery_code": "2"}, who=r.body["token"])
    assert r.status == 422


async def test_concurrent_use_of_one_code_succeeds_once(api, admin):
    bob = await api.add_user(admin, "Bob")
    secret, _, _ = await enrol(api, bob)
    api.clock.advance(30)
    first = await password_step(api, bob.email, bob.password)
    second = await password_step(api, bob.email, bob.password)
    code = pyotp.TOTP(secret).at(api.clock.now)
    replies = await asyncio.gather(api.post("/api/v1/auth/2fa", {"challenge": first, "code": code}),
                                   api.post("/api/v1/auth/2fa", {"challenge": second, "code": code}))
    assert sorted(r.status for r in replies) == [200, 401]


async def test_wrong_codes_are_throttled_per_user(api, admin):
    bob = await api.add_user(admin, "Bob")
    secret, _, _ = await enrol(api, bob)
    challenge = await password_step(api, bob.email, bob.password)
    for _ in range(5):
        assert (await api.post("/api/v1/auth/2fa", {"challenge": challenge, "code": "000000"})).status == 401
    api.clock.advance(30)
    right = pyotp.TOTP(secret).at(api.clock.now)
    r = await api.post("/api/v1/auth/2fa", {"challenge": challenge, "code": right})
    assert r.status == 429 and int(r.headers["Retry-After"]) > 0  # even a right code waits (checklist 13)
    api.clock.advance(31)
    challenge = await password_step(api, bob.email, bob.password)
    r = await api.post("/api/v1/auth/2fa", {"challenge": challenge, "code": pyotp.TOTP(secret).at(api.clock.now)})
    assert r.status == 200
    assert await logged(api, "login.2fa_throttled")


async def test_seed_is_encrypted_at_rest(api, admin, tmp_path):
    secret, _, _ = await enrol(api, admin)
    stored = await api.rows("SELECT secret_sealed FROM user_totp")
    assert stored and secret not in stored[0][0]
    for path in tmp_path.glob("inbox.sqlite3*"):
        assert secret.encode() not in path.read_bytes()
    assert (tmp_path / "secret.key").stat().st_mode & 0o077 == 0


async def test_workspace_can_require_2fa(api, admin):
    bob = await api.add_user(admin, "Bob")
    _, _, admin_token = await enrol(api, admin)
    r = await api.patch("/api/v1/account/security", {"require_2fa": True}, who=admin_token)
    assert r.status == 200 and r.body["require_2fa"] is True
    # Bob can reach only enrolment, his account and logout until he enrols.
    r = await api.get("/api/v1/users", who=bob)
    assert r.status == 403 and r.body["type"].endswith("/two-factor-required")
    assert (await api.get("/api/v1/account", who=bob)).status == 200
    assert (await api.get("/api/v1/auth/2fa", who=bob)).body["required"] is True
    _, _, token = await enrol(api, bob)
    assert (await api.get("/api/v1/users", who=token)).status == 200
    assert (await api.post("/api/v1/auth/logout", who=token)).status == 204


async def test_admin_can_reset_a_users_2fa(api, admin):
    bob = await api.add_user(admin, "Bob")
    _, _, token = await enrol(api, bob)
    assert (await api.delete(f"/api/v1/users/{bob.user_id}/2fa", who=token)).status == 403
    assert (await api.delete(f"/api/v1/users/{bob.user_id}/2fa", who=admin)).status == 204
    assert (await api.get("/api/v1/account", who=token)).status == 401
    assert (await api.delete(f"/api/v1/users/{bob.user_id}/2fa", who=admin)).status == 409
    r = await api.login(bob.email, bob.password)
    assert r.status == 200 and r.body["token"]
    reset = await logged(api, "2fa.reset")
    assert reset[0][0] == admin.user_id and reset[0][2] == bob.user_id


async def test_password_reset_does_not_skip_the_second_factor(api, admin):
    """Checklist 16: after an admin password reset the user still needs the code."""
    bob = await api.add_user(admin, "Bob")
    await enrol(api, bob)
    await api.post(f"/api/v1/users/{bob.user_id}/password", {"new_password": "brand-new-secret-1"}, who=admin)
    r = await api.login(bob.email, "brand-new-secret-1")
    assert r.body["two_factor_required"] is True and "token" not in r.body


# --- IP whitelist (checklist 23, 24) ---

async def test_whitelist_gates_login_for_v4_v6_and_mapped_addresses(api):
    admin = await api.login(ADMIN_EMAIL, ADMIN_PASSWORD, headers=xff("203.0.113.5"))
    token = admin.body["token"]
    bob = await api.add_user(token, "Bob")
    policy = {"ip_whitelist": [{"cidr": "203.0.113.0/24", "note": "office"}, {"cidr": "2001:db8::/32", "note": "vpn"}]}
    r = await api.patch("/api/v1/account/security", policy, who=token, headers=xff("203.0.113.5"))
    assert r.status == 200 and [e["cidr"] for e in r.body["ip_whitelist"]] == ["203.0.113.0/24", "2001:db8::/32"]
    for address, status in (("203.0.113.77", 200), ("2001:db8:1::5", 200), ("::ffff:203.0.113.9", 200),
                            ("192.0.2.1", 403), ("2001:db9::1", 403), ("::ffff:192.0.2.1", 403)):
        r = await api.login(bob.email, bob.password, headers=xff(address))
        assert r.status == status, address
    refused = await logged(api, "login.ip_refused")
    assert [ip for _, ip, _, _ in refused] == ["192.0.2.1", "2001:db9::1", "192.0.2.1"]
    # Without API blocking, a session made inside the list works from anywhere.
    inside = (await api.login(bob.email, bob.password, headers=xff("203.0.113.8"))).body["token"]
    assert (await api.get("/api/v1/account", who=inside, headers=xff("192.0.2.1"))).status == 200
    # With it, every API call from outside is refused.
    await api.patch("/api/v1/account/security", {"block_untrusted_api": True}, who=token, headers=xff("203.0.113.5"))
    r = await api.get("/api/v1/account", who=inside, headers=xff("192.0.2.1"))
    assert r.status == 403 and r.body["type"].endswith("/ip-not-allowed")
    assert (await api.get("/api/v1/account", who=inside, headers=xff("2001:db8::9"))).status == 200
    # An empty list means no restriction.
    await api.patch("/api/v1/account/security", {"ip_whitelist": []}, who=token, headers=xff("203.0.113.5"))
    assert (await api.login(bob.email, bob.password, headers=xff("192.0.2.1"))).status == 200
    changes = await logged(api, "security.updated")
    assert len(changes) == 3 and json.loads(changes[0][3])["after"]["ip_whitelist"][0]["note"] == "office"


async def test_a_whitelist_that_locks_out_its_admin_is_refused(api):
    token = (await api.login(ADMIN_EMAIL, ADMIN_PASSWORD, headers=xff("198.51.100.20"))).body["token"]
    r = await api.patch("/api/v1/account/security", {"ip_whitelist": [{"cidr": "203.0.113.0/24"}]}, who=token,
                        headers=xff("198.51.100.20"))
    assert r.status == 409 and "198.51.100.20" in r.body["detail"] and r.body["your_address"] == "198.51.100.20"
    assert (await api.get("/api/v1/account/security", who=token, headers=xff("198.51.100.20"))).body["ip_whitelist"] == []
    r = await api.patch("/api/v1/account/security", {"ip_whitelist": [{"cidr": "not-an-ip"}]}, who=token)
    assert r.status == 422 and r.body["errors"][0]["path"] == "ip_whitelist.0.cidr"


@pytest.mark.parametrize("config_overrides", [FAST_HASHING])
async def test_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored(api, admin):
    """Checklist 24: no trusted proxies here, so the header is ignored: the admin is 127.0.0.1."""
    spoof = xff("203.0.113.5")
    r = await api.patch("/api/v1/account/security", {"ip_whitelist": [{"cidr": "203.0.113.0/24"}]}, who=admin,
                        headers=spoof)
    assert r.status == 409 and "127.0.0.1" in r.body["detail"]
    r = await api.patch("/api/v1/account/security", {"ip_whitelist": [{"cidr": "127.0.0.0/8"}]}, who=admin)
    assert r.status == 200
    bob = await api.add_user(admin, "Bob")
    assert (await api.login(bob.email, bob.password, headers=xff("192.0.2.1"))).status == 200
    ok = await logged(api, "login.ok")
    assert ok[-1][1] == "127.0.0.1"  # the audit log records the real peer, not the spoofed header
    r = await api.get("/api/v1/account/security", who=admin, headers=spoof)
    assert r.body["your_address"] == "127.0.0.1"
