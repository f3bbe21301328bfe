"""The activity log: what is logged, who reads it, its filters and paging, and `inbox audit verify`
(SPEC 3, SECURITY-CHECKLIST 30). Everything runs against the real server; the test client is a trusted
proxy, so each persona acts from its own address and the log must name that address."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import sqlite3
import sys
from datetime import UTC, datetime, timedelta, timezone

import pyotp
import pytest

from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, FAST_HASHING, START, Persona

from inbox.api.common import iso
from inbox.keys import CONFIG
from inbox.store import activity

ADA_IP, BOB_IP, CAROL_IP, STRANGER_IP = "203.0.113.10", "198.51.100.20", "2001:db8::30", "192.0.2.99"
BOB_PASSWORD, BOB_NEW_PASSWORD = "bob-first-secret-1", "bob-second-secret-2"
WRONG_PASSWORD = "not-adas-password-at-all"
RIGHTS = {"leads": {"add": "A", "view": "G", "edit": "M", "delete": "D", "export": "G"},
          "tasks": {"edit": "M", "delete": "D"}}


@pytest.fixture
def config_overrides() -> dict:
    return {"trusted_proxies": (ipaddress.ip_network("127.0.0.0/8"),), **FAST_HASHING}


def xff(address: str) -> dict:
    return {"X-Forwarded-For": address}


async def sign_in(api, email: str, password: str, ip: str) -> Persona:
    r = await api.login(email, password, headers=xff(ip))
    assert r.status == 200, r.body
    return Persona(email, password, r.body["user"]["id"], r.body["token"], r.body["user"]["name"])


async def walk(api, who, limit: int = 250, **params) -> list[dict]:
    """Every entry that matches, following next_cursor to the end."""
    r = await api.get("/api/v1/activity", who=who, params={**params, "limit": str(limit)})
    assert r.status == 200, r.body
    items, cursor = r.body["items"], r.body["next_cursor"]
    while cursor is not None:
        r = await api.get("/api/v1/activity", who=who, params={**params, "limit": str(limit), "cursor": str(cursor)})
        assert r.status == 200 and "total" not in r.body, r.body
        items += r.body["items"]
        cursor = r.body["next_cursor"]
    return items


def one(items: list[dict], type_: str, **expect) -> dict:
    """The single entry of ``type_`` whose fields equal ``expect``."""
    found = [i for i in items if i["type"] == type_ and all(i[k] == v for k, v in expect.items())]
    assert len(found) == 1, (type_, expect, [(i["type"], i["actor_id"], i["ip"], i["object_id"]) for i in items])
    return found[0]


# --- what is logged (issue 4), with actor and address, and never a secret ---

async def test_security_and_record_events_are_logged_with_actor_and_address(api):
    secrets: set[str] = {ADMIN_PASSWORD, BOB_PASSWORD, BOB_NEW_PASSWORD, WRONG_PASSWORD}
    ada = await sign_in(api, ADMIN_EMAIL, ADMIN_PASSWORD, ADA_IP)
    secrets.add(ada.token)
    a = {"who": ada, "headers": xff(ADA_IP)}

    # Failed logins: a wrong password for a real account, and an unknown account.
    assert (await api.login(ADMIN_EMAIL, WRONG_PASSWORD, headers=xff(STRANGER_IP))).status == 401
    assert (await api.login("nobody@example.com", WRONG_PASSWORD, headers=xff(STRANGER_IP))).status == 401

    r = await api.post("/api/v1/users", {"email": "bob@example.com", "name": "Bob", "password": BOB_PASSWORD}, **a)
    assert r.status == 201
    bob_id = r.body["id"]
    bob = await sign_in(api, "bob@example.com", BOB_PASSWORD, BOB_IP)
    secrets.add(bob.token)

    assert (await api.patch(f"/api/v1/users/{bob_id}", {"name": "Robert"}, **a)).status == 200
    r = await api.post("/api/v1/roles", {"name": "Sales", "rights": RIGHTS}, **a)
    assert r.status == 201
    role_id = r.body["id"]
    assert (await api.patch(f"/api/v1/roles/{role_id}", {"rights": {**RIGHTS, "mail_access": True}}, **a)).status == 200
    assert (await api.patch(f"/api/v1/users/{bob_id}", {"role_id": role_id}, **a)).status == 200
    assert (await api.patch(f"/api/v1/users/{bob_id}", {"rights": RIGHTS}, **a)).status == 200
    r = await api.post("/api/v1/groups", {"name": "North", "user_ids": [bob_id]}, **a)
    assert r.status == 201
    group_id = r.body["id"]
    assert (await api.patch(f"/api/v1/groups/{group_id}", {"role_id": role_id, "user_ids": []}, **a)).status == 200

    # Sessions: the admin ends Bob's sessions; Bob signs in again and logs out.
    assert (await api.delete(f"/api/v1/users/{bob_id}/sessions", **a)).status == 200
    bob = await sign_in(api, "bob@example.com", BOB_PASSWORD, BOB_IP)
    secrets.add(bob.token)
    assert (await api.post("/api/v1/auth/logout", who=bob, headers=xff(BOB_IP))).status == 204
    bob = await sign_in(api, "bob@example.com", BOB_PASSWORD, BOB_IP)
    secrets.add(bob.token)
    r = await api.post("/api/v1/account/password", {"current_password": BOB_PASSWORD,
                                                    "new_password": BOB_NEW_PASSWORD}, who=bob, headers=xff(BOB_IP))
    assert r.status == 200
    secrets |= {r.body["token"], r.body["csrf_token"]}
    assert (await api.post(f"/api/v1/users/{bob_id}/password", {"new_password": BOB_PASSWORD + "-reset"}, **a)).status == 204
    secrets.add(BOB_PASSWORD + "-reset")

    # Records: a pipeline, a lead created, edited and deleted, an export.
    r = await api.post("/api/v1/pipelines", {"name": "Sales", "stages": ["New", "Won"]}, **a)
    assert r.status == 201
    pipeline_id = r.body["id"]
    r = await api.post("/api/v1/leads", {"name": "Big deal", "price": 100, "pipeline_id": pipeline_id}, **a)
    assert r.status == 201
    lead_id = r.body["id"]
    assert (await api.patch(f"/api/v1/leads/{lead_id}", {"price": 250}, **a)).status == 200
    assert (await api.get("/api/v1/leads/export", params={"pipeline_id": str(pipeline_id)}, **a)).status == 200
    assert (await api.delete(f"/api/v1/leads/{lead_id}", **a)).status == 204

    # Two-step verification for Carol, whose seed and recovery codes must never reach the log.
    carol = await api.add_user(ada, "Carol", password="carol-secret-pass-3")
    secrets |= {carol.token, "carol-secret-pass-3"}
    r = await api.post("/api/v1/auth/2fa/enrol", who=carol, headers=xff(CAROL_IP))
    assert r.status == 201
    seed = r.body["secret"]
    r = await api.post("/api/v1/auth/2fa/confirm", {"code": pyotp.TOTP(seed).at(api.clock.now)}, who=carol,
                       headers=xff(CAROL_IP))
    assert r.status == 200
    secrets |= {seed, r.body["token"], *r.body["recovery_codes"]}

    # The allow-list, then disabling Bob.
    r = await api.patch("/api/v1/account/security", {"ip_whitelist": [{"cidr": "203.0.113.0/24"}]}, **a)
    assert r.status == 200
    assert (await api.patch(f"/api/v1/users/{bob_id}", {"is_active": False}, **a)).status == 200

    items = await walk(api, ada)
    ada_id = ada.user_id

    e = one(items, "login.ok", actor_id=ada_id, ip=ADA_IP)
    assert e["at"] == iso(START) and e["object_type"] == "session"
    e = one(items, "login.failed", actor_id=ada_id, ip=STRANGER_IP)
    assert e["data"] == {"email": ADMIN_EMAIL, "reason": "bad credentials"}
    one(items, "login.failed", actor_id=None, ip=STRANGER_IP)
    e = one(items, "user.created", actor_id=ada_id, ip=ADA_IP, object_type="user", object_id=bob_id)
    assert e["data"]["after"]["email"] == "bob@example.com" and "password_hash" not in e["data"]["after"]
    assert len([i for i in items if i["type"] == "login.ok" and i["actor_id"] == bob_id and i["ip"] == BOB_IP]) == 3

    updates = [i for i in items if i["type"] == "user.updated" and i["object_id"] == bob_id]
    assert all(i["actor_id"] == ada_id and i["ip"] == ADA_IP for i in updates)
    changes = [(i["data"]["before"], i["data"]["after"]) for i in reversed(updates)]
    assert changes[0] == ({"name": "Bob"}, {"name": "Robert"})
    assert changes[1][0]["role_id"] is None and changes[1][1]["role_id"] == role_id  # role granted
    # Own rights replace the role: before and after values of both.
    assert changes[2][0] == {"role_id": role_id, "rights": None} and changes[2][1]["role_id"] is None
    assert changes[2][1]["rights"]["leads"]["view"] == "G" and len(changes) == 3

    e = one(items, "role.created", actor_id=ada_id, ip=ADA_IP, object_id=role_id)
    assert e["data"]["after"]["rights"]["leads"]["edit"] == "M"
    e = one(items, "role.updated", actor_id=ada_id, ip=ADA_IP, object_id=role_id)
    assert e["data"]["before"]["rights"]["mail_access"] is False and e["data"]["after"]["rights"]["mail_access"] is True
    one(items, "group.created", actor_id=ada_id, ip=ADA_IP, object_id=group_id)
    e = one(items, "group.updated", actor_id=ada_id, ip=ADA_IP, object_id=group_id)
    assert e["data"]["before"]["user_ids"] == [bob_id] and e["data"]["after"]["user_ids"] == []
    assert e["data"]["before"]["role_id"] is None and e["data"]["after"]["role_id"] == role_id

    e = one(items, "session.ended_by_admin", actor_id=ada_id, ip=ADA_IP, object_type="user", object_id=bob_id)
    assert len(e["data"]["session_ids"]) == 1
    one(items, "logout", actor_id=bob_id, ip=BOB_IP, object_id=bob_id)
    one(items, "user.password_changed", actor_id=bob_id, ip=BOB_IP, object_id=bob_id)
    one(items, "user.password_reset", actor_id=ada_id, ip=ADA_IP, object_id=bob_id)

    one(items, "pipeline.created", actor_id=ada_id, ip=ADA_IP, object_type="pipeline", object_id=pipeline_id)
    e = one(items, "lead.created", actor_id=ada_id, ip=ADA_IP, object_type="lead", object_id=lead_id)
    assert e["data"]["after"]["name"] == "Big deal"
    e = one(items, "lead.updated", actor_id=ada_id, ip=ADA_IP, object_id=lead_id)
    assert e["data"] == {"before": {"price": 100}, "after": {"price": 250}}
    e = one(items, "lead.deleted", actor_id=ada_id, ip=ADA_IP, object_id=lead_id)
    assert e["data"]["before"]["price"] == 250
    e = one(items, "leads.exported", actor_id=ada_id, ip=ADA_IP, object_type="leads")
    assert e["data"] == {"count": 1, "filters": {"pipeline_id": str(pipeline_id)}}

    one(items, "2fa.enrolment_started", actor_id=carol.user_id, ip=CAROL_IP)
    one(items, "2fa.enabled", actor_id=carol.user_id, ip=CAROL_IP)
    e = one(items, "security.updated", actor_id=ada_id, ip=ADA_IP)
    assert e["data"] == {"before": {"ip_whitelist": []}, "after": {"ip_whitelist": [{"cidr": "203.0.113.0/24",
                                                                                      "note": ""}]}}
    e = one(items, "user.disabled", actor_id=ada_id, ip=ADA_IP, object_id=bob_id)
    assert e["data"] == {"before": {"is_active": True}, "after": {"is_active": False}}

    # No secret anywhere: not in the API's view, not in any column of the table itself.
    secrets |= {h for (h,) in await api.rows("SELECT password_hash FROM users")}
    secrets |= {h for (h,) in await api.rows("SELECT token_hash FROM sessions")}
    raw = json.dumps(await api.rows("SELECT * FROM activity"))
    served = json.dumps(items)
    for secret in secrets:
        assert secret not in raw and secret not in served, secret
    keys = set()

    def collect(value) -> None:
        if isinstance(value, dict):
            keys.update(value)
            for v in value.values():
                collect(v)
        elif isinstance(value, list):
            for v in value:
                collect(v)

    collect([i["data"] for i in items])
    assert not keys & {"password", "password_hash", "token", "token_hash", "secret", "recovery_codes", "code"}


# --- filters, compared with a reference over the whole table ---

SEEDED = [  # actor, type, object_type, object_id, seconds after START
    (2, "lead.created", "lead", 1, 10), (2, "lead.updated", "lead", 1, 20), (3, "lead.updated", "lead", 2, 30),
    (3, "leads.exported", "leads", None, 40), (2, "login.failed", "", None, 50), (3, "login.ok", "session", 7, 60),
    (2, "lead.deleted", "lead", 1, 70), (None, "login.failed", "", None, 80), (3, "contact.created", "contact", 1, 90),
    (2, "lead.updated", "lead", 2, 3600), (3, "logout", "user", 3, 7200), (2, "lead", "lead", 9, 7300),
]


@pytest.fixture
async def seeded(api, admin):
    async def job(tx):
        for actor_id, type_, object_type, object_id, dt in SEEDED:
            await activity.append(tx, at=START + dt, actor_id=actor_id, ip="192.0.2.1", type=type_,
                                  object_type=object_type, object_id=object_id, data={"n": dt})
    await api.db.write(job)
    return admin


def at(seconds: float, hours: int | None = None) -> str:
    """START + seconds as RFC 3339: with 'Z', or in a zone ``hours`` from UTC."""
    t = datetime.fromtimestamp(START + seconds, UTC)
    if hours is None:
        return t.isoformat().replace("+00:00", "Z")
    return t.astimezone(timezone(timedelta(hours=hours))).isoformat()


FILTERS = [
    ({"user_id": "2"}, lambda r: r["actor_id"] == 2),
    ({"type": "lead.updated"}, lambda r: r["type"] == "lead.updated"),
    ({"type": "lead"}, lambda r: r["type"] == "lead"),
    # A prefix ends with "."; "lead." is not "leads." and not the bare "lead".
    ({"type": "lead."}, lambda r: r["type"].startswith("lead.")),
    ({"type": "login."}, lambda r: r["type"].startswith("login.")),
    ({"type": "nothing."}, lambda r: False),
    ({"object_type": "lead"}, lambda r: r["object_type"] == "lead"),
    ({"object_type": "lead", "object_id": "1"}, lambda r: r["object_type"] == "lead" and r["object_id"] == 1),
    ({"since": at(30)}, lambda r: r["at"] >= START + 30),
    ({"until": at(30)}, lambda r: r["at"] < START + 30),
    ({"since": at(60, 2), "until": at(7200, -5)}, lambda r: START + 60 <= r["at"] < START + 7200),
    ({"user_id": "2", "type": "lead.", "since": at(20)}, lambda r: r["actor_id"] == 2 and
     r["type"].startswith("lead.") and r["at"] >= START + 20),
    ({"user_id": "3", "object_type": "lead", "object_id": "2"}, lambda r: r["actor_id"] == 3 and
     r["object_type"] == "lead" and r["object_id"] == 2),
]


@pytest.mark.parametrize("params, keep", FILTERS, ids=[json.dumps(p) for p, _ in FILTERS])
async def test_filters_match_a_reference(api, seeded, params, keep):
    table = [dict(zip(("id", "at", "actor_id", "type", "object_type", "object_id"), r)) for r in
             await api.rows("SELECT id, at, actor_id, type, object_type, object_id FROM activity ORDER BY id DESC")]
    expected = [r["id"] for r in table if keep(r)]
    r = await api.get("/api/v1/activity", who=seeded, params=params)
    assert r.status == 200, r.body
    assert [i["id"] for i in r.body["items"]] == expected
    assert r.body["total"] == len(expected) and r.body["page"] == 1 and r.body["next_cursor"] is None
    # The same answer when the walk pages by cursor, two at a time.
    assert [i["id"] for i in await walk(api, seeded, limit=2, **params)] == expected


async def test_entry_shape(api, seeded):
    r = await api.get("/api/v1/activity", who=seeded, params={"type": "logout"})
    assert r.body["items"] == [{"id": r.body["items"][0]["id"], "at": "2027-01-15T10:00:00.000Z", "actor_id": 3,
                                "ip": "192.0.2.1", "type": "logout", "object_type": "user", "object_id": 3,
                                "data": {"n": 7200}}]
    r = await api.get("/api/v1/activity", who=seeded, params={"type": "login.failed", "user_id": "2"})
    assert r.body["items"][0]["object_type"] is None and r.body["items"][0]["object_id"] is None


async def test_many_types_under_a_prefix_fall_back_to_one_range(api, seeded, monkeypatch):
    expected = [i["id"] for i in await walk(api, seeded, limit=3, type="lead.")]
    monkeypatch.setattr(activity, "MAX_TYPE_BRANCHES", 1)
    assert [i["id"] for i in await walk(api, seeded, limit=3, type="lead.")] == expected


@pytest.mark.parametrize("flt, index", [
    (activity.Filter(actor_id=2), "activity_actor"),
    (activity.Filter(type="lead.updated"), "activity_type"),
    (activity.Filter(object_type="lead", object_id=1), "activity_object"),
])
async def test_filters_read_their_index_in_id_order(api, flt, index):
    sql, params = activity.page_query(flt, before=100, limit=51)
    plan = " ".join(r[3] for r in await api.db.fetchall("EXPLAIN QUERY PLAN " + sql, params))
    assert f"USING INDEX {index}" in plan and "TEMP B-TREE" not in plan, plan


async def test_a_prefix_reads_one_index_range_per_type(api, seeded):
    types = await activity.types_under(api.db, "lead.")
    assert types == ["lead.created", "lead.deleted", "lead.updated"]
    sql, params = activity.page_query(activity.Filter(type="lead."), before=None, limit=51, types=types)
    plan = [r[3] for r in await api.db.fetchall("EXPLAIN QUERY PLAN " + sql, params)]
    assert sum("activity_type (type=?)" in step for step in plan) == 3, plan
    assert not any(step.startswith("SCAN activity") for step in plan), plan


# --- paging ---

async def test_cursor_walk_is_newest_first_without_duplicates(api, seeded):
    every = [i for (i,) in await api.rows("SELECT id FROM activity ORDER BY id DESC")]
    r = await api.get("/api/v1/activity", who=seeded, params={"limit": "5"})
    assert r.body["total"] == len(every) and r.body["limit"] == 5 and r.body["next_cursor"] == every[4]
    seen = await walk(api, seeded, limit=5)
    ids = [i["id"] for i in seen]
    assert ids == every and len(set(ids)) == len(ids)
    # New entries while walking do not shift a cursor walk: they are newer than any cursor.
    cursor = every[4]
    await api.get("/api/v1/activity", who=seeded)
    await api.login(ADMIN_EMAIL, "wrong-one-again-1")
    r = await api.get("/api/v1/activity", who=seeded, params={"limit": "5", "cursor": str(cursor)})
    assert [i["id"] for i in r.body["items"]] == every[5:10] and "total" not in r.body and "page" not in r.body
    # page=N is the offset convenience; it agrees with the cursor walk.
    r = await api.get("/api/v1/activity", who=seeded, params={"limit": "5", "page": "2", "type": "lead."})
    by_cursor = await walk(api, seeded, limit=5, type="lead.")
    assert [i["id"] for i in r.body["items"]] == [i["id"] for i in by_cursor][5:10]
    assert r.body["page"] == 2 and r.body["total"] == len(by_cursor)


# --- who may read it, and bad filters ---

async def test_only_administrators_read_the_log(api, admin):
    bob = await api.add_user(admin, "Bob")
    r = await api.get("/api/v1/activity", who=bob)
    assert r.status == 403 and r.content_type == "application/problem+json"
    assert (await api.get("/api/v1/activity")).status == 401
    assert (await api.get("/api/v1/activity", who=admin)).status == 200


@pytest.mark.parametrize("params", [
    {"user_id": "bob"}, {"user_id": "0"}, {"type": "Login.ok"}, {"type": "lead.*"}, {"type": "lead%"},
    {"type": ""}, {"type": "lead..x"}, {"type": "x" * 101}, {"object_type": "lead;drop"}, {"object_id": "5"},
    {"object_type": "lead", "object_id": "-1"}, {"since": "2027-01-15T08:00:00"}, {"since": "yesterday"},
    {"until": "2027-13-01T00:00:00Z"}, {"since": "2027-01-15T09:00:00Z", "until": "2027-01-15T08:00:00Z"},
    {"since": "9999-12-31T23:59:59-23:59"}, {"until": "0001-01-01T00:00:00+14:00"},  # out of range in UTC
    {"limit": "251"}, {"limit": "0"}, {"cursor": "0"}, {"cursor": "9", "page": "2"}, {"page": "0"},
    {"actor_id": "1"},
], ids=lambda p: json.dumps(p))
async def test_bad_filters_are_422(api, admin, params):
    r = await api.get("/api/v1/activity", who=admin, params=params)
    assert r.status == 422 and r.content_type == "application/problem+json", r.body
    assert r.body["errors"] and all({"path", "message"} <= set(e) for e in r.body["errors"])


# --- inbox audit verify ---

async def audit(data_dir, *extra) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "inbox", "audit", "verify", "--data-dir", str(data_dir), *extra,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=dict(os.environ))
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, out.decode(), err.decode()


def tamper(db_path, *statements: str) -> None:
    """An attacker with the file: drop the append-only triggers, then change rows in place."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    try:
        conn.execute("DROP TRIGGER IF EXISTS activity_no_update")
        conn.execute("DROP TRIGGER IF EXISTS activity_no_delete")
        for sql in statements:
            conn.execute(sql)
    finally:
        conn.close()


async def busy_log(api, admin) -> int:
    for name in ("Bob", "Carol", "Dan"):
        await api.add_user(admin, name)
    (n,) = (await api.rows("SELECT count(*) FROM activity"))[0]
    assert n >= 7
    return n


async def test_audit_verify_passes_an_intact_log_with_progress(api, admin):
    n = await busy_log(api, admin)
    code, out, err = await audit(api.app[CONFIG].data_dir, "--progress-every", "2")
    assert code == 0, err
    assert f"intact: {n} rows" in out
    (head,) = (await api.rows("SELECT hash FROM activity ORDER BY id DESC LIMIT 1"))[0]
    assert head in out  # to keep elsewhere: a chain cannot show rows cut off its end
    assert err.splitlines() == [f"... {i} rows verified" for i in range(2, n + 1, 2)]
    assert await activity.verify_chain(api.db) is None


async def test_audit_verify_names_an_edited_row(api, admin):
    n = await busy_log(api, admin)
    middle = n // 2
    path = api.app[CONFIG].db_path
    # The naive edit: content changed, hash left alone.
    await asyncio.to_thread(tamper, path, f"UPDATE activity SET ip = '10.0.0.1' WHERE id = {middle}")
    code, out, err = await audit(api.app[CONFIG].data_dir)
    assert code == 1, (out, err)
    assert f"BROKEN at row {middle}:" in out and "edited" in out and f"The {middle - 1} rows before it" in out
    assert await activity.verify_chain(api.db) == middle
    # The careful edit: the row's own hash recomputed; the next row no longer follows it.
    (row,) = await api.db.fetchall(f"SELECT {activity.CHAIN_COLUMNS} FROM activity WHERE id = ?", (middle,))
    digest = activity._row_hash(*[row[k] for k in ("prev_hash", "id", "at", "actor_id", "ip", "type", "object_type",
                                                   "object_id", "data")])
    await asyncio.to_thread(tamper, path, f"UPDATE activity SET hash = '{digest}' WHERE id = {middle}")
    code, out, _ = await audit(api.app[CONFIG].data_dir)
    assert code == 1 and f"BROKEN at row {middle + 1}:" in out and f"row {middle} was rewritten" in out
    assert await activity.verify_chain(api.db) == middle + 1


async def test_audit_verify_names_where_a_deleted_row_breaks_the_chain(api, admin):
    n = await busy_log(api, admin)
    middle = n // 2
    await asyncio.to_thread(tamper, api.app[CONFIG].db_path, f"DELETE FROM activity WHERE id = {middle}")
    code, out, _ = await audit(api.app[CONFIG].data_dir)
    assert code == 1
    assert f"BROKEN at row {middle + 1}: row {middle} missing" in out
    assert await activity.verify_chain(api.db) == middle + 1


async def test_audit_verify_without_a_database_is_an_error(tmp_path):
    code, out, err = await audit(tmp_path / "nowhere")
    assert code == 2 and out == "" and "no database" in err
    assert not (tmp_path / "nowhere").exists()  # a check never creates a workspace


async def test_expiry_admin_single_session_end_and_refused_logins_are_attributed(api, admin):
    bob = await api.add_user(admin, "Bob")
    other = await api.persona(bob.email, bob.password)
    current = [s["id"] for s in (await api.get("/api/v1/sessions", who=other)).body["items"] if s["current"]]
    r = await api.delete(f"/api/v1/sessions/{current[0]}", who=admin)
    assert r.status == 204
    rows = await api.rows("SELECT type, actor_id, object_id FROM activity WHERE type LIKE 'session.%' ORDER BY id")
    assert rows[-1] == ("session.ended_by_admin", admin.user_id, bob.user_id)
    api.clock.advance(13 * 3600)  # past the idle timeout
    assert (await api.get("/api/v1/account", who=bob)).status == 401
    rows = await api.rows("SELECT type, actor_id FROM activity WHERE type = 'session.expired'")
    assert rows == [("session.expired", bob.user_id)]
    for _ in range(6):
        await api.login(bob.email, "wrong-password-x")
    throttled = await api.rows("SELECT actor_id FROM activity WHERE type = 'login.throttled'")
    assert throttled and throttled[0][0] == bob.user_id
