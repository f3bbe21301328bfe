"""Every error path answers application/problem+json with one shape, and bad input changes nothing."""

from __future__ import annotations

import io

import pytest

PROBLEM_KEYS = {"type", "title", "status", "instance"}


def assert_problem(r, status):
    assert r.status == status, r.text
    assert r.content_type == "application/problem+json"
    assert PROBLEM_KEYS <= set(r.body) and r.body["status"] == status
    assert r.body["type"].startswith("https://inbox.invalid/problems/")
    assert r.headers.get("X-Content-Type-Options") is None or r.headers["X-Content-Type-Options"] == "nosniff"


async def test_unknown_route_and_method(api, admin):
    assert_problem(await api.get("/api/v1/nothing-here", who=admin), 404)
    r = await api.call("PUT", "/api/v1/users", who=admin, json_body={})
    assert_problem(r, 405)
    assert "GET" in r.headers["Allow"]


@pytest.mark.parametrize("raw", [b"{", b"[1, 2", b"nul", b"\xff\xfe", b'{"email": }'])
async def test_malformed_json_is_422_and_changes_nothing(api, admin, raw):
    before = await api.rows("SELECT count(*) FROM users")
    r = await api.call("POST", "/api/v1/users", who=admin, data=raw, headers={"Content-Type": "application/json"})
    assert_problem(r, 422)
    assert r.body["errors"][0]["path"] == "$"
    assert await api.rows("SELECT count(*) FROM users") == before


@pytest.mark.parametrize("payload,path", [
    ([1, 2, 3], "$"),
    ({"email": 5, "name": "X", "password": "long-enough-1"}, "email"),
    ({"email": "x@example.com", "name": ["X"], "password": "long-enough-1"}, "name"),
    ({"email": "x@example.com", "name": "X", "password": "long-enough-1", "is_admin": 1}, "is_admin"),
    ({"email": "x@example.com", "name": "X", "password": "long-enough-1", "group_ids": ["1"]}, "group_ids.0"),
    ({"email": "not-an-email", "name": "X", "password": "long-enough-1"}, "email"),
    ({"email": "x@example.com", "name": "  ", "password": "long-enough-1"}, "name"),
    ({"email": "x@example.com", "name": "X"}, "password"),
    ({"email": "x@example.com", "name": "X", "password": "long-enough-1", "owner_id": 3}, "owner_id"),
])
async def test_wrong_types_and_unknown_fields_are_422_with_path(api, admin, payload, path):
    r = await api.post("/api/v1/users", payload, who=admin)
    assert_problem(r, 422)
    assert path in [e["path"] for e in r.body["errors"]]
    assert await api.rows("SELECT count(*) FROM users") == [(1,)]


async def test_patch_with_wrong_types_changes_nothing(api, admin):
    bob = await api.add_user(admin, "Bob")
    before = await api.rows("SELECT * FROM users WHERE id = ?", (bob.user_id,))
    for payload in ({"name": 3}, {"is_active": "false"}, {"email": None}, {"group_ids": "1"}, {"name": "Ok", "x": 1}):
        assert_problem(await api.patch(f"/api/v1/users/{bob.user_id}", payload, who=admin), 422)
    assert await api.rows("SELECT * FROM users WHERE id = ?", (bob.user_id,)) == before


async def test_auth_errors(api, admin):
    assert_problem(await api.get("/api/v1/account"), 401)
    assert_problem(await api.get("/api/v1/account", who="not-a-token"), 401)
    bob = await api.add_user(admin, "Bob")
    assert_problem(await api.get("/api/v1/roles", who=bob), 403)
    assert_problem(await api.login("bob@example.com", "nope-nope-nope"), 401)


async def test_conflicts_and_not_found(api, admin):
    assert_problem(await api.patch(f"/api/v1/users/{admin.user_id}", {"is_admin": False}, who=admin), 409)
    assert_problem(await api.get("/api/v1/roles/77", who=admin), 404)


async def test_oversize_body_is_413(api, admin):
    r = await api.call("POST", "/api/v1/roles", who=admin, data=io.BytesIO(b"{" + b" " * (2 * 1024 * 1024) + b"}"),
                       headers={"Content-Type": "application/json"})
    assert_problem(r, 413)
    assert await api.rows("SELECT count(*) FROM roles") == [(0,)]


async def test_success_responses_carry_security_headers(api, admin):
    r = await api.get("/api/v1/account", who=admin)
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("raw_id", ["\u00b2", "\u0661", "\U0001d7cf"])
async def test_non_ascii_digits_in_a_path_id_are_422(api, admin, raw_id):
    """str.isdigit() is true for "²" (and int() refuses it): was a 500. Other scripts' digits are refused too."""
    r = await api.get(f"/api/v1/users/{raw_id}", who=admin)
    assert_problem(r, 422)
    assert r.body["errors"][0]["path"] == "path.id"


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_body_that_is_not_what_its_content_encoding_says_is_400_and_changes_nothing(api, admin, caplog,
                                                                                            encoding):
    """aiohttp decodes the body as it is read; a lie used to surface from the handler as a 500."""
    headers = {"Content-Type": "application/json", "Content-Encoding": encoding, "Connection": "close"}
    r = await api.call("POST", "/api/v1/roles", who=admin, data=b'{"name": "R", "rights": {}}' + b" " * 64,
                       headers=headers)
    assert_problem(r, 400)
    assert "Content-Encoding" in r.body["detail"]
    assert await api.rows("SELECT count(*) FROM roles") == [(0,)]
    assert not [rec for rec in caplog.records if rec.name == "inbox.api"]
