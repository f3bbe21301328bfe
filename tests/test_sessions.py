"""Login, sessions, expiry, password changes, throttling and cookie CSRF (SECURITY-CHECKLIST 1-10, 21)."""

from __future__ import annotations

import ipaddress

import aiohttp
import pytest
from argon2 import PasswordHasher

from conftest import ADMIN_EMAIL, ADMIN_PASSWORD


async def test_login_returns_token_and_account(api):
    r = await api.login(ADMIN_EMAIL, ADMIN_PASSWORD, headers={"User-Agent": "pytest-browser/1.0"})
    assert r.status == 200
    assert len(r.body["token"]) >= 43 and r.body["user"]["email"] == ADMIN_EMAIL
    assert r.body["user"]["effective_rights"]["leads"]["view"] == "A"  # what an admin really holds (docs/rules.md)
    s = await api.get("/api/v1/sessions", who=r.body["token"])
    assert [(x["device"], x["ip"], x["current"]) for x in s.body["items"]] == [("pytest-browser/1.0", "127.0.0.1", True)]


async def test_wrong_password_and_unknown_email_look_the_same_and_cost_the_same(api):
    """SECURITY-CHECKLIST 2: same status, same body, one argon2 verification each."""
    before = api.hasher.verify_calls
    wrong = await api.login(ADMIN_EMAIL, "not-the-password")
    after_wrong = api.hasher.verify_calls
    unknown = await api.login("nobody@example.com", "not-the-password")
    after_unknown = api.hasher.verify_calls
    assert wrong.status == unknown.status == 401
    strip = lambda b: {k: v for k, v in b.items() if k != "instance"}  # noqa: E731
    assert strip(wrong.body) == strip(unknown.body)
    assert after_wrong - before == 1 and after_unknown - after_wrong == 1


async def test_tokens_are_stored_only_as_hashes(api, admin):
    """SECURITY-CHECKLIST 4: neither the database nor its WAL holds the token."""
    raw = b"".join(p.read_bytes() for p in api.db.path.parent.glob("inbox.sqlite3*"))
    assert admin.token.encode() not in raw
    hashes = await api.rows("SELECT token_hash FROM sessions")
    import hashlib
    assert (hashlib.sha256(admin.token.encode()).hexdigest(),) in hashes


async def test_new_login_rotates_the_presented_token(api, admin):
    """SECURITY-CHECKLIST 5."""
    r = await api.login(ADMIN_EMAIL, ADMIN_PASSWORD, who=admin)
    assert r.status == 200 and r.body["token"] != admin.token
    assert (await api.get("/api/v1/account", who=admin)).status == 401
    assert (await api.get("/api/v1/account", who=r.body["token"])).status == 200


async def test_idle_timeout_ends_a_session(api, admin):
    """SECURITY-CHECKLIST 6 (idle)."""
    from inbox.keys import CONFIG
    cfg = api.app[CONFIG]
    api.clock.advance(cfg.session_idle_seconds - 5)
    assert (await api.get("/api/v1/account", who=admin)).status == 200  # activity refreshes last-seen
    api.clock.advance(cfg.session_idle_seconds - 5)
    assert (await api.get("/api/v1/account", who=admin)).status == 200
    api.clock.advance(cfg.session_idle_seconds + 1)
    r = await api.get("/api/v1/account", who=admin)
    assert r.status == 401 and "idle" in r.body["detail"]
    assert await api.rows("SELECT count(*) FROM sessions") == [(0,)]


async def test_absolute_timeout_ends_an_active_session(api, admin):
    """SECURITY-CHECKLIST 6 (absolute): constant activity does not extend it."""
    from inbox.keys import CONFIG
    cfg = api.app[CONFIG]
    step = cfg.session_idle_seconds / 2
    elapsed = 0.0
    while elapsed + step <= cfg.session_absolute_seconds:
        api.clock.advance(step)
        elapsed += step
        assert (await api.get("/api/v1/account", who=admin)).status == 200
    api.clock.advance(step)
    r = await api.get("/api/v1/account", who=admin)
    assert r.status == 401 and "absolute" in r.body["detail"]


async def test_sessions_list_end_one_and_end_others(api, admin):
    """SECURITY-CHECKLIST 9: users list and end only their own sessions."""
    bob = await api.add_user(admin, "Bob")
    bob2 = await api.persona(bob.email, bob.password)
    bob3 = await api.persona(bob.email, bob.password)
    listed = (await api.get("/api/v1/sessions", who=bob)).body["items"]
    assert len(listed) == 3 and {s["user_id"] for s in listed} == {bob.user_id}
    admin_session = (await api.get("/api/v1/sessions", who=admin)).body["items"][0]["id"]
    # Bob cannot end Ada's session: it does not exist for him.
    assert (await api.delete(f"/api/v1/sessions/{admin_session}", who=bob)).status == 404
    assert (await api.get("/api/v1/account", who=admin)).status == 200
    bob2_id = next(s["id"] for s in listed if not s["current"] and s["id"] != listed[-1]["id"])
    assert (await api.delete(f"/api/v1/sessions/{bob2_id}", who=bob)).status == 204
    assert (await api.get("/api/v1/account", who=bob2)).status == 401
    r = await api.delete("/api/v1/sessions", who=bob)
    assert r.status == 200 and len(r.body["ended"]) == 1
    assert (await api.get("/api/v1/account", who=bob3)).status == 401
    assert (await api.get("/api/v1/account", who=bob)).status == 200


async def test_admin_lists_and_ends_any_users_sessions(api, admin):
    bob = await api.add_user(admin, "Bob")
    r = await api.get(f"/api/v1/users/{bob.user_id}/sessions", who=admin)
    assert r.status == 200 and len(r.body["items"]) == 1
    sid = r.body["items"][0]["id"]
    assert (await api.get(f"/api/v1/users/{bob.user_id}/sessions", who=bob)).status == 403
    assert (await api.delete(f"/api/v1/sessions/{sid}", who=admin)).status == 204
    assert (await api.get("/api/v1/account", who=bob)).status == 401
    bob = await api.persona(bob.email, bob.password)
    r = await api.delete(f"/api/v1/users/{bob.user_id}/sessions", who=admin)
    assert r.status == 200 and len(r.body["ended"]) == 1
    assert (await api.get("/api/v1/account", who=bob)).status == 401
    assert (await api.delete(f"/api/v1/users/{admin.user_id}/sessions", who=bob)).status == 401


async def test_logout_ends_only_this_session(api, admin):
    other = await api.persona(ADMIN_EMAIL, ADMIN_PASSWORD)
    assert (await api.post("/api/v1/auth/logout", who=admin)).status == 204
    assert (await api.get("/api/v1/account", who=admin)).status == 401
    assert (await api.get("/api/v1/account", who=other)).status == 200
    types = [t for (t,) in await api.rows("SELECT type FROM activity")]
    assert "logout" in types and types.count("login.ok") == 2


async def test_password_change_needs_current_password_and_rotates(api, admin):
    """SECURITY-CHECKLIST 3 and 7."""
    bob = await api.add_user(admin, "Bob")
    other = await api.persona(bob.email, bob.password)
    r = await api.post("/api/v1/account/password", {"current_password": "wrong-one-here", "new_password": "a-new-pass-99"},
                       who=bob)
    assert r.status == 403
    assert (await api.login(bob.email, "a-new-pass-99")).status == 401
    r = await api.post("/api/v1/account/password", {"current_password": bob.password, "new_password": "password123"},
                       who=bob)
    assert r.status == 422 and "common" in r.body["detail"]
    r = await api.post("/api/v1/account/password", {"current_password": bob.password, "new_password": "a-new-pass-99"},
                       who=bob)
    assert r.status == 200
    new_token = r.body["token"]
    for old in (bob, other):
        assert (await api.get("/api/v1/account", who=old)).status == 401
    assert (await api.get("/api/v1/account", who=new_token)).status == 200
    assert (await api.login(bob.email, bob.password)).status == 401
    assert (await api.login(bob.email, "a-new-pass-99")).status == 200


@pytest.mark.parametrize("password,ok", [
    ("short7!", False), ("exactly8", True), ("пароль-надёжный", True), ("🔑🔑🔑🔑🔑🔑🔑🔑", True),
    ("x" * 200, True), ("Password123", False), ("qwerty123", False),
])
async def test_password_policy_on_create(api, admin, password, ok):
    r = await api.post("/api/v1/users", {"email": "p@example.com", "name": "P", "password": password}, who=admin)
    assert r.status == (201 if ok else 422), r.body
    if ok:
        assert (await api.login("p@example.com", password)).status == 200


async def test_password_hash_is_argon2id_and_old_parameters_are_upgraded(api, admin):
    """SECURITY-CHECKLIST 1."""
    bob = await api.add_user(admin, "Bob")
    (encoded,) = (await api.rows("SELECT password_hash FROM users WHERE id = ?", (bob.user_id,)))[0]
    params = dict(kv.split("=") for kv in encoded.split("$")[3].split(","))
    assert encoded.startswith("$argon2id$") and int(params["m"]) >= 19 * 1024 and int(params["t"]) >= 2
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(bob.password)
    await api.db.write(lambda tx: tx.execute("UPDATE users SET password_hash = ? WHERE id = ?", (weak, bob.user_id)))
    assert (await api.login(bob.email, bob.password)).status == 200
    (upgraded,) = (await api.rows("SELECT password_hash FROM users WHERE id = ?", (bob.user_id,)))[0]
    assert upgraded != weak and "m=19456,t=2" in upgraded


async def test_admin_password_reset_ends_sessions(api, admin):
    bob = await api.add_user(admin, "Bob")
    r = await api.post(f"/api/v1/users/{bob.user_id}/password", {"new_password": "reset-by-admin-1"}, who=admin)
    assert r.status == 204
    assert (await api.get("/api/v1/account", who=bob)).status == 401
    assert (await api.login(bob.email, "reset-by-admin-1")).status == 200
    assert (await api.post(f"/api/v1/users/{bob.user_id}/password", {"new_password": "x"}, who=admin)).status == 422
    assert (await api.post(f"/api/v1/users/{admin.user_id}/password", {"new_password": "reset-by-bob-1"},
                           who=bob)).status in (401, 403)


@pytest.fixture
def config_overrides():
    # The loopback peer is a trusted proxy here, so tests can speak from many client addresses.
    return {"trusted_proxies": (ipaddress.ip_network("127.0.0.0/8"),)}


async def test_account_throttle_counts_failures_from_every_address(api, admin):
    """SECURITY-CHECKLIST 10: five failures from five addresses lock the account, whatever the source."""
    bob = await api.add_user(admin, "Bob")
    for i in range(5):
        r = await api.login(bob.email, "wrong-password", headers={"X-Forwarded-For": f"203.0.113.{i}"})
        assert r.status == 401
    r = await api.login(bob.email, bob.password, headers={"X-Forwarded-For": "198.51.100.7"})
    assert r.status == 429 and int(r.headers["Retry-After"]) == 60
    # Other accounts are not affected by Bob's lock.
    assert (await api.login(ADMIN_EMAIL, ADMIN_PASSWORD, headers={"X-Forwarded-For": "203.0.113.1"})).status == 200
    # The delay grows with further failures, and ends: once it passes, the right password works.
    api.clock.advance(61)
    assert (await api.login(bob.email, "wrong-again", headers={"X-Forwarded-For": "203.0.113.9"})).status == 401
    r = await api.login(bob.email, bob.password)
    assert r.status == 429 and int(r.headers["Retry-After"]) == 120
    api.clock.advance(121)
    assert (await api.login(bob.email, bob.password)).status == 200
    types = [t for (t,) in await api.rows("SELECT type FROM activity WHERE type LIKE 'login.%'")]
    assert types.count("login.failed") == 6 and types.count("login.throttled") == 2


async def test_locked_account_recovers_through_admin_reset(api, admin):
    bob = await api.add_user(admin, "Bob")
    for _ in range(6):
        await api.login(bob.email, "wrong-password")
    assert (await api.login(bob.email, bob.password)).status == 429
    await api.post(f"/api/v1/users/{bob.user_id}/password", {"new_password": "fresh-start-22"}, who=admin)
    assert (await api.login(bob.email, "fresh-start-22")).status == 200


async def test_address_throttle_spans_accounts(api, admin):
    from inbox.keys import CONFIG
    limit = api.app[CONFIG].login_ip_limit
    for i in range(limit):
        await api.login(f"guess{i}@example.com", "wrong-password", headers={"X-Forwarded-For": "192.0.2.50"})
    r = await api.login(ADMIN_EMAIL, ADMIN_PASSWORD, headers={"X-Forwarded-For": "192.0.2.50"})
    assert r.status == 429
    assert (await api.login(ADMIN_EMAIL, ADMIN_PASSWORD, headers={"X-Forwarded-For": "192.0.2.51"})).status == 200


async def test_spoofed_forwarded_for_from_untrusted_peer_is_ignored(aiohttp_client, tmp_path, clock):
    """SECURITY-CHECKLIST 24: without trusted proxies, X-Forwarded-For changes nothing."""
    from conftest import make_config

    from inbox.app import create_app
    from inbox.keys import CONFIG, DB, HASHER
    from inbox.workspace import init_workspace

    app = create_app(make_config(tmp_path, clock))
    client = await aiohttp_client(app, cookie_jar=aiohttp.DummyCookieJar())
    await init_workspace(app[DB], app[HASHER], app[CONFIG], name="W", email=ADMIN_EMAIL, admin_name="Ada",
                         password=ADMIN_PASSWORD)
    for i in range(5):
        await client.post("/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": "nope-nope"},
                          headers={"X-Forwarded-For": f"10.9.9.{i}"})
    ips = {r[0] for r in await app[DB].fetchall("SELECT ip FROM activity WHERE type = 'login.failed'")}
    assert ips == {"127.0.0.1"}


# --- cookie auth and CSRF (SECURITY-CHECKLIST 21) ---

async def _cookie_session(api) -> tuple[aiohttp.ClientSession, str]:
    session = aiohttp.ClientSession(base_url=str(api.client.make_url("/")), cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with session.post("/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}) as r:
        assert r.status == 200
        csrf = (await r.json())["csrf_token"]
    return session, csrf


async def test_cookie_session_reads_without_csrf_but_writes_need_it(api, admin):
    session, csrf = await _cookie_session(api)
    async with session:
        async with session.get("/api/v1/account") as r:
            assert r.status == 200
        async with session.patch("/api/v1/account", json={"name": "Ada L."}) as r:
            assert r.status == 403 and "X-CSRF-Token" in (await r.json())["detail"]
        async with session.patch("/api/v1/account", json={"name": "Ada L."}, headers={"X-CSRF-Token": "0" * 43}) as r:
            assert r.status == 403
        assert await api.rows("SELECT name FROM users WHERE id = ?", (admin.user_id,)) == [("Ada",)]
        async with session.patch("/api/v1/account", json={"name": "Ada L."}, headers={"X-CSRF-Token": csrf}) as r:
            assert r.status == 200


async def test_cookie_writes_from_other_sites_are_refused(api, admin):
    session, csrf = await _cookie_session(api)
    async with session:
        for headers in ({"Sec-Fetch-Site": "cross-site"}, {"Origin": "https://evil.example"}):
            async with session.patch("/api/v1/account", json={"name": "Pwned"},
                                     headers={"X-CSRF-Token": csrf, **headers}) as r:
                assert r.status == 403
        assert await api.rows("SELECT name FROM users WHERE id = ?", (admin.user_id,)) == [("Ada",)]
        same_origin = str(api.client.make_url("/")).rstrip("/")
        async with session.patch("/api/v1/account", json={"name": "Ada L."},
                                 headers={"X-CSRF-Token": csrf, "Origin": same_origin,
                                          "Sec-Fetch-Site": "same-origin"}) as r:
            assert r.status == 200


async def test_login_from_another_site_is_refused(api):
    r = await api.login(ADMIN_EMAIL, ADMIN_PASSWORD, headers={"Origin": "https://evil.example"})
    assert r.status == 403


async def test_get_requests_never_change_state(api, admin):
    before = await api.rows("SELECT count(*) FROM activity")
    for path in ("/api/v1/account", "/api/v1/users", "/api/v1/sessions", "/api/v1/groups", "/api/v1/roles"):
        assert (await api.get(path, who=admin)).status == 200
    assert await api.rows("SELECT count(*) FROM activity") == before


async def test_malformed_authorization_headers_are_401(api, admin):
    for value in ("Basic abc", "Bearer", "Bearer    ", "token abc", f"Bearer {admin.token}x"):
        r = await api.get("/api/v1/account", headers={"Authorization": value})
        assert r.status == 401, value


async def test_non_ascii_credentials_are_refused_not_crashed(api, admin):
    r = await api.get("/api/v1/account", headers={"Authorization": "Bearer \u00e9t\u00e9"})
    assert r.status == 401
    session, csrf = await _cookie_session(api)
    async with session:
        async with session.patch("/api/v1/account", json={"name": "X"}, headers={"X-CSRF-Token": "\u00e9" * 43}) as r:
            assert r.status == 403
