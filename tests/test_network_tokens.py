"""Pure tests of client addresses, session tokens, password policy/hashing and login throttling.

SPEC section 3 (trusted proxies, tokens >= 128 bits stored hashed, idle/absolute expiry, throttling) and
SECURITY-CHECKLIST 1-3 (argon2id parameters, timing parity, password policy). No server is started.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import re
import string

import argon2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auth.network import client_address, in_networks, parse_address
from auth.passwords import Hasher, password_problem
from auth.tokens import csrf_ok, csrf_token, new_token, session_expired, token_hash
from inbox.actions.sessions import throttle_delay

PROPERTY = settings(max_examples=200, deadline=None)

net = ipaddress.ip_network
TRUSTED = [net("10.0.0.0/8"), net("2001:db8:ffff::/48")]


# --------------------------------------------------------------------------------------------------
# client_address
# --------------------------------------------------------------------------------------------------

def test_peer_is_used_when_there_is_no_forwarded_for():
    assert client_address("203.0.113.7", None, TRUSTED) == "203.0.113.7"
    assert client_address("203.0.113.7", "", TRUSTED) == "203.0.113.7"
    # even a trusted proxy is the client when it forwards nothing
    assert client_address("10.0.0.1", None, TRUSTED) == "10.0.0.1"


@pytest.mark.parametrize("xff", ["1.2.3.4", "10.0.0.5", "1.2.3.4, 5.6.7.8", "2001:db8::1"])
def test_forwarded_for_is_ignored_from_an_untrusted_peer(xff):
    # a client talking to us directly cannot choose its address by sending the header
    assert client_address("198.51.100.20", xff, TRUSTED) == "198.51.100.20"
    assert client_address("198.51.100.20", xff, []) == "198.51.100.20"


def test_forwarded_for_is_honoured_from_a_trusted_peer():
    assert client_address("10.0.0.1", "203.0.113.9", TRUSTED) == "203.0.113.9"


def test_forwarded_for_is_read_right_to_left_skipping_trusted_hops():
    # 6.6.6.6 was written by the client itself (spoofed); 203.0.113.9 is what our first proxy saw.
    xff = "6.6.6.6, 203.0.113.9, 10.0.0.2"
    assert client_address("10.0.0.1", xff, TRUSTED) == "203.0.113.9"
    # more trusted hops in the chain are skipped too
    assert client_address("10.0.0.1", "6.6.6.6, 203.0.113.9, 10.1.1.1, 10.0.0.2", TRUSTED) == "203.0.113.9"


def test_spoofed_leftmost_entry_is_never_believed():
    assert client_address("10.0.0.1", "127.0.0.1, 198.51.100.4", TRUSTED) == "198.51.100.4"
    assert client_address("10.0.0.1", "10.9.9.9, 198.51.100.4", TRUSTED) == "198.51.100.4"


def test_all_hops_trusted_gives_the_leftmost_trusted_hop():
    assert client_address("10.0.0.1", "10.0.0.3, 10.0.0.2", TRUSTED) == "10.0.0.3"


def test_empty_entries_in_forwarded_for_are_skipped():
    assert client_address("10.0.0.1", "203.0.113.9, , ", TRUSTED) == "203.0.113.9"
    assert client_address("10.0.0.1", " , ", TRUSTED) == "10.0.0.1"


def test_ipv6_peer_and_hops():
    assert client_address("2001:db8::5", None, TRUSTED) == "2001:db8::5"
    assert client_address("2001:db8::5", "203.0.113.9", TRUSTED) == "2001:db8::5"  # untrusted v6 peer
    assert client_address("2001:db8:ffff::1", "2001:db8::1234", TRUSTED) == "2001:db8::1234"
    assert client_address("2001:db8:ffff::1", "203.0.113.9, 2001:db8:ffff::2", TRUSTED) == "203.0.113.9"
    # addresses are returned in canonical form
    assert client_address("2001:DB8:0:0::5", None, TRUSTED) == "2001:db8::5"
    # a scope id is not part of the address
    assert client_address("fe80::1%eth0", None, TRUSTED) == "fe80::1"


def test_ipv4_mapped_ipv6_becomes_ipv4():
    assert client_address("::ffff:203.0.113.7", None, TRUSTED) == "203.0.113.7"
    # a mapped peer inside a trusted IPv4 network is trusted
    assert client_address("::ffff:10.0.0.1", "203.0.113.9", TRUSTED) == "203.0.113.9"
    # a mapped hop is reported as IPv4
    assert client_address("10.0.0.1", "::ffff:1.2.3.4", TRUSTED) == "1.2.3.4"
    # a mapped hop inside a trusted network is skipped like any trusted hop
    assert client_address("10.0.0.1", "198.51.100.4, ::ffff:10.0.0.2", TRUSTED) == "198.51.100.4"
    assert parse_address("::ffff:1.2.3.4") == ipaddress.IPv4Address("1.2.3.4")


@pytest.mark.parametrize("xff", ["garbage", "1.2.3.4:8080", "[2001:db8::1]:443", "unknown", "300.1.1.1",
                                 "203.0.113.9, not-an-ip", "<script>"])
def test_garbage_hop_is_not_believed_and_not_returned(xff):
    got = client_address("10.0.0.1", xff, TRUSTED)
    # the garbage is the first hop read, so nothing beyond the peer can be trusted
    assert got == "10.0.0.1"


def test_garbage_hop_stops_the_walk_before_untrusted_entries_beyond_it():
    got = client_address("10.0.0.1", "6.6.6.6, junk, 10.0.0.2", TRUSTED)
    assert got not in {"6.6.6.6", "junk"}
    assert ipaddress.ip_address(got) in net("10.0.0.0/8")


def test_garbage_or_missing_peer_never_makes_forwarded_for_believed():
    everyone = [net("0.0.0.0/0"), net("::/0")]
    assert client_address("not-an-address", "1.2.3.4", everyone) != "1.2.3.4"
    assert client_address(None, "1.2.3.4", everyone) != "1.2.3.4"
    assert client_address(None, None, everyone) == ""


@PROPERTY
@given(st.lists(st.one_of(st.ip_addresses().map(str), st.text(max_size=12)), max_size=5))
def test_untrusted_peer_is_always_the_client_whatever_the_header(hops):
    assert client_address("198.51.100.20", ", ".join(hops), TRUSTED) == "198.51.100.20"


@PROPERTY
@given(st.ip_addresses(v=4, network="203.0.113.0/24"), st.ip_addresses(v=4, network="10.0.0.0/8"),
       st.ip_addresses(v=4))
def test_client_behind_a_trusted_chain_is_found(client, hop, spoof):
    xff = f"{spoof}, {client}, {hop}"
    assert client_address("10.0.0.1", xff, TRUSTED) == str(client)


# --------------------------------------------------------------------------------------------------
# in_networks
# --------------------------------------------------------------------------------------------------

A4 = ipaddress.IPv4Address
A6 = ipaddress.IPv6Address


@pytest.mark.parametrize(
    "addr,networks,expected",
    [
        (A4("192.168.1.10"), [net("192.168.1.0/24")], True),
        (A4("192.168.1.0"), [net("192.168.1.0/24")], True),
        (A4("192.168.1.255"), [net("192.168.1.0/24")], True),
        (A4("192.168.2.0"), [net("192.168.1.0/24")], False),
        (A4("203.0.113.7"), [net("203.0.113.7/32")], True),
        (A4("203.0.113.8"), [net("203.0.113.7/32")], False),
        (A6("2001:db8::1"), [net("2001:db8::/32")], True),
        (A6("2001:db9::1"), [net("2001:db8::/32")], False),
        (A6("2001:db8::1"), [net("2001:db8::1/128")], True),
        # mixed versions: never a match, and never an error
        (A4("10.0.0.1"), [net("::/0")], False),
        (A6("::1"), [net("0.0.0.0/0")], False),
        (A4("10.0.0.1"), [net("2001:db8::/32"), net("10.0.0.0/8")], True),
        (A6("2001:db8::1"), [net("10.0.0.0/8"), net("2001:db8::/32")], True),
        (A6("2001:db8::1"), [net("10.0.0.0/8"), net("fd00::/8")], False),
        (A4("10.0.0.1"), [], False),
        (None, [net("0.0.0.0/0"), net("::/0")], False),
    ],
)
def test_in_networks(addr, networks, expected):
    assert in_networks(addr, networks) is expected


def test_in_networks_with_mapped_address_after_parsing():
    assert in_networks(parse_address("::ffff:10.1.2.3"), [net("10.0.0.0/8")]) is True
    assert in_networks(parse_address("nonsense"), [net("0.0.0.0/0")]) is False


def test_in_networks_accepts_a_generator():
    assert in_networks(A4("10.0.0.1"), (n for n in [net("192.168.0.0/16"), net("10.0.0.0/8")])) is True


# --------------------------------------------------------------------------------------------------
# tokens
# --------------------------------------------------------------------------------------------------

def _token_bytes(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


def test_new_token_has_at_least_128_bits():
    token = new_token()
    assert set(token) <= set(string.ascii_letters + string.digits + "-_")
    assert len(token) >= 22  # 22 base64 characters carry 132 bits
    assert len(_token_bytes(token)) >= 16


def test_new_tokens_are_unique_and_every_bit_varies():
    tokens = [new_token() for _ in range(5000)]
    assert len(set(tokens)) == len(tokens)
    raw = [_token_bytes(t) for t in tokens]
    n_bytes = min(len(r) for r in raw)
    assert n_bytes >= 16
    # each of the first 128 bits takes both values across the draws: none is fixed or padded
    ored = [0] * n_bytes
    anded = [0xFF] * n_bytes
    for r in raw:
        for i in range(n_bytes):
            ored[i] |= r[i]
            anded[i] &= r[i]
    assert bytes(ored[:16]) == b"\xff" * 16 and bytes(anded[:16]) == bytes(16)


def test_token_hash_is_sha256_hex_and_hides_the_token():
    token = new_token()
    h = token_hash(token)
    assert re.fullmatch(r"[0-9a-f]{64}", h)
    assert h == hashlib.sha256(token.encode()).hexdigest()
    assert token not in h and token[:8] not in h
    assert token_hash(token) == h  # deterministic, so it can be looked up
    assert token_hash(new_token()) != h


def test_csrf_ok_accepts_the_session_value():
    token = new_token()
    assert csrf_ok(token, csrf_token(token)) is True


def test_csrf_value_does_not_reveal_the_token():
    token = new_token()
    value = csrf_token(token)
    assert value != token and token not in value
    assert value != token_hash(token)  # not the stored hash either


@pytest.mark.parametrize("kind", ["none", "empty", "other_session", "raw_token", "token_hash", "truncated",
                                  "one_char_changed", "extended", "upper"])
def test_csrf_ok_rejects_everything_else(kind):
    token = new_token()
    good = csrf_token(token)
    presented = {
        "none": None,
        "empty": "",
        "other_session": csrf_token(new_token()),
        "raw_token": token,
        "token_hash": token_hash(token),
        "truncated": good[:-1],
        "one_char_changed": good[:-1] + ("0" if good[-1] != "0" else "1"),
        "extended": good + "0",
        "upper": good.upper() if good.upper() != good else good + "X",
    }[kind]
    assert csrf_ok(token, presented) is False


@pytest.mark.parametrize("presented", ["é" * 43, "токен", "\udcff" * 43], ids=["latin1", "cyrillic", "surrogate"])
def test_csrf_ok_rejects_non_ascii_values_instead_of_raising(presented):
    # The header value comes from the client; aiohttp decodes headers as UTF-8 with surrogateescape, so a
    # non-ASCII value is attacker-controlled input. It must be refused (403), not crash the request.
    assert csrf_ok(new_token(), presented) is False


IDLE, ABSOLUTE = 30 * 60.0, 12 * 3600.0


@pytest.mark.parametrize(
    "created,last_seen,now,expected",
    [
        (0.0, 0.0, 0.0, None),
        (0.0, 0.0, IDLE - 1, None),
        (0.0, 0.0, IDLE + 1, "idle"),
        # active recently, but older than the absolute limit
        (0.0, ABSOLUTE - 10, ABSOLUTE + 1, "absolute"),
        # active all along, just inside the absolute limit
        (0.0, ABSOLUTE - 10, ABSOLUTE - 1, None),
        # idle for long AND past the absolute limit: the absolute limit is the reason
        (0.0, 0.0, ABSOLUTE + IDLE, "absolute"),
        # idle measured from the last activity, not from creation
        (0.0, 5 * 3600.0, 5 * 3600.0 + IDLE - 1, None),
        (0.0, 5 * 3600.0, 5 * 3600.0 + IDLE + 1, "idle"),
    ],
)
def test_session_expired(created, last_seen, now, expected):
    assert session_expired(now=now, created_at=created, last_seen_at=last_seen, idle_timeout=IDLE,
                           absolute_timeout=ABSOLUTE) == expected


# --------------------------------------------------------------------------------------------------
# password policy
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("password", ["", "a", "xk7!Lmz", "пароль1", "🦄🐙🌵🍄", "密码很安全"])
def test_password_shorter_than_8_is_refused(password):
    # length is counted in characters, not bytes: 4 emoji are 16 UTF-8 bytes but still too short
    assert isinstance(password_problem(password), str)


@pytest.mark.parametrize(
    "password",
    [
        "xk7!Lmzq",                      # exactly 8
        "correct horse battery staple",
        "x" * 57 + "Q9!" + "y" * 140,    # 200 characters
        "z" * 1024,
        "надёжный-пароль",               # Cyrillic
        "пароль123",                     # Cyrillic + digits, 9 characters
        "🦄🐙🌵🍄🦄🐙🌵🍄",                  # 8 emoji
        "密码很长而且很安全",               # CJK
        "ünïcödé pässwörd",
    ],
)
def test_long_and_non_ascii_passwords_are_accepted(password):
    assert password_problem(password, email="someone@example.com", name="Someone") is None


def test_password_longer_than_the_maximum_is_refused():
    assert isinstance(password_problem("z" * 1025), str)


@pytest.mark.parametrize("password", ["password123", "Password123", "PASSWORD123", "qwertyuiop", "Kommo123",
                                      "P@ssw0rd", "iloveyou"])
def test_common_passwords_are_refused_case_insensitively(password):
    assert isinstance(password_problem(password), str)


@pytest.mark.parametrize(
    "password",
    ["ivan.petrov@example.com", "IVAN.PETROV@EXAMPLE.COM", "ivan.petrov", "Ivan.Petrov", "Margarita Ivanova",
     "margarita ivanova"],
)
def test_password_equal_to_email_local_part_or_name_is_refused(password):
    assert isinstance(password_problem(password, email="ivan.petrov@example.com", name="Margarita Ivanova"), str)


def test_password_merely_similar_to_email_or_name_is_accepted():
    assert password_problem("ivan.petrov-2024!", email="ivan.petrov@example.com", name="Margarita Ivanova") is None
    # an empty email or name does not turn into a rule against everything
    assert password_problem("perfectly-fine-pass", email="", name="") is None


# --------------------------------------------------------------------------------------------------
# password hashing
# --------------------------------------------------------------------------------------------------

ENCODED = re.compile(r"^\$(?P<type>argon2(?:id|i|d))\$v=(?P<v>\d+)\$m=(?P<m>\d+),t=(?P<t>\d+),p=(?P<p>\d+)\$")


@pytest.fixture(scope="module")
def hasher() -> Hasher:
    return Hasher()


async def test_hash_is_argon2id_with_owasp_minimum_parameters(hasher):
    before = hasher.hash_calls
    encoded = await hasher.hash("correct horse battery staple")
    assert hasher.hash_calls == before + 1
    m = ENCODED.match(encoded)
    assert m, encoded
    assert m["type"] == "argon2id"
    assert int(m["m"]) >= 19456
    assert int(m["t"]) >= 2
    assert int(m["p"]) >= 1
    assert "correct horse" not in encoded
    # a salt is used: the same password hashes differently each time
    assert await hasher.hash("correct horse battery staple") != encoded


async def test_verify_right_and_wrong_password(hasher):
    encoded = await hasher.hash("пароль-с-юникодом 🦄")
    assert await hasher.verify(encoded, "пароль-с-юникодом 🦄") is True
    assert await hasher.verify(encoded, "пароль-с-юникодом") is False
    assert await hasher.verify(encoded, "") is False
    assert await hasher.verify("not-a-hash", "anything") is False


class _SpyPH:
    """Wraps an argon2 PasswordHasher and counts real verifications."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.verified: list[str] = []

    def verify(self, encoded, password):
        self.verified.append(encoded)
        return self.inner.verify(encoded, password)

    def __getattr__(self, name):
        return getattr(self.inner, name)


async def test_verify_unknown_user_is_false_but_costs_one_verification():
    h = Hasher()
    spy = _SpyPH(h._ph)
    h._ph = spy
    before = h.verify_calls
    assert await h.verify(None, "whatever-password") is False
    assert h.verify_calls == before + 1
    # the same argon2 work as a real user: one verification against a real argon2id hash
    assert len(spy.verified) == 1 and spy.verified[0].startswith("$argon2id$")
    # even the dummy's own password cannot log in as "nobody"
    assert await h.verify(None, "not a real password, used for timing parity") is False
    assert h.verify_calls == before + 2


async def test_needs_rehash(hasher):
    weak = argon2.PasswordHasher(time_cost=1, memory_cost=8192).hash("old password here")
    assert hasher.needs_rehash(weak) is True
    # the old hash still verifies, so the upgrade can happen at the next login
    assert await hasher.verify(weak, "old password here") is True
    current = await hasher.hash("new password here")
    assert hasher.needs_rehash(current) is False
    assert hasher.needs_rehash("garbage") is True


# --------------------------------------------------------------------------------------------------
# throttle_delay
# --------------------------------------------------------------------------------------------------

LIMIT, MAX_DELAY = 5, 900.0


def _fails(n: int, last: float = 1000.0) -> list[float]:
    return [last - i for i in range(n)]


@pytest.mark.parametrize("n", [0, 1, LIMIT - 1])
def test_no_delay_below_the_limit(n):
    assert throttle_delay(_fails(n), now=1000.0, limit=LIMIT, max_delay=MAX_DELAY) == 0


def test_one_minute_at_the_limit():
    assert throttle_delay(_fails(LIMIT), now=1000.0, limit=LIMIT, max_delay=MAX_DELAY) == 60.0


@pytest.mark.parametrize("extra,expected", [(1, 120.0), (2, 240.0), (3, 480.0), (4, 900.0), (5, 900.0),
                                            (20, 900.0)])
def test_delay_doubles_per_extra_failure_and_is_capped(extra, expected):
    assert throttle_delay(_fails(LIMIT + extra), now=1000.0, limit=LIMIT, max_delay=MAX_DELAY) == expected


def test_delay_is_capped_however_many_failures():
    # many failures in the window (e.g. a burst of concurrent attempts) must still give max_delay,
    # not an exception: 60.0 * 2 ** 1100 does not fit in a float
    assert throttle_delay(_fails(LIMIT + 1100), now=1000.0, limit=LIMIT, max_delay=MAX_DELAY) == MAX_DELAY


def test_delay_is_measured_from_the_most_recent_failure():
    failures = [100.0, 500.0, 300.0, 200.0, 400.0]  # unsorted; most recent is 500
    assert throttle_delay(failures, now=530.0, limit=5, max_delay=MAX_DELAY) == 30.0
    assert throttle_delay(failures, now=560.0, limit=5, max_delay=MAX_DELAY) == 0.0
    assert throttle_delay(failures, now=1000.0, limit=5, max_delay=MAX_DELAY) == 0.0  # never negative


@PROPERTY
@given(st.lists(st.floats(min_value=0, max_value=10_000, allow_nan=False), max_size=40),
       st.floats(min_value=0, max_value=20_000, allow_nan=False), st.integers(min_value=1, max_value=10),
       st.sampled_from([60.0, 300.0, 900.0, 3600.0]))
def test_throttle_delay_matches_reference(failures, now, limit, max_delay):
    if len(failures) < limit:
        expected = 0.0
    else:
        delay = 60.0
        for _ in range(len(failures) - limit):
            delay = min(max_delay, delay * 2)
        delay = min(delay, max_delay)
        expected = max(0.0, max(failures) + delay - now)
    assert throttle_delay(failures, now=now, limit=limit, max_delay=max_delay) == pytest.approx(expected)
