"""SECURITY-CHECKLIST 18: role x endpoint x (own / same group's / other user's record).

Every cell is derived from the levels below, not written by hand, and checked against the server:
GET, PATCH and DELETE on one record, and presence in the list. A record the caller may not view is
404 (never 403); a visible record with a forbidden action is 403 and stays unchanged.
"""

from __future__ import annotations

import pytest

from conftest import FAST_HASHING

LEVELS = "DMGA"
# role -> (view, edit, delete) for leads, contacts and companies; tasks use (edit, delete).
ROLES = {
    "none": ("D", "D", "D"),
    "mine": ("M", "M", "M"),
    "team": ("G", "G", "M"),
    "wide": ("A", "G", "D"),
}
KINDS = ("own", "group", "other")
ENTITIES = ("leads", "contacts", "companies", "tasks")


@pytest.fixture
def config_overrides() -> dict:
    return FAST_HASHING


def covers(level: str, kind: str) -> bool:
    need = {"own": "M", "group": "G", "other": "A"}[kind]
    return LEVELS.index(level) >= LEVELS.index(need)


def expected(role: str, entity: str, kind: str) -> tuple[int, int, int]:
    view, edit, delete = ROLES[role]
    if entity == "tasks":  # rule 10: own tasks, or tasks the task edit level covers
        visible = kind == "own" or covers(edit, kind)
    else:
        visible = covers(view, kind)
    if not visible:
        return 404, 404, 404
    return 200, (200 if covers(edit, kind) else 403), (204 if covers(delete, kind) else 403)


def rights(role: str) -> dict:
    view, edit, delete = ROLES[role]
    entity = {"add": "A", "view": view, "edit": edit, "delete": delete, "export": "D"}
    return {"leads": entity, "contacts": entity, "companies": entity, "tasks": {"edit": edit, "delete": delete}}


def create_body(entity: str, owner: int, n: int) -> dict:
    if entity == "tasks":
        return {"text": f"task {n}", "responsible_user_id": owner}
    return {"name": f"{entity} {n}", "responsible_user_id": owner}


async def test_authorization_matrix(api, admin):
    await api.post("/api/v1/pipelines", {"name": "P", "stages": ["S"]}, who=admin)
    users = {}
    for role in ROLES:
        rid = (await api.post("/api/v1/roles", {"name": role, "rights": rights(role)}, who=admin)).body["id"]
        users[role] = await api.add_user(admin, role.capitalize(), role_id=rid)
    peer = await api.add_user(admin, "Peer")
    stranger = await api.add_user(admin, "Stranger")
    await api.post("/api/v1/groups", {"name": "Team", "user_ids": [u.user_id for u in users.values()] + [peer.user_id]},
                   who=admin)
    owners = {"group": peer.user_id, "other": stranger.user_id}
    n = 0
    failures = []
    for role, who in users.items():
        for entity in ENTITIES:
            for kind in KINDS:
                n += 1
                owner = who.user_id if kind == "own" else owners[kind]
                r = await api.post(f"/api/v1/{entity}", create_body(entity, owner, n), who=admin)
                assert r.status == 201, r.body
                rid = r.body["id"]
                want = expected(role, entity, kind)
                listed = await api.get(f"/api/v1/{entity}", who=who, params={"limit": "250"})
                in_list = rid in {i["id"] for i in listed.body["items"]}
                got_get = (await api.get(f"/api/v1/{entity}/{rid}", who=who)).status
                field = "text" if entity == "tasks" else "name"
                got_patch = (await api.patch(f"/api/v1/{entity}/{rid}", {field: "changed"}, who=who)).status
                stored = (await api.get(f"/api/v1/{entity}/{rid}", who=admin)).body[field]
                got_delete = (await api.delete(f"/api/v1/{entity}/{rid}", who=who)).status
                still_there = (await api.get(f"/api/v1/{entity}/{rid}", who=admin)).status == 200
                got = (got_get, got_patch, got_delete)
                if (got != want or in_list != (want[0] == 200) or (stored == "changed") != (want[1] == 200)
                        or still_there != (want[2] != 204)):
                    failures.append((role, entity, kind, "want", want, "got", got, in_list, stored, still_there))
    assert not failures, "\n".join(map(str, failures))
    # The administrator row: everything, everywhere.
    for entity in ENTITIES:
        rid = (await api.post(f"/api/v1/{entity}", create_body(entity, stranger.user_id, 0), who=admin)).body["id"]
        field = "text" if entity == "tasks" else "name"
        assert (await api.get(f"/api/v1/{entity}/{rid}", who=admin)).status == 200
        assert (await api.patch(f"/api/v1/{entity}/{rid}", {field: "x"}, who=admin)).status == 200
        assert (await api.delete(f"/api/v1/{entity}/{rid}", who=admin)).status == 204
