"""Users: first user is admin, the last-admin guard, edits, disable, remove with reassignment."""

from __future__ import annotations

import pytest

from inbox.actions.context import Actor
from inbox.actions.people import do_create_user
from inbox.config import Config
from inbox.store.db import Database
from inbox.workspace import init_workspace


async def test_first_user_of_a_workspace_is_admin(tmp_path):
    from auth.passwords import Hasher

    db = Database(tmp_path / "w.sqlite3")
    await db.open()
    try:
        hasher = Hasher()
        first = await init_workspace(db, hasher, Config(data_dir=tmp_path), name="W", email="a@example.com",
                                     admin_name="A", password="first-user-pass")
        # Asked for a plain user, but first in the workspace: admin all the same.
        second = await do_create_user(db, Actor(first, "", 0), email="b@example.com", name="B",
                                      password_hash=await hasher.hash("second-user-pass"))
        flags = {r["id"]: r["is_admin"] for r in await db.fetchall("SELECT id, is_admin FROM users")}
        assert flags == {first: 1, second: 0}
    finally:
        await db.close()


async def test_first_user_admin_visible_over_http(api, admin):
    r = await api.get("/api/v1/account", who=admin)
    assert r.status == 200 and r.body["is_admin"] is True
    bob = await api.add_user(admin, "Bob")
    r = await api.get("/api/v1/account", who=bob)
    assert r.body["is_admin"] is False


async def test_any_user_can_be_made_admin_without_limit(api, admin):
    users = [await api.add_user(admin, n) for n in ("Bob", "Cid", "Dee")]
    for u in users:
        r = await api.patch(f"/api/v1/users/{u.user_id}", {"is_admin": True}, who=admin)
        assert r.status == 200 and r.body["is_admin"] is True
    admins = await api.rows("SELECT count(*) FROM users WHERE is_admin = 1")
    assert admins == [(4,)]


@pytest.mark.parametrize("change", [{"is_admin": False}, {"is_active": False}])
async def test_last_active_admin_cannot_be_demoted_or_disabled(api, admin, change):
    r = await api.patch(f"/api/v1/users/{admin.user_id}", change, who=admin)
    assert r.status == 409 and r.content_type == "application/problem+json"
    assert await api.rows("SELECT is_admin, is_active FROM users WHERE id = ?", (admin.user_id,)) == [(1, 1)]


async def test_last_active_admin_cannot_be_removed(api, admin):
    r = await api.delete(f"/api/v1/users/{admin.user_id}", who=admin)
    assert r.status == 409
    assert await api.rows("SELECT count(*) FROM users WHERE id = ?", (admin.user_id,)) == [(1,)]


async def test_a_disabled_admin_does_not_count_as_the_other_admin(api, admin):
    bob = await api.add_user(admin, "Bob", is_admin=True)
    assert (await api.patch(f"/api/v1/users/{bob.user_id}", {"is_active": False}, who=admin)).status == 200
    r = await api.patch(f"/api/v1/users/{admin.user_id}", {"is_admin": False}, who=admin)
    assert r.status == 409


async def test_admin_can_step_down_when_another_admin_exists(api, admin):
    bob = await api.add_user(admin, "Bob", is_admin=True)
    r = await api.patch(f"/api/v1/users/{admin.user_id}", {"is_admin": False}, who=admin)
    assert r.status == 200 and r.body["is_admin"] is False
    # Ada is no longer an admin: her next admin call is refused.
    assert (await api.get("/api/v1/roles", who=admin)).status == 403
    assert (await api.get("/api/v1/roles", who=bob)).status == 200


async def test_create_user_fields_and_partner_flag(api, admin):
    r = await api.post("/api/v1/users", {"email": "pat@partner.example", "name": "Pat", "password": "partner-pass-1",
                                         "is_partner": True, "avatar": "https://img.example/p.png"}, who=admin)
    assert r.status == 201
    assert {k: r.body[k] for k in ("email", "name", "is_partner", "is_admin", "is_active", "avatar")} == {
        "email": "pat@partner.example", "name": "Pat", "is_partner": True, "is_admin": False, "is_active": True,
        "avatar": "https://img.example/p.png"}
    assert "password" not in r.text and "password_hash" not in r.body


async def test_duplicate_email_is_a_conflict_case_insensitively(api, admin):
    await api.add_user(admin, "Bob")
    r = await api.post("/api/v1/users", {"email": "BOB@example.com", "name": "Bob 2", "password": "another-pass-9"},
                       who=admin)
    assert r.status == 409
    assert await api.rows("SELECT count(*) FROM users") == [(2,)]


async def test_disable_refuses_login_and_enable_restores_it(api, admin):
    bob = await api.add_user(admin, "Bob")
    assert (await api.patch(f"/api/v1/users/{bob.user_id}", {"is_active": False}, who=admin)).status == 200
    r = await api.login(bob.email, bob.password)  # the right password learns why, so Bob knows whom to ask
    assert r.status == 403 and r.body["type"].endswith("/account-disabled") and "token" not in r.body
    r = await api.login(bob.email, "not-his-password")  # a wrong one learns nothing more than for anyone
    assert r.status == 401 and r.body["detail"] == "The email or password is not correct."
    assert (await api.patch(f"/api/v1/users/{bob.user_id}", {"is_active": True}, who=admin)).status == 200
    assert (await api.login(bob.email, bob.password)).status == 200


async def test_disable_ends_all_sessions_at_once(api, admin):
    bob = await api.add_user(admin, "Bob")
    second = await api.persona(bob.email, bob.password)
    assert (await api.get("/api/v1/account", who=bob)).status == 200
    await api.patch(f"/api/v1/users/{bob.user_id}", {"is_active": False}, who=admin)
    for token in (bob, second):
        assert (await api.get("/api/v1/account", who=token)).status == 401
    assert await api.rows("SELECT count(*) FROM sessions WHERE user_id = ?", (bob.user_id,)) == [(0,)]
    types = [r[0] for r in await api.rows("SELECT type FROM activity WHERE object_id = ? ORDER BY id", (bob.user_id,))]
    assert "user.disabled" in types


async def _give_records(api, user_id: int) -> dict[str, int]:
    now = api.clock()

    async def job(tx):
        pid = await tx.insert("INSERT INTO pipelines (name, created_at) VALUES ('P', ?)", (now,))
        sid = await tx.insert("INSERT INTO stages (pipeline_id, name) VALUES (?, 'S')", (pid,))
        co = await tx.insert("INSERT INTO companies (name, responsible_user_id, created_at, updated_at)"
                             " VALUES ('Co', ?, ?, ?)", (user_id, now, now))
        await tx.insert("INSERT INTO contacts (name, responsible_user_id, created_at, updated_at) VALUES ('C', ?, ?, ?)",
                        (user_id, now, now))
        for i in range(3):
            await tx.insert("INSERT INTO leads (name, pipeline_id, stage_id, responsible_user_id, company_id,"
                            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (f"L{i}", pid, sid, user_id, co, now, now))
        await tx.insert("INSERT INTO tasks (text, responsible_user_id, created_at, updated_at) VALUES ('T', ?, ?, ?)",
                        (user_id, now, now))

    await api.db.write(job)
    return {"leads": 3, "contacts": 1, "companies": 1, "tasks": 1, "channels": 0}


async def test_remove_refuses_without_reassignment_and_changes_nothing(api, admin):
    bob = await api.add_user(admin, "Bob")
    owned = await _give_records(api, bob.user_id)
    r = await api.delete(f"/api/v1/users/{bob.user_id}", who=admin)
    assert r.status == 409 and r.body["owned"] == owned
    assert await api.rows("SELECT count(*) FROM users WHERE id = ?", (bob.user_id,)) == [(1,)]
    assert await api.rows("SELECT count(*) FROM leads WHERE responsible_user_id = ?", (bob.user_id,)) == [(3,)]


async def test_remove_reassigns_every_record_then_removes(api, admin):
    bob = await api.add_user(admin, "Bob")
    cid = await api.add_user(admin, "Cid")
    await _give_records(api, bob.user_id)
    r = await api.delete(f"/api/v1/users/{bob.user_id}", who=admin, params={"reassign_to": cid.user_id})
    assert r.status == 204
    for table in ("leads", "contacts", "companies", "tasks"):
        assert await api.rows(f"SELECT count(*) FROM {table} WHERE responsible_user_id = ?", (bob.user_id,)) == [(0,)]
    assert await api.rows("SELECT count(*) FROM leads WHERE responsible_user_id = ?", (cid.user_id,)) == [(3,)]
    assert await api.rows("SELECT count(*) FROM users WHERE id = ?", (bob.user_id,)) == [(0,)]
    assert (await api.get("/api/v1/account", who=bob)).status == 401
    assert (await api.get(f"/api/v1/users/{bob.user_id}", who=admin)).status == 404


async def test_remove_is_atomic_when_the_target_is_unusable(api, admin):
    bob = await api.add_user(admin, "Bob")
    cid = await api.add_user(admin, "Cid")
    await _give_records(api, bob.user_id)
    await api.patch(f"/api/v1/users/{cid.user_id}", {"is_active": False}, who=admin)
    for target, status in ((cid.user_id, 409), (bob.user_id, 422), (999, 422)):
        r = await api.delete(f"/api/v1/users/{bob.user_id}", who=admin, params={"reassign_to": target})
        assert r.status == status, r.body
        assert await api.rows("SELECT count(*) FROM leads WHERE responsible_user_id = ?", (bob.user_id,)) == [(3,)]
        assert await api.rows("SELECT count(*) FROM users WHERE id = ?", (bob.user_id,)) == [(1,)]


async def test_remove_user_without_records_needs_no_target(api, admin):
    bob = await api.add_user(admin, "Bob")
    assert (await api.delete(f"/api/v1/users/{bob.user_id}", who=admin)).status == 204
    assert (await api.delete(f"/api/v1/users/{bob.user_id}", who=admin)).status == 404


async def test_colleagues_see_name_and_avatar_only(api, admin):
    """SECURITY-CHECKLIST 20: a non-admin's view of other users carries no email, rights or flags."""
    bob = await api.add_user(admin, "Bob")
    r = await api.get("/api/v1/users", who=bob)
    assert r.status == 200 and r.body["total"] == 2
    for item in r.body["items"]:
        assert set(item) == {"id", "name", "avatar", "is_active"}
    r = await api.get(f"/api/v1/users/{admin.user_id}", who=bob)
    assert set(r.body) == {"id", "name", "avatar", "is_active"}
    # Their own record and the admin's view are complete.
    assert "email" in (await api.get(f"/api/v1/users/{bob.user_id}", who=bob)).body
    r = await api.get("/api/v1/users", who=admin)
    assert {"email", "is_admin", "rights", "role_id", "group_ids"} <= set(r.body["items"][0])


async def test_users_list_pagination(api, admin):
    for n in range(5):
        await api.add_user(admin, f"User{n}")
    r = await api.get("/api/v1/users", who=admin, params={"page": 2, "limit": 2})
    assert r.status == 200 and r.body["total"] == 6 and len(r.body["items"]) == 2
    assert [u["id"] for u in r.body["items"]] == [3, 4]
    assert (await api.get("/api/v1/users", who=admin, params={"limit": 251})).status == 422
    assert (await api.get("/api/v1/users", who=admin, params={"page": 0})).status == 422
    assert (await api.get("/api/v1/users", who=admin, params={"bogus": 1})).status == 422


async def test_self_edit_cannot_grant_access(api, admin):
    """SECURITY-CHECKLIST 19: fields outside the self-edit allow-list are refused and nothing changes."""
    bob = await api.add_user(admin, "Bob")
    for sneaky in ({"is_admin": True}, {"role_id": 1}, {"rights": {"leads": {"view": "A"}}}, {"is_active": True},
                   {"name": "Bobby", "is_admin": True}):
        r = await api.patch("/api/v1/account", sneaky, who=bob)
        assert r.status == 422, sneaky
    assert await api.rows("SELECT name, is_admin, role_id, rights FROM users WHERE id = ?", (bob.user_id,)) == [
        ("Bob", 0, None, None)]
    r = await api.patch("/api/v1/account", {"name": "Bobby"}, who=bob)
    assert r.status == 200 and r.body["name"] == "Bobby"


async def test_non_admin_cannot_change_any_user(api, admin):
    """SECURITY-CHECKLIST 25: a non-admin cannot change admin flags, rights or roles, even their own."""
    bob = await api.add_user(admin, "Bob")
    for target in (bob.user_id, admin.user_id):
        for change in ({"is_admin": True}, {"rights": {"leads": {"view": "A"}}}, {"role_id": 1}, {"is_active": False}):
            r = await api.patch(f"/api/v1/users/{target}", change, who=bob)
            assert r.status == 403, (target, change)
    assert await api.rows("SELECT id, is_admin, is_active, rights FROM users ORDER BY id") == [
        (admin.user_id, 1, 1, None), (bob.user_id, 0, 1, None)]


async def test_edit_user_records_before_and_after(api, admin):
    bob = await api.add_user(admin, "Bob")
    r = await api.patch(f"/api/v1/users/{bob.user_id}", {"name": "Robert", "email": "robert@example.com"}, who=admin)
    assert r.status == 200 and r.body["name"] == "Robert"
    rows = await api.rows("SELECT data FROM activity WHERE type = 'user.updated' AND object_id = ?", (bob.user_id,))
    import json
    data = json.loads(rows[-1][0])
    assert data["before"] == {"name": "Bob", "email": "bob@example.com"}
    assert data["after"] == {"name": "Robert", "email": "robert@example.com"}


async def test_unknown_user_ids_are_404_and_bad_ids_422(api, admin):
    assert (await api.get("/api/v1/users/4242", who=admin)).status == 404
    assert (await api.patch("/api/v1/users/4242", {"name": "x"}, who=admin)).status == 404
    assert (await api.get("/api/v1/users/abc", who=admin)).status == 422
    assert (await api.get("/api/v1/users/4242/rights", who=admin)).status == 404
