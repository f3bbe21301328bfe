"""Issue 13, points 1-4, 7, 13 and 16: every door passes the same gates, and every count that limits
is decided and counted in one step, so parallel requests cannot outrun it.

The concurrency tests send 200 requests at once over a connector without a connection limit, and
assert how many attempts were really checked (the failures logged and the hasher's calls), not only
the statuses.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import json
from collections import Counter
from typing import Any

import aiohttp
import pyotp
import pytest
import websockets

from conftest import ADMIN_EMAIL, FAST_HASHING
from test_security import enrol, xff

PROXY = {"trusted_proxies": (ipaddress.ip_network("127.0.0.0/8"),), **FAST_HASHING}
OFFICE, OUTSIDE = "203.0.113.5", "192.0.2.9"
IN_FLIGHT = 200


@pytest.fixture
def config_overrides() -> dict:
    # The test client is a trusted proxy, so X-Forwarded-For picks the client address per request.
    return PROXY


async def parallel(api, requests: list[tuple[str, str, Any, dict]]) -> list[tuple[int, dict]]:
    """Send every (method, path, body, headers) at once, each on its own connection. A body of bytes
    is sent as it is (a signed webhook), anything else as JSON (None: no body)."""
    base = str(api.client.make_url("/"))
    async with aiohttp.ClientSession(base_url=base, connector=aiohttp.TCPConnector(limit=0),
                                     cookie_jar=aiohttp.DummyCookieJar()) as session:
        async def one(method, path, body, headers):
            sent = {"data": body} if isinstance(body, bytes) else {"json": body}
            async with session.request(method, path, headers=headers, **sent) as resp:
                return resp.status, await resp.json(content_type=None)

        return await asyncio.gather(*(one(*r) for r in requests))


def wrong_codes(secret: str, now: float, n: int) -> list[str]:
    """``n`` distinct codes, none of them valid in the window around ``now``."""
    totp = pyotp.TOTP(secret)
    valid = {totp.at(now + d) for d in (-30, 0, 30)}
    return [c for c in (f"{i:06d}" for i in range(n + 3)) if c not in valid][:n]


async def logged(api, type_: str) -> int:
    return (await api.rows("SELECT count(*) FROM activity WHERE type = ?", (type_,)))[0][0]


def ws_url(api) -> str:
    return str(api.client.make_url("/api/v1/ws")).replace("http://", "ws://")


async def ws_outcome(api, token: str, address: str = OFFICE) -> tuple[str, int | None, str]:
    """Open a socket, authenticate, resume from event 0: ("ready", None, "") or ("closed", code, reason).
    A refused socket must get no frame at all before its close: no ready, no replayed event."""
    async with websockets.connect(ws_url(api), additional_headers=xff(address)) as ws:
        await ws.send(json.dumps({"type": "auth", "token": token, "last_event_id": 0}))
        try:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 3))
        except websockets.ConnectionClosed as closed:
            return "closed", closed.rcvd.code, closed.rcvd.reason
        assert frame["type"] == "ready", frame
        return "ready", None, ""


# --- point 1: one set of gates, REST and websocket alike ---

GATES = ["open", "two-factor-required", "ip-not-allowed", "disabled", "logged-out", "expired"]


@pytest.mark.parametrize("gate", GATES)
async def test_each_gate_applies_to_rest_and_websocket_alike(api, admin, gate):
    bob = await api.add_user(admin, "Bob")
    await api.post("/api/v1/contacts", {"name": "Something to replay"}, who=admin)
    _, _, admin_token = await enrol(api, admin)
    address = OFFICE
    if gate == "two-factor-required":
        r = await api.patch("/api/v1/account/security", {"require_2fa": True}, who=admin_token)
        assert r.status == 200
    elif gate == "ip-not-allowed":
        r = await api.patch("/api/v1/account/security", {"ip_whitelist": [{"cidr": "203.0.113.0/24"}],
                                                         "block_untrusted_api": True},
                            who=admin_token, headers=xff(OFFICE))
        assert r.status == 200
        address = OUTSIDE
    elif gate == "disabled":
        assert (await api.patch(f"/api/v1/users/{bob.user_id}", {"is_active": False}, who=admin_token)).status == 200
    elif gate == "logged-out":
        assert (await api.post("/api/v1/auth/logout", who=bob)).status == 204
    elif gate == "expired":
        api.clock.advance(13 * 3600)  # past the 12 h idle limit

    rest = await api.get("/api/v1/contacts", who=bob, headers=xff(address))
    ws = await ws_outcome(api, bob.token, address)
    expected = {
        "open": (200, None, ("ready", None, "")),
        "two-factor-required": (403, "two-factor-required", ("closed", 4003, "two-factor-required")),
        "ip-not-allowed": (403, "ip-not-allowed", ("closed", 4003, "ip-not-allowed")),
        "disabled": (401, "unauthorized", ("closed", 4001, None)),
        "logged-out": (401, "unauthorized", ("closed", 4001, None)),
        "expired": (401, "unauthorized", ("closed", 4001, None)),
    }[gate]
    assert rest.status == expected[0], rest.body
    if expected[1]:
        assert rest.body["type"].endswith("/" + expected[1])
    assert ws[:2] == expected[2][:2], ws
    if expected[2][2] is not None:
        assert ws[2] == expected[2][2]


async def test_requiring_2fa_closes_the_open_sockets_of_users_without_it(api, admin):
    bob = await api.add_user(admin, "Bob")
    carol = await api.add_user(admin, "Carol", rights={"contacts": {"add": "A", "view": "A"}})
    _, _, admin_token = await enrol(api, admin)
    _, _, carol_token = await enrol(api, carol)
    sockets = {}
    for name, token in (("bob", bob.token), ("carol", carol_token)):
        ws = await websockets.connect(ws_url(api))
        await ws.send(json.dumps({"type": "auth", "token": token}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 3))["type"] == "ready"
        sockets[name] = ws
    try:
        assert (await api.patch("/api/v1/account/security", {"require_2fa": True}, who=admin_token)).status == 200
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(sockets["bob"].recv(), 3)
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4003, "two-factor-required")
        # Carol has a second factor: her socket stays and keeps receiving.
        await api.post("/api/v1/contacts", {"name": "Zed"}, who=admin_token)
        while (frame := json.loads(await asyncio.wait_for(sockets["carol"].recv(), 3))).get("event") != \
                "contact.created":
            pass
        assert frame["data"]["contact"]["name"] == "Zed"
    finally:
        for ws in sockets.values():
            await ws.close()


async def test_sockets_opening_while_2fa_becomes_required_are_all_closed(api, admin):
    """A socket whose handshake read the policy before a change, and that the hub had not yet seen
    when it applied the change, must still be refused: every socket ends with 4003 and the gate's
    name, whether it was refused at the handshake, when it joined the hub, or once open."""
    bob = await api.add_user(admin, "Bob", rights={"contacts": {"add": "A", "view": "A"}})
    await api.post("/api/v1/contacts", {"name": "Replayed"}, who=admin)
    _, _, admin_token = await enrol(api, admin)

    async def socket() -> tuple[int, str]:
        async with websockets.connect(ws_url(api)) as ws:
            await ws.send(json.dumps({"type": "auth", "token": bob.token, "last_event_id": 0}))
            try:
                while True:
                    await asyncio.wait_for(ws.recv(), 5)
            except websockets.ConnectionClosed as closed:
                return closed.rcvd.code, closed.rcvd.reason

    sockets = [asyncio.create_task(socket()) for _ in range(60)]
    await asyncio.sleep(0.05)
    r = await api.patch("/api/v1/account/security", {"require_2fa": True}, who=admin_token)
    assert r.status == 200
    assert Counter(await asyncio.gather(*sockets)) == {(4003, "two-factor-required"): 60}


# --- points 2 and 3: one throttle of second-factor checks per user, counted atomically ---

async def test_parallel_code_guesses_at_sign_in_check_at_most_the_limit(api, admin):
    bob = await api.add_user(admin, "Bob")
    secret, _, _ = await enrol(api, bob)
    r = await api.login(bob.email, bob.password)
    challenge = r.body["challenge"]
    codes = wrong_codes(secret, api.clock.now, IN_FLIGHT)
    replies = await parallel(api, [("POST", "/api/v1/auth/2fa", {"challenge": challenge, "code": c}, {})
                                   for c in codes])
    statuses = Counter(s for s, _ in replies)
    assert statuses == {401: 5, 429: IN_FLIGHT - 5}, statuses
    assert await logged(api, "login.2fa_failed") == 5
    assert await logged(api, "login.2fa_throttled") == 1  # once per lock, not once per refusal
    # Even the right code now waits (checklist 13).
    r = await api.post("/api/v1/auth/2fa", {"challenge": challenge, "code": pyotp.TOTP(secret).at(api.clock.now)})
    assert r.status == 429 and int(r.headers["Retry-After"]) > 0


@pytest.mark.parametrize("path", ["/api/v1/auth/2fa/disable", "/api/v1/auth/2fa/recovery_codes"])
async def test_code_checks_inside_a_session_share_the_throttle(api, admin, path):
    bob = await api.add_user(admin, "Bob")
    secret, codes, token = await enrol(api, bob)
    api.clock.advance(30)
    guesses = wrong_codes(secret, api.clock.now, IN_FLIGHT)
    auth = {"Authorization": f"Bearer {token}"}
    replies = await parallel(api, [("POST", path, {"code": c}, auth) for c in guesses])
    statuses = Counter(s for s, _ in replies)
    assert statuses == {403: 5, 429: IN_FLIGHT - 5}, statuses
    failed = "2fa.disable_failed" if path.endswith("disable") else "2fa.recovery_codes_failed"
    assert await logged(api, failed) == 5
    # The right code does not slip through while throttled, and 2FA is still on.
    r = await api.post(path, {"code": pyotp.TOTP(secret).at(api.clock.now)}, who=token)
    assert r.status == 429
    assert (await api.get("/api/v1/auth/2fa", who=token)).body["enabled"] is True
    # One budget per user: the sign-in step is throttled too, recovery codes included.
    challenge = (await api.login(bob.email, bob.password)).body["challenge"]
    r = await api.post("/api/v1/auth/2fa", {"challenge": challenge, "recovery_code": codes[0]})
    assert r.status == 429
    # Once the back-off has passed, the right code works.
    api.clock.advance(61)
    r = await api.post(path, {"code": pyotp.TOTP(secret).at(api.clock.now)}, who=token)
    assert r.status == 200, r.body


async def test_wrong_confirmation_codes_count_against_the_same_budget(api, admin):
    bob = await api.add_user(admin, "Bob")
    r = await api.post("/api/v1/auth/2fa/enrol", who=bob)
    secret = r.body["secret"]
    replies = await parallel(api, [("POST", "/api/v1/auth/2fa/confirm", {"code": c},
                                    {"Authorization": f"Bearer {bob.token}"})
                                   for c in wrong_codes(secret, api.clock.now, 50)])
    assert Counter(s for s, _ in replies) == {422: 5, 429: 45}
    r = await api.post("/api/v1/auth/2fa/confirm", {"code": pyotp.TOTP(secret).at(api.clock.now)}, who=bob)
    assert r.status == 429


# --- point 4: parallel logins against the account throttle ---

async def test_parallel_wrong_passwords_check_at_most_the_limit(api, admin):
    bob = await api.add_user(admin, "Bob")
    hasher = api.hasher
    before = hasher.verify_calls
    # From many addresses: the account limit holds whatever the source (checklist 10).
    replies = await parallel(api, [("POST", "/api/v1/auth/login",
                                    {"email": bob.email, "password": f"wrong-guess-{i}"},
                                    xff(f"198.51.{i // 250}.{i % 250}")) for i in range(IN_FLIGHT)])
    statuses = Counter(s for s, _ in replies)
    assert statuses == {401: 5, 429: IN_FLIGHT - 5}, statuses
    assert hasher.verify_calls - before == 5
    assert await logged(api, "login.failed") == 5
    # Refusals are logged once per lock: a flood of refused attempts does not grow the log.
    assert await logged(api, "login.throttled") == 1
    assert (await api.login(bob.email, bob.password)).status == 429
    api.clock.advance(61)
    assert (await api.login(bob.email, bob.password)).status == 200


async def test_parallel_right_passwords_all_sign_in(api, admin):
    """The reservation a right password takes is given back: a burst of real logins is not throttled."""
    bob = await api.add_user(admin, "Bob")
    replies = await parallel(api, [("POST", "/api/v1/auth/login", {"email": bob.email, "password": bob.password},
                                    xff(f"198.51.100.{i}")) for i in range(4)])
    assert [s for s, _ in replies] == [200] * 4
    assert (await api.rows("SELECT count(*) FROM login_failures"))[0][0] == 0


# --- point 7: signed media links pass the network gate ---

async def test_signed_links_obey_ip_blocking(api, admin):
    r = await api.call("POST", "/api/v1/media?name=note.txt", data=b"hello", who=admin)
    assert r.status == 201, r.body
    mid = r.body["id"]
    link = (await api.post(f"/api/v1/media/{mid}/link", who=admin, headers=xff(OFFICE))).body["url"]
    assert (await api.get(link, headers=xff(OUTSIDE))).status == 200  # no whitelist yet
    r = await api.patch("/api/v1/account/security", {"ip_whitelist": [{"cidr": "203.0.113.0/24"}],
                                                     "block_untrusted_api": True}, who=admin, headers=xff(OFFICE))
    assert r.status == 200
    r = await api.get(link, headers=xff(OUTSIDE))
    assert r.status == 403 and r.body["type"].endswith("/ip-not-allowed")
    r = await api.get(link, headers=xff(OFFICE))
    assert r.status == 200 and r.text == "hello"


async def test_signed_links_obey_required_2fa(api, admin):
    bob = await api.add_user(admin, "Bob", rights={"files_access": True})
    r = await api.call("POST", "/api/v1/media?name=note.txt", data=b"hello", who=bob)
    assert r.status == 201, r.body
    link = (await api.post(f"/api/v1/media/{r.body['id']}/link", who=bob)).body["url"]
    assert (await api.get(link)).status == 200
    _, _, admin_token = await enrol(api, admin)
    assert (await api.patch("/api/v1/account/security", {"require_2fa": True}, who=admin_token)).status == 200
    r = await api.get(link)
    assert r.status == 403 and r.body["type"].endswith("/two-factor-required")


# --- point 13: the second sign-in step is gated by the whitelist too ---

async def test_second_step_from_outside_the_whitelist_is_refused(api, admin):
    secret, _, token = await enrol(api, admin)
    r = await api.patch("/api/v1/account/security", {"ip_whitelist": [{"cidr": "203.0.113.0/24"}]},
                        who=token, headers=xff(OFFICE))
    assert r.status == 200
    challenge = (await api.login(ADMIN_EMAIL, admin.password, headers=xff(OFFICE))).body["challenge"]
    sessions = (await api.rows("SELECT count(*) FROM sessions"))[0][0]
    api.clock.advance(30)
    code = pyotp.TOTP(secret).at(api.clock.now)
    r = await api.post("/api/v1/auth/2fa", {"challenge": challenge, "code": code}, headers=xff(OUTSIDE))
    assert r.status == 403 and r.body["type"].endswith("/ip-not-allowed") and "token" not in r.body
    assert (await api.rows("SELECT count(*) FROM sessions"))[0][0] == sessions
    r = await api.post("/api/v1/auth/2fa", {"challenge": challenge, "code": code}, headers=xff(OFFICE))
    assert r.status == 200 and r.body["token"]


# --- point 16: a password typed as the email is never logged ---

async def test_a_failed_login_logs_the_identifier_only_when_it_names_an_account(api, admin):
    typed = "correct-horse-battery-staple"
    assert (await api.login(typed, "anything-at-all")).status == 401
    assert (await api.login(ADMIN_EMAIL, "wrong-password")).status == 401
    rows = [json.loads(d) for (d,) in await api.rows(
        "SELECT data FROM activity WHERE type = 'login.failed' ORDER BY id")]
    assert typed not in json.dumps(rows)
    assert set(rows[0]) == {"email_digest", "reason"} and len(rows[0]["email_digest"]) == 16
    # Keyed with a server secret: a reader of the log cannot test guesses with a plain hash.
    assert rows[0]["email_digest"] not in hashlib.sha256(typed.encode()).hexdigest()
    assert rows[1] == {"email": ADMIN_EMAIL, "reason": "bad credentials"}
    # Nor anywhere else in the database, the activity chain included.
    assert not await api.rows("SELECT id FROM activity WHERE data LIKE ?", (f"%{typed}%",))


# --- the same class: a password check inside a session spends the login budget ---

async def test_parallel_wrong_current_passwords_check_at_most_the_limit(api, admin):
    bob = await api.add_user(admin, "Bob")
    before = api.hasher.verify_calls
    auth = {"Authorization": f"Bearer {bob.token}"}
    replies = await parallel(api, [("POST", "/api/v1/account/password",
                                    {"current_password": f"guess-{i}", "new_password": "brand-new-pass-1"}, auth)
                                   for i in range(IN_FLIGHT)])
    assert Counter(s for s, _ in replies) == {403: 5, 429: IN_FLIGHT - 5}
    assert api.hasher.verify_calls - before == 5
    assert await logged(api, "user.password_change_failed") == 5
    # The account's sign-in shares the budget: even the right password waits now.
    assert (await api.login(bob.email, bob.password)).status == 429
    api.clock.advance(61)
    r = await api.post("/api/v1/account/password", {"current_password": bob.password,
                                                   "new_password": "brand-new-pass-1"}, who=bob)
    assert r.status == 200, r.body
    assert (await api.login(bob.email, "brand-new-pass-1")).status == 200
