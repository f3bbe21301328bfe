"""Roles, groups and rights over HTTP: clamping on save (rule 1), effective rights and conflicts (rule 2)."""

from __future__ import annotations

import itertools

import pytest

LEVELS = "DMGA"
SALES = {"leads": {"add": "A", "view": "M", "edit": "M", "delete": "D", "export": "D"}}
LEAD = {"leads": {"add": "A", "view": "G", "edit": "G", "delete": "G", "export": "G"}, "mail_access": True}


def clamp(view, edit, delete, export):
    edit = LEVELS[min(LEVELS.index(edit), LEVELS.index(view))]
    return view, edit, LEVELS[min(LEVELS.index(delete), LEVELS.index(edit))], \
        LEVELS[min(LEVELS.index(export), LEVELS.index(edit))]


# Every pair of the chain, each side of it: (view, edit, delete, export) as asked, then as stored.
CHAIN_CASES = [
    ("M", "A", "D", "D"),   # edit > view
    ("A", "M", "G", "D"),   # delete > edit
    ("A", "M", "D", "A"),   # export > edit
    ("D", "A", "A", "A"),   # view D drags everything to D
    ("G", "A", "A", "A"),   # edit clamped by view, then delete and export by the clamped edit
    ("A", "A", "A", "A"),   # nothing to clamp
]


@pytest.mark.parametrize("asked", CHAIN_CASES)
async def test_role_rights_are_stored_and_returned_clamped(api, admin, asked):
    view, edit, delete, export = asked
    rights = {"leads": {"add": "A", "view": view, "edit": edit, "delete": delete, "export": export},
              "stage_rights": [{"pipeline_id": 1, "stage_id": 2, "view": view, "edit": edit, "delete": delete}],
              "tasks": {"edit": edit, "delete": delete}}
    r = await api.post("/api/v1/roles", {"name": "R", "rights": rights}, who=admin)
    assert r.status == 201
    expected = dict(zip(("view", "edit", "delete", "export"), clamp(*asked)))
    assert {k: r.body["rights"]["leads"][k] for k in expected} == expected
    stage = r.body["rights"]["stage_rights"][0]
    assert (stage["view"], stage["edit"], stage["delete"]) == clamp(view, edit, delete, "D")[:3]
    task_delete = LEVELS[min(LEVELS.index(delete), LEVELS.index(edit))]
    assert r.body["rights"]["tasks"] == {"edit": edit, "delete": task_delete}
    stored = await api.get(f"/api/v1/roles/{r.body['id']}", who=admin)
    assert stored.body == r.body


async def test_every_level_combination_is_clamped_on_user_rights(api, admin):
    bob = await api.add_user(admin, "Bob")
    combos = list(itertools.product(LEVELS, repeat=4))
    for view, edit, delete, export in combos[::7]:  # a spread of the 256, each one request
        rights = {"contacts": {"view": view, "edit": edit, "delete": delete, "export": export}}
        r = await api.patch(f"/api/v1/users/{bob.user_id}", {"rights": rights}, who=admin)
        assert r.status == 200
        got = r.body["rights"]["contacts"]
        assert (got["view"], got["edit"], got["delete"], got["export"]) == clamp(view, edit, delete, export)


@pytest.mark.parametrize("rights,path", [
    ({"leads": {"view": "X"}}, "rights.leads.view"),
    ({"leads": {"add": "M"}}, "rights.leads.add"),
    ({"leads": {"bogus": "A"}}, "rights.leads.bogus"),
    ({"deals": {}}, "rights.deals"),
    ({"mail_access": "yes"}, "rights.mail_access"),
    ({"pipeline_access": {"first": True}}, "rights.pipeline_access"),
    ({"stage_rights": [{"pipeline_id": 1, "stage_id": 1, "view": "Z"}]}, "rights.stage_rights.0.view"),
    ({"field_rights": [{"entity": "leads", "field_id": 7, "access": "write"}]}, "rights.field_rights.0.access"),
    ({"tasks": {"view": "A"}}, "rights.tasks.view"),
])
async def test_bad_rights_are_refused_with_the_offending_path(api, admin, rights, path):
    r = await api.post("/api/v1/roles", {"name": "Bad", "rights": rights}, who=admin)
    assert r.status == 422 and r.content_type == "application/problem+json"
    assert path in [e["path"] for e in r.body["errors"]], r.body
    assert await api.rows("SELECT count(*) FROM roles") == [(0,)]


async def test_role_and_own_rights_are_exclusive(api, admin):
    role = (await api.post("/api/v1/roles", {"name": "Sales", "rights": SALES}, who=admin)).body
    bob = await api.add_user(admin, "Bob", rights=LEAD)
    r = await api.patch(f"/api/v1/users/{bob.user_id}", {"role_id": role["id"]}, who=admin)
    assert r.status == 200 and r.body["role_id"] == role["id"] and r.body["rights"] is None
    r = await api.patch(f"/api/v1/users/{bob.user_id}", {"rights": SALES}, who=admin)
    assert r.status == 200 and r.body["role_id"] is None and r.body["rights"]["leads"]["view"] == "M"
    r = await api.patch(f"/api/v1/users/{bob.user_id}", {"rights": SALES, "role_id": role["id"]}, who=admin)
    assert r.status == 422
    assert (await api.patch(f"/api/v1/users/{bob.user_id}", {"role_id": 999}, who=admin)).status == 422


async def test_effective_rights_take_the_maximum_over_own_and_group_roles(api, admin):
    sales = (await api.post("/api/v1/roles", {"name": "Sales", "rights": SALES}, who=admin)).body
    lead = (await api.post("/api/v1/roles", {"name": "Lead", "rights": LEAD}, who=admin)).body
    bob = await api.add_user(admin, "Bob", role_id=sales["id"])
    r = await api.get(f"/api/v1/users/{bob.user_id}/rights", who=admin)
    assert r.body["rights"]["leads"]["view"] == "M" and r.body["conflicts"] == []
    assert [s["kind"] for s in r.body["sources"]] == ["role"]

    group = await api.post("/api/v1/groups", {"name": "Team", "role_id": lead["id"], "user_ids": [bob.user_id]},
                           who=admin)
    assert group.status == 201 and group.body["user_ids"] == [bob.user_id]
    r = await api.get(f"/api/v1/users/{bob.user_id}/rights", who=admin)
    assert r.status == 200
    assert r.body["rights"]["leads"] == {"add": "A", "view": "G", "edit": "G", "delete": "G", "export": "G"}
    assert r.body["rights"]["mail_access"] is True
    assert {s["kind"] for s in r.body["sources"]} == {"role", "group_role"}
    conflicts = {c["path"]: c for c in r.body["conflicts"]}
    assert set(conflicts) == {"leads.view", "leads.edit", "leads.delete", "leads.export", "mail_access"}
    assert conflicts["leads.view"]["effective"] == "G"
    assert sorted(v["value"] for v in conflicts["leads.view"]["values"]) == ["G", "M"]
    # Bob sees the same effective rights in his own account (next request, no re-login).
    me = await api.get("/api/v1/account", who=bob)
    assert me.body["effective_rights"]["leads"]["view"] == "G"
    # The effective-rights endpoint is for admins only.
    assert (await api.get(f"/api/v1/users/{bob.user_id}/rights", who=bob)).status == 403


async def test_rights_changes_apply_on_the_next_request(api, admin):
    role = (await api.post("/api/v1/roles", {"name": "Sales", "rights": SALES}, who=admin)).body
    bob = await api.add_user(admin, "Bob", role_id=role["id"])
    r = await api.patch(f"/api/v1/roles/{role['id']}", {"rights": LEAD}, who=admin)
    assert r.status == 200 and r.body["rights"]["leads"]["view"] == "G"
    assert (await api.get("/api/v1/account", who=bob)).body["effective_rights"]["leads"]["view"] == "G"
    group = (await api.post("/api/v1/groups", {"name": "T", "user_ids": [bob.user_id]}, who=admin)).body
    full = {"contacts": {"add": "A", "view": "A", "edit": "A", "delete": "A", "export": "A"}}
    other = (await api.post("/api/v1/roles", {"name": "Full contacts", "rights": full}, who=admin)).body
    r = await api.patch(f"/api/v1/groups/{group['id']}", {"role_id": other["id"]}, who=admin)
    assert r.status == 200 and r.body["role_id"] == other["id"]
    assert (await api.get("/api/v1/account", who=bob)).body["effective_rights"]["contacts"]["delete"] == "A"
    r = await api.patch(f"/api/v1/groups/{group['id']}", {"user_ids": []}, who=admin)
    assert r.body["user_ids"] == []
    assert (await api.get("/api/v1/account", who=bob)).body["effective_rights"]["contacts"]["delete"] == "D"


async def test_groups_crud_and_membership_from_both_sides(api, admin):
    bob = await api.add_user(admin, "Bob")
    g1 = (await api.post("/api/v1/groups", {"name": "Sales"}, who=admin)).body
    g2 = (await api.post("/api/v1/groups", {"name": "Support"}, who=admin)).body
    r = await api.patch(f"/api/v1/users/{bob.user_id}", {"group_ids": [g1["id"], g2["id"]]}, who=admin)
    assert r.body["group_ids"] == [g1["id"], g2["id"]]  # a user may be in several groups
    listed = (await api.get("/api/v1/groups", who=bob)).body["items"]
    assert [(g["name"], g["user_ids"]) for g in listed] == [("Sales", [bob.user_id]), ("Support", [bob.user_id])]
    assert (await api.get(f"/api/v1/groups/{g1['id']}", who=bob)).body["name"] == "Sales"
    assert (await api.post("/api/v1/groups", {"name": "sales"}, who=admin)).status == 409
    assert (await api.patch(f"/api/v1/groups/{g2['id']}", {"name": "SALES"}, who=admin)).status == 409
    assert (await api.post("/api/v1/groups", {"name": "X", "user_ids": [999]}, who=admin)).status == 422
    assert (await api.post("/api/v1/groups", {"name": "Y"}, who=bob)).status == 403
    assert (await api.delete(f"/api/v1/groups/{g1['id']}", who=bob)).status == 403
    assert (await api.delete(f"/api/v1/groups/{g1['id']}", who=admin)).status == 204
    assert (await api.get(f"/api/v1/groups/{g1['id']}", who=admin)).status == 404
    assert (await api.delete(f"/api/v1/groups/{g1['id']}", who=admin)).status == 404
    assert (await api.get(f"/api/v1/users/{bob.user_id}", who=admin)).body["group_ids"] == [g2["id"]]


async def test_roles_crud(api, admin):
    bob = await api.add_user(admin, "Bob")
    r = await api.post("/api/v1/roles", {"name": "Sales", "rights": SALES}, who=admin)
    rid = r.body["id"]
    assert (await api.post("/api/v1/roles", {"name": "SALES", "rights": {}}, who=admin)).status == 409
    assert (await api.get("/api/v1/roles", who=admin)).body["items"][0]["name"] == "Sales"
    assert (await api.patch(f"/api/v1/roles/{rid}", {"name": "Sales reps"}, who=admin)).body["name"] == "Sales reps"
    await api.patch(f"/api/v1/users/{bob.user_id}", {"role_id": rid}, who=admin)
    r = await api.delete(f"/api/v1/roles/{rid}", who=admin)
    assert r.status == 409 and r.body["assigned"] == {"users": 1, "groups": 0}
    await api.patch(f"/api/v1/users/{bob.user_id}", {"rights": {}}, who=admin)
    assert (await api.delete(f"/api/v1/roles/{rid}", who=admin)).status == 204
    assert (await api.get(f"/api/v1/roles/{rid}", who=admin)).status == 404
    assert (await api.patch(f"/api/v1/roles/{rid}", {"name": "again"}, who=admin)).status == 404


ADMIN_ONLY = [
    ("POST", "/api/v1/users", {"email": "x@example.com", "name": "X", "password": "x-password-1"}),
    ("PATCH", "/api/v1/users/1", {"name": "X"}),
    ("DELETE", "/api/v1/users/1", None),
    ("GET", "/api/v1/users/1/rights", None),
    ("POST", "/api/v1/users/1/password", {"new_password": "x-password-1"}),
    ("GET", "/api/v1/users/1/sessions", None),
    ("DELETE", "/api/v1/users/1/sessions", None),
    ("GET", "/api/v1/roles", None),
    ("POST", "/api/v1/roles", {"name": "R", "rights": {}}),
    ("GET", "/api/v1/roles/1", None),
    ("PATCH", "/api/v1/roles/1", {"name": "R"}),
    ("DELETE", "/api/v1/roles/1", None),
    ("POST", "/api/v1/groups", {"name": "G"}),
    ("PATCH", "/api/v1/groups/1", {"name": "G"}),
    ("DELETE", "/api/v1/groups/1", None),
]


@pytest.mark.parametrize("method,path,payload", ADMIN_ONLY)
async def test_admin_endpoints_refuse_non_admins_and_anonymous(api, admin, method, path, payload):
    """SECURITY-CHECKLIST 18 for the admin surface: 403 for a user, 401 without a session; nothing changes."""
    await api.post("/api/v1/roles", {"name": "Existing", "rights": {}}, who=admin)
    await api.post("/api/v1/groups", {"name": "Existing"}, who=admin)
    bob = await api.add_user(admin, "Bob")
    before = await api.rows("SELECT count(*) FROM activity")
    kw = {} if payload is None else {"json_body": payload}
    assert (await api.call(method, path, who=bob, **kw)).status == 403
    assert (await api.call(method, path, **kw)).status == 401
    assert await api.rows("SELECT count(*) FROM activity") == before
    assert (await api.get("/api/v1/account", who=admin)).status == 200


async def test_rights_never_outlive_the_stage_pipeline_or_field_they_name(api, admin):
    """Ids of a deleted stage, pipeline or custom field are reused by SQLite for the next one. A right
    that named the old one must not silently apply to the new one: a stage right of view A on a
    deleted "Queue" stage would otherwise open every lead of a new "VIP" stage to the whole role."""
    r = await api.post("/api/v1/pipelines", {"name": "Sales", "stages": ["In", "Queue"]}, who=admin)
    pipeline, (inbox_stage, queue) = r.body["id"], [s["id"] for s in r.body["stages"]]
    field = (await api.post("/api/v1/leads/custom_fields", {"name": "Margin", "type": "number"}, who=admin)).body["id"]
    rights = {**SALES, "stage_rights": [{"pipeline_id": pipeline, "stage_id": queue, "view": "A", "edit": "D",
                                         "delete": "D"}],
              "field_rights": [{"entity": "leads", "field_id": field, "access": "hidden"}]}
    role = (await api.post("/api/v1/roles", {"name": "Sales", "rights": rights}, who=admin)).body["id"]
    maria = await api.add_user(admin, "Maria", role_id=role)
    own = await api.add_user(admin, "Olga", rights=rights)

    assert (await api.delete(f"/api/v1/pipelines/{pipeline}/stages/{queue}", who=admin)).status == 204
    assert (await api.delete(f"/api/v1/leads/custom_fields/{field}", who=admin)).status == 204
    vip = (await api.post(f"/api/v1/pipelines/{pipeline}/stages", {"name": "VIP"}, who=admin)).body["id"]
    new_field = (await api.post("/api/v1/leads/custom_fields", {"name": "Notes", "type": "text"}, who=admin)).body["id"]
    lead = (await api.post("/api/v1/leads", {"name": "Big one", "stage_id": vip, "custom_fields": {str(new_field): "x"}},
                           who=admin)).body["id"]
    for who in (maria, own):
        assert (await api.get(f"/api/v1/leads/{lead}", who=who)).status == 404
    role_rights = (await api.get(f"/api/v1/roles/{role}", who=admin)).body["rights"]
    assert role_rights["stage_rights"] == [] and role_rights["field_rights"] == []
    olga = (await api.get(f"/api/v1/users/{own.user_id}", who=admin)).body["rights"]
    assert olga["stage_rights"] == [] and olga["field_rights"] == []
    # the new field is not hidden from them on a lead they may see
    mine = (await api.post("/api/v1/leads", {"name": "Mine", "stage_id": inbox_stage, "responsible_user_id": maria.user_id,
                                             "custom_fields": {str(new_field): "y"}}, who=admin)).body["id"]
    assert (await api.get(f"/api/v1/leads/{mine}", who=maria)).body["custom_fields"] == {str(new_field): "y"}

    assert (await api.delete(f"/api/v1/leads/{lead}", who=admin)).status == 204
    assert (await api.delete(f"/api/v1/leads/{mine}", who=admin)).status == 204
    other = (await api.post("/api/v1/pipelines", {"name": "Other", "stages": ["A"]}, who=admin)).body["id"]
    await api.patch(f"/api/v1/roles/{role}", {"rights": {**SALES, "pipeline_access": {str(other): False}}}, who=admin)
    assert (await api.delete(f"/api/v1/pipelines/{other}", who=admin)).status == 204
    assert (await api.get(f"/api/v1/roles/{role}", who=admin)).body["rights"]["pipeline_access"] == {}


async def test_a_deleted_stage_pipeline_or_field_id_is_never_given_out_again(api, admin):
    r = await api.post("/api/v1/pipelines", {"name": "Sales", "stages": ["In", "Queue"]}, who=admin)
    pipeline, queue = r.body["id"], r.body["stages"][-1]["id"]
    field = (await api.post("/api/v1/leads/custom_fields", {"name": "Margin", "type": "number"}, who=admin)).body["id"]
    assert (await api.delete(f"/api/v1/pipelines/{pipeline}/stages/{queue}", who=admin)).status == 204
    assert (await api.delete(f"/api/v1/leads/custom_fields/{field}", who=admin)).status == 204
    stage = (await api.post(f"/api/v1/pipelines/{pipeline}/stages", {"name": "VIP"}, who=admin)).body["id"]
    new_field = (await api.post("/api/v1/contacts/custom_fields", {"name": "Notes", "type": "text"}, who=admin)).body["id"]
    assert stage > queue and new_field > field
    assert (await api.delete(f"/api/v1/pipelines/{pipeline}", who=admin)).status == 204   # its stages go too
    again = (await api.post("/api/v1/pipelines", {"name": "Sales", "stages": ["In"]}, who=admin)).body
    assert again["id"] > pipeline and again["stages"][0]["id"] > stage


# --- issue 13.17: a user with neither a role nor own rights brings no source of their own (rule 2) ---

async def _lead_with_a_field(api, admin, owner: int):
    """A pipeline, a lead custom field and a lead with a value in it, owned by ``owner``."""
    p = (await api.post("/api/v1/pipelines", {"name": "Sales", "stages": ["In"]}, who=admin)).body
    field = (await api.post("/api/v1/leads/custom_fields", {"name": "Margin", "type": "text"}, who=admin)).body["id"]
    lead = await api.post("/api/v1/leads", {"name": "Deal", "pipeline_id": p["id"], "stage_id": p["stages"][0]["id"],
                                            "responsible_user_id": owner, "custom_fields": {str(field): "secret-42"}},
                          who=admin)
    assert lead.status == 201, lead.body
    return p, field, lead.body["id"]


async def test_a_group_role_hides_a_field_from_a_user_without_role_or_own_rights(api, admin):
    """The group role says hidden and nothing else speaks for the user, so the field is hidden: no empty
    "own rights" source whose unlisted fields are edit outvotes it."""
    bob = await api.add_user(admin, "Bob")
    carol = await api.add_user(admin, "Carol")  # the one who must see it: the same role, no hiding
    p, field, lead = await _lead_with_a_field(api, admin, bob.user_id)
    rights = {"leads": {"view": "A", "edit": "A"}, "field_rights": [{"entity": "leads", "field_id": field,
                                                                    "access": "hidden"}]}
    hiding = (await api.post("/api/v1/roles", {"name": "Agent", "rights": rights}, who=admin)).body["id"]
    group = await api.post("/api/v1/groups", {"name": "Sales", "role_id": hiding, "user_ids": [bob.user_id]}, who=admin)
    assert group.status == 201
    open_role = (await api.post("/api/v1/roles", {"name": "Open", "rights": {"leads": {"view": "A"}}},
                                who=admin)).body["id"]
    assert (await api.patch(f"/api/v1/users/{carol.user_id}", {"role_id": open_role}, who=admin)).status == 200

    r = await api.get(f"/api/v1/leads/{lead}", who=bob)
    assert r.status == 200 and r.body["custom_fields"] == {}
    assert "secret-42" not in r.text
    assert "secret-42" not in (await api.get("/api/v1/leads", who=bob)).text
    assert (await api.get("/api/v1/leads/custom_fields", who=bob)).body["items"] == []
    r = await api.patch(f"/api/v1/leads/{lead}", {"custom_fields": {str(field): "x"}}, who=bob)
    assert r.status == 422  # a hidden field is written like one that does not exist (docs/records.md)
    assert (await api.get(f"/api/v1/leads/{lead}", who=carol)).body["custom_fields"] == {str(field): "secret-42"}

    eff = (await api.get(f"/api/v1/users/{bob.user_id}/rights", who=admin)).body
    assert [s["kind"] for s in eff["sources"]] == ["group_role"] and eff["conflicts"] == []
    assert eff["rights"]["field_rights"] == [{"entity": "leads", "field_id": field, "access": "hidden"}]
    why = await api.get("/api/v1/access/explain", who=admin,
                        params={"user_id": str(bob.user_id), "entity": "leads", "action": "view", "record_id": str(lead)})
    assert [a["source_detail"]["kind"] for a in why.body["sources"]] == ["group_role"]


async def test_a_user_with_no_source_at_all_has_no_rights(api, admin):
    """Every level D, every flag false, no pipeline and no field: a subscription shows the lead, never its
    custom fields (rule 5)."""
    nobody = await api.add_user(admin, "Nobody")
    p, field, lead = await _lead_with_a_field(api, admin, nobody.user_id)
    eff = (await api.get(f"/api/v1/users/{nobody.user_id}/rights", who=admin)).body
    assert eff["sources"] == [] and eff["conflicts"] == [] and eff["field_default"] == "hidden"
    assert {eff["rights"][e][a] for e in ("leads", "contacts", "companies") for a in eff["rights"][e]} == {"D"}
    assert eff["rights"]["mail_access"] is False and eff["rights"]["files_access"] is False
    me = (await api.get("/api/v1/account", who=nobody)).body
    assert me["effective_field_default"] == "hidden" and me["effective_rights"]["leads"]["view"] == "D"
    assert (await api.get("/api/v1/leads/custom_fields", who=nobody)).body["items"] == []
    assert (await api.get("/api/v1/pipelines", who=nobody)).body["items"] == []
    assert (await api.get(f"/api/v1/leads/{lead}", who=nobody)).status == 404  # even their own lead

    r = await api.post(f"/api/v1/leads/{lead}/subscribers", {"user_id": nobody.user_id}, who=admin)
    assert r.status == 200, r.body
    r = await api.get(f"/api/v1/leads/{lead}", who=nobody)
    assert r.status == 200 and r.body["access"] == "subscription" and "custom_fields" not in r.body
    assert "secret-42" not in r.text
    why = await api.get("/api/v1/access/explain", who=admin,
                        params={"user_id": str(nobody.user_id), "entity": "leads", "action": "view",
                                "record_id": str(lead)})
    assert (why.body["allowed"], why.body["rule"], why.body["sources"]) == (True, "subscription", [])
    why = await api.get("/api/v1/access/explain", who=admin,
                        params={"user_id": str(nobody.user_id), "entity": "leads", "action": "edit",
                                "record_id": str(lead)})
    assert (why.body["allowed"], why.body["rule"], why.body["source"]) == (False, "no_rights", None)


async def test_own_rights_are_a_source_only_while_set(api, admin):
    """docs/rules.md: ``rights: null`` (or unsetting the role of a user without own rights) leaves no
    source; a saved rights object is a source even when it grants nothing, and its unlisted fields are edit."""
    role = (await api.post("/api/v1/roles", {"name": "Sales", "rights": SALES}, who=admin)).body["id"]
    bob = await api.add_user(admin, "Bob", rights={})  # explicitly saved, all D
    p, field, lead = await _lead_with_a_field(api, admin, bob.user_id)

    async def kinds(user) -> list[str]:
        body = (await api.get(f"/api/v1/users/{user.user_id}/rights", who=admin)).body
        return [s["kind"] for s in body["sources"]]

    assert await kinds(bob) == ["own"]
    assert [f["id"] for f in (await api.get("/api/v1/leads/custom_fields", who=bob)).body["items"]] == [field]
    r = await api.patch(f"/api/v1/users/{bob.user_id}", {"rights": None}, who=admin)
    assert r.status == 200 and r.body["rights"] is None and r.body["role_id"] is None
    assert await kinds(bob) == []
    assert (await api.get("/api/v1/leads/custom_fields", who=bob)).body["items"] == []
    assert await api.rows("SELECT rights, role_id FROM users WHERE id = ?", (bob.user_id,)) == [(None, None)]

    assert (await api.patch(f"/api/v1/users/{bob.user_id}", {"role_id": role}, who=admin)).status == 200
    assert await kinds(bob) == ["role"]
    r = await api.patch(f"/api/v1/users/{bob.user_id}", {"role_id": None}, who=admin)
    assert r.status == 200 and r.body["role_id"] is None and r.body["rights"] is None
    assert await kinds(bob) == []

    # Bad input changes nothing.
    for bad in ({"rights": "none"}, {"rights": []}, {"rights": {"leads": {"view": "X"}}}):
        r = await api.patch(f"/api/v1/users/{bob.user_id}", bad, who=admin)
        assert r.status == 422 and r.content_type == "application/problem+json"
    assert await kinds(bob) == []


# --- issue 13.19: what an administrator really holds ---

async def test_an_administrators_effective_rights_are_everything(api, admin):
    role = (await api.post("/api/v1/roles", {"name": "Sales", "rights": SALES}, who=admin)).body["id"]
    boss = await api.add_user(admin, "Boss", is_admin=True, role_id=role)  # a role decides nothing for an admin
    for who in (admin, boss):
        me = (await api.get("/api/v1/account", who=who)).body
        assert me["is_admin"] is True
        rights = me["effective_rights"]
        for entity in ("leads", "contacts", "companies"):
            assert rights[entity] == {"add": "A", "view": "A", "edit": "A", "delete": "A", "export": "A"}
        assert rights["tasks"] == {"edit": "A", "delete": "A"}
        assert rights["mail_access"] is True and rights["files_access"] is True
        assert rights["pipeline_access"] == {} and rights["field_rights"] == []
        assert me["effective_field_default"] == "edit"
        eff = (await api.get(f"/api/v1/users/{who.user_id}/rights", who=admin)).body
        assert eff["is_admin"] is True and eff["rights"] == rights and eff["conflicts"] == []
        assert [s["kind"] for s in eff["sources"]] == ["admin"]
    # demoted, the stored role decides again
    assert (await api.patch(f"/api/v1/users/{boss.user_id}", {"is_admin": False}, who=admin)).status == 200
    me = (await api.get("/api/v1/account", who=boss)).body
    assert me["is_admin"] is False and me["effective_rights"]["leads"]["view"] == "M"
    eff = (await api.get(f"/api/v1/users/{boss.user_id}/rights", who=admin)).body
    assert [s["kind"] for s in eff["sources"]] == ["role"] and eff["rights"]["contacts"]["view"] == "D"


# --- issue 13.20: sources are named by their role's and group's names, with ids ---

async def test_sources_are_named_by_role_and_group_names(api, admin):
    sales = (await api.post("/api/v1/roles", {"name": "Sales rep", "rights": SALES}, who=admin)).body["id"]
    lead_role = (await api.post("/api/v1/roles", {"name": "Team lead", "rights": LEAD}, who=admin)).body["id"]
    bob = await api.add_user(admin, "Bob", role_id=sales)
    group = (await api.post("/api/v1/groups", {"name": "North", "role_id": lead_role, "user_ids": [bob.user_id]},
                            who=admin)).body["id"]
    eff = (await api.get(f"/api/v1/users/{bob.user_id}/rights", who=admin)).body
    role_src = {"kind": "role", "role_id": sales, "role": "Sales rep", "group_id": None, "group": None,
                "label": f"role Sales rep (#{sales})"}
    group_src = {"kind": "group_role", "role_id": lead_role, "role": "Team lead", "group_id": group, "group": "North",
                 "label": f"role Team lead (#{lead_role}) via group North (#{group})"}
    assert eff["sources"] == [role_src, group_src]
    view = {c["path"]: c for c in eff["conflicts"]}["leads.view"]
    assert view["values"] == [{"source": role_src["label"], "value": "M"}, {"source": group_src["label"], "value": "G"}]

    p = (await api.post("/api/v1/pipelines", {"name": "Sales", "stages": ["In"]}, who=admin)).body
    lead = (await api.post("/api/v1/leads", {"name": "Deal", "pipeline_id": p["id"], "stage_id": p["stages"][0]["id"]},
                           who=admin)).body["id"]
    why = (await api.get("/api/v1/access/explain", who=admin, params={
        "user_id": str(bob.user_id), "entity": "leads", "action": "view", "record_id": str(lead)})).body
    assert why["allowed"] is False and why["source"] == group_src["label"] and why["source_detail"] == group_src
    assert [a["source_detail"] for a in why["sources"]] == [role_src, group_src]

    # A rename shows at once (rule 13); the ids stay.
    assert (await api.patch(f"/api/v1/groups/{group}", {"name": "South"}, who=admin)).status == 200
    eff = (await api.get(f"/api/v1/users/{bob.user_id}/rights", who=admin)).body
    assert eff["sources"][1]["group"] == "South" and eff["sources"][1]["group_id"] == group
    assert eff["sources"][1]["label"] == f"role Team lead (#{lead_role}) via group South (#{group})"
