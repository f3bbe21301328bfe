"""SPEC section 2 on real records, one rule at a time, each with the user who must not see or do it.

The workspace: pipelines Sales (In, Qualified, Won) and Partners (Intro, Deal); a Sales team group
(maria, tom, gina); olga outside every group. Leads are made by the admin and handed to each user.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field

import pytest

from conftest import FAST_HASHING, Persona

AGENT_M = {"leads": {"add": "A", "view": "M", "edit": "M", "delete": "M", "export": "M"},
           "contacts": {"add": "A", "view": "M", "edit": "M", "delete": "M", "export": "M"},
           "companies": {"add": "A", "view": "M", "edit": "M", "delete": "D", "export": "D"},
           "tasks": {"edit": "M", "delete": "M"}}
LEAD_G = {"leads": {"add": "A", "view": "G", "edit": "M", "delete": "D", "export": "G"},
          "contacts": {"add": "A", "view": "G", "edit": "G", "delete": "D", "export": "G"},
          "tasks": {"edit": "G", "delete": "D"}}


@pytest.fixture
def config_overrides() -> dict:
    # Five users per test: cheap password hashing keeps the module fast (hashing has its own tests).
    return FAST_HASHING


@dataclass
class World:
    admin: Persona
    sales: dict            # pipeline JSON
    partners: dict
    users: dict[str, Persona]
    roles: dict[str, int]
    group_id: int
    fields: dict[str, int]
    leads: dict[str, int] = field(default_factory=dict)

    def stage(self, pipeline: str, index: int) -> int:
        return getattr(self, pipeline)["stages"][index]["id"]


async def _role(api, admin, name, rights) -> int:
    r = await api.post("/api/v1/roles", {"name": name, "rights": rights}, who=admin)
    assert r.status == 201, r.body
    return r.body["id"]


@pytest.fixture
async def world(api, admin) -> World:
    sales = (await api.post("/api/v1/pipelines", {"name": "Sales", "stages": ["In", "Qualified", "Won"]},
                            who=admin)).body
    partners = (await api.post("/api/v1/pipelines", {"name": "Partners", "stages": ["Intro", "Deal"]},
                               who=admin)).body
    fields = {}
    for name, kind, extra in [("Budget", "number", {}), ("Source", "select", {"options": ["web", "call"]}),
                              ("Notes", "text", {})]:
        r = await api.post("/api/v1/leads/custom_fields", {"name": name, "type": kind, **extra}, who=admin)
        assert r.status == 201, r.body
        fields[name] = r.body["id"]
    roles = {"agent": await _role(api, admin, "Agent", AGENT_M), "lead": await _role(api, admin, "Lead", LEAD_G)}
    users = {
        "maria": await api.add_user(admin, "Maria", role_id=roles["agent"]),
        "tom": await api.add_user(admin, "Tom", role_id=roles["agent"]),
        "gina": await api.add_user(admin, "Gina", role_id=roles["lead"]),
        "olga": await api.add_user(admin, "Olga", role_id=roles["lead"]),
        "nobody": await api.add_user(admin, "Nobody"),
    }
    r = await api.post("/api/v1/groups", {"name": "Sales team", "user_ids": [
        users[n].user_id for n in ("maria", "tom", "gina")]}, who=admin)
    w = World(admin, sales, partners, users, roles, r.body["id"], fields)
    for owner in ("maria", "tom", "gina", "olga"):
        for pipeline, idx in (("sales", 0), ("sales", 1), ("partners", 0)):
            w.leads[f"{owner}-{pipeline}-{idx}"] = await lead(api, w, owner, pipeline, idx)
    return w


async def lead(api, w: World, owner: str, pipeline: str = "sales", idx: int = 0, **extra) -> int:
    body = {"name": f"{owner} {pipeline} {idx}", "stage_id": w.stage(pipeline, idx),
            "responsible_user_id": w.users[owner].user_id if owner != "admin" else w.admin.user_id,
            "custom_fields": {str(w.fields["Budget"]): 100, str(w.fields["Notes"]): "secret plan"}, **extra}
    r = await api.post("/api/v1/leads", body, who=w.admin)
    assert r.status == 201, r.body
    return r.body["id"]


async def visible_ids(api, who, **params) -> set[int]:
    r = await api.get("/api/v1/leads", who=who, params={"limit": "250", **params})
    assert r.status == 200, r.body
    ids = [i["id"] for i in r.body["items"]]
    assert r.body["total"] == len(ids)  # pagination counts only visible rows (rule 12)
    return set(ids)


def names(w: World, ids: set[int]) -> set[str]:
    # An id the world did not make keeps a name of its own, so a leaked extra row fails the comparison.
    back = {v: k for k, v in w.leads.items()}
    return {back.get(i, f"unknown-{i}") for i in ids}


async def set_rights(api, w: World, who: str, rights: dict) -> None:
    r = await api.patch(f"/api/v1/users/{w.users[who].user_id}", {"rights": rights}, who=w.admin)
    assert r.status == 200, r.body


# --- levels (D, M, G, A) ---

async def test_m_sees_only_own_leads_and_g_sees_its_groups(api, world):
    w = world
    assert names(w, await visible_ids(api, w.users["maria"])) == {"maria-sales-0", "maria-sales-1", "maria-partners-0"}
    gina = names(w, await visible_ids(api, w.users["gina"]))
    assert gina == {f"{o}-{p}" for o in ("maria", "tom", "gina") for p in ("sales-0", "sales-1", "partners-0")}
    # olga has the same G role but no group: G still covers her own records ("levels nest"), nobody else's.
    assert names(w, await visible_ids(api, w.users["olga"])) == {"olga-sales-0", "olga-sales-1", "olga-partners-0"}
    assert await visible_ids(api, w.users["nobody"]) == set()
    assert len(await visible_ids(api, w.admin)) == 12
    # Rule 14: a lead one may not view is 404, exactly like one that does not exist.
    hidden = await api.get(f"/api/v1/leads/{w.leads['tom-sales-0']}", who=w.users["maria"])
    missing = await api.get("/api/v1/leads/999999", who=w.users["maria"])
    assert hidden.status == missing.status == 404
    assert hidden.body["detail"] == missing.body["detail"]


async def test_level_matrix_for_own_group_and_other_records(api, world):
    """SECURITY-CHECKLIST 18: every action on own, group and other-user records, for M and G users."""
    w = world
    cases = {  # (user, owner): expected status for GET, PATCH, DELETE
        ("maria", "maria"): (200, 200, 204), ("maria", "tom"): (404, 404, 404), ("maria", "olga"): (404, 404, 404),
        ("gina", "gina"): (200, 200, 403), ("gina", "tom"): (200, 403, 403), ("gina", "olga"): (404, 404, 404),
    }
    for (user, owner), (get, patch, delete) in cases.items():
        lead_id = w.leads[f"{owner}-sales-1"]
        who = w.users[user]
        assert (await api.get(f"/api/v1/leads/{lead_id}", who=who)).status == get, (user, owner)
        r = await api.patch(f"/api/v1/leads/{lead_id}", {"name": f"renamed by {user}"}, who=who)
        assert r.status == patch, (user, owner, r.body)
        if patch != 200:
            assert (await api.get(f"/api/v1/leads/{lead_id}", who=w.admin)).body["name"] != f"renamed by {user}"
        assert (await api.delete(f"/api/v1/leads/{lead_id}", who=who)).status == delete, (user, owner)
        if delete != 204:
            assert (await api.get(f"/api/v1/leads/{lead_id}", who=w.admin)).status == 200


# --- pipeline access and stage rights (rules 3, 4) ---

async def test_denied_pipeline_hides_all_its_leads(api, world):
    w = world
    await set_rights(api, w, "olga", {"leads": {"view": "A", "edit": "A"},
                                       "pipeline_access": {str(w.partners["id"]): False}})
    seen = names(w, await visible_ids(api, w.users["olga"]))
    assert seen and all("-sales-" in n for n in seen)
    assert len(seen) == 8
    r = await api.get(f"/api/v1/leads/{w.leads['tom-partners-0']}", who=w.users["olga"])
    assert r.status == 404
    assert await visible_ids(api, w.users["olga"], pipeline_id=str(w.partners["id"])) == set()
    # Pipelines list follows too.
    listed = await api.get("/api/v1/pipelines", who=w.users["olga"])
    assert [p["id"] for p in listed.body["items"]] == [w.sales["id"]]
    assert (await api.get(f"/api/v1/pipelines/{w.partners['id']}", who=w.users["olga"])).status == 404
    # A stage right inside a denied pipeline grants nothing: the source decides pipeline access first.
    await set_rights(api, w, "olga", {"leads": {"view": "A"}, "pipeline_access": {str(w.partners["id"]): False},
                                       "stage_rights": [{"pipeline_id": w.partners["id"], "stage_id": w.stage("partners", 0),
                                                         "view": "A", "edit": "A", "delete": "A"}]})
    assert not any("partners" in n for n in names(w, await visible_ids(api, w.users["olga"])))


async def test_stage_rights_replace_lead_levels(api, world):
    w = world
    sales, qualified = w.sales["id"], w.stage("sales", 1)
    # No lead view at all, but A in one stage: exactly that stage's leads.
    await set_rights(api, w, "olga", {"leads": {"view": "D"}, "stage_rights": [
        {"pipeline_id": sales, "stage_id": qualified, "view": "A", "edit": "M", "delete": "D"}]})
    assert names(w, await visible_ids(api, w.users["olga"])) == {f"{o}-sales-1" for o in ("maria", "tom", "gina", "olga")}
    # Edit in that stage is M: her own, not tom's.
    assert (await api.patch(f"/api/v1/leads/{w.leads['olga-sales-1']}", {"price": 5}, who=w.users["olga"])).status == 200
    assert (await api.patch(f"/api/v1/leads/{w.leads['tom-sales-1']}", {"price": 5}, who=w.users["olga"])).status == 403
    # The other way round: A on leads, but a D stage right hides that stage.
    await set_rights(api, w, "olga", {"leads": {"view": "A"}, "stage_rights": [
        {"pipeline_id": sales, "stage_id": qualified, "view": "D", "edit": "D", "delete": "D"}]})
    seen = names(w, await visible_ids(api, w.users["olga"]))
    assert len(seen) == 8 and not any(n.endswith("-sales-1") for n in seen)
    # Filtering by the hidden stage shows nothing, and the total agrees.
    assert await visible_ids(api, w.users["olga"], stage_id=str(qualified)) == set()


async def test_moving_a_lead_needs_edit_where_it_lands(api, world):
    w = world
    await set_rights(api, w, "olga", {"leads": {"view": "A", "edit": "A"}, "stage_rights": [
        {"pipeline_id": w.sales["id"], "stage_id": w.stage("sales", 2), "view": "A", "edit": "D", "delete": "D"}]})
    lead_id = w.leads["olga-sales-0"]
    r = await api.patch(f"/api/v1/leads/{lead_id}", {"stage_id": w.stage("sales", 2)}, who=w.users["olga"])
    assert r.status == 403
    assert (await api.get(f"/api/v1/leads/{lead_id}", who=w.admin)).body["stage_id"] == w.stage("sales", 0)
    r = await api.patch(f"/api/v1/leads/{lead_id}", {"stage_id": w.stage("sales", 1)}, who=w.users["olga"])
    assert r.status == 200 and r.body["stage_id"] == w.stage("sales", 1)


async def test_sources_combine_to_the_most_permissive_answer(api, world):
    """Rule 2: own rights deny Partners, the group's role allows it: the group role wins, and the
    disagreement is listed as a conflict."""
    w = world
    await set_rights(api, w, "maria", {**AGENT_M, "pipeline_access": {str(w.partners["id"]): False}})
    assert "maria-partners-0" not in names(w, await visible_ids(api, w.users["maria"]))
    wide = await _role(api, w.admin, "Partners desk", {"leads": {"view": "G"}})
    await api.patch(f"/api/v1/groups/{w.group_id}", {"role_id": wide}, who=w.admin)
    seen = names(w, await visible_ids(api, w.users["maria"]))
    assert {"maria-partners-0", "tom-partners-0", "tom-sales-0"} <= seen
    eff = await api.get(f"/api/v1/users/{w.users['maria'].user_id}/rights", who=w.admin)
    assert any(c["path"] == f"pipeline_access.{w.partners['id']}" for c in eff.body["conflicts"])
    # The group role grants view only: maria still cannot edit tom's lead.
    assert (await api.patch(f"/api/v1/leads/{w.leads['tom-sales-0']}", {"price": 1}, who=w.users["maria"])).status == 403


async def test_rights_changes_apply_on_the_next_request(api, world):
    w = world
    maria = w.users["maria"]
    assert (await api.get(f"/api/v1/leads/{w.leads['tom-sales-0']}", who=maria)).status == 404
    await api.patch(f"/api/v1/roles/{w.roles['agent']}", {"rights": {**AGENT_M, "leads": {
        "add": "A", "view": "A", "edit": "M", "delete": "M", "export": "M"}}}, who=w.admin)
    assert (await api.get(f"/api/v1/leads/{w.leads['tom-sales-0']}", who=maria)).status == 200  # same token
    await api.patch(f"/api/v1/users/{maria.user_id}", {"group_ids": []}, who=w.admin)
    await api.patch(f"/api/v1/roles/{w.roles['agent']}", {"rights": {"leads": {"view": "G"}}}, who=w.admin)
    assert names(w, await visible_ids(api, maria)) == {"maria-sales-0", "maria-sales-1", "maria-partners-0"}


# --- subscriptions (rule 5, seed 001's October 2024 changes) ---

async def test_subscriber_sees_lead_without_stage_access_but_no_custom_fields(api, world):
    w = world
    olga = w.users["olga"]
    target = w.leads["tom-sales-1"]
    assert (await api.get(f"/api/v1/leads/{target}", who=olga)).status == 404
    r = await api.post(f"/api/v1/leads/{target}/subscribers", {"user_id": olga.user_id}, who=olga)
    assert r.status == 404  # one cannot subscribe to what one cannot see
    r = await api.post(f"/api/v1/leads/{target}/subscribers", {"user_id": olga.user_id}, who=w.admin)
    assert r.status == 200 and [s["user_id"] for s in r.body["items"]] == [olga.user_id]
    card = await api.get(f"/api/v1/leads/{target}", who=olga)
    assert card.status == 200
    assert card.body["access"] == "subscription" and card.body["subscribed"] is True
    assert "custom_fields" not in card.body
    assert "secret plan" not in card.text
    assert target in await visible_ids(api, olga)
    # Never edit, delete or export through a subscription.
    assert (await api.patch(f"/api/v1/leads/{target}", {"name": "x"}, who=olga)).status == 403
    assert (await api.delete(f"/api/v1/leads/{target}", who=olga)).status == 403
    exported = await api.get("/api/v1/leads/export", who=olga)
    assert str(target) not in [row[0] for row in csv.reader(io.StringIO(exported.text))]
    # Custom fields appear only through a real view right: the same lead for tom shows them.
    assert (await api.get(f"/api/v1/leads/{target}", who=w.users["tom"])).body["custom_fields"]
    # Unsubscribing ends the access.
    r = await api.delete(f"/api/v1/leads/{target}/subscribers/{olga.user_id}", who=olga)
    assert r.status == 200 and r.body["items"] == []
    assert (await api.get(f"/api/v1/leads/{target}", who=olga)).status == 404


async def test_subscriber_without_pipeline_access_still_sees_the_lead(api, world):
    w = world
    await set_rights(api, w, "olga", {"leads": {"view": "A"}, "pipeline_access": {str(w.partners["id"]): False}})
    target = w.leads["tom-partners-0"]
    await api.post(f"/api/v1/leads/{target}/subscribers", {"user_id": w.users["olga"].user_id}, who=w.admin)
    card = await api.get(f"/api/v1/leads/{target}", who=w.users["olga"])
    assert card.status == 200 and "custom_fields" not in card.body


async def test_subscribing_someone_else_needs_edit(api, world):
    w = world
    gina, tom, maria = w.users["gina"], w.users["tom"], w.users["maria"]
    # gina sees tom's lead (G) but may edit only her own (M): she may subscribe herself, not maria.
    target = w.leads["tom-sales-0"]
    assert (await api.post(f"/api/v1/leads/{target}/subscribers", {"user_id": maria.user_id}, who=gina)).status == 403
    assert (await api.post(f"/api/v1/leads/{target}/subscribers", {"user_id": gina.user_id}, who=gina)).status == 200
    # tom edits his lead, so he may add maria, and remove her again.
    r = await api.post(f"/api/v1/leads/{target}/subscribers", {"user_id": maria.user_id}, who=tom)
    assert r.status == 200 and {s["user_id"] for s in r.body["items"]} == {gina.user_id, maria.user_id}
    assert (await api.delete(f"/api/v1/leads/{target}/subscribers/{maria.user_id}", who=gina)).status == 403
    assert (await api.delete(f"/api/v1/leads/{target}/subscribers/{maria.user_id}", who=tom)).status == 200
    listed = await api.get(f"/api/v1/leads/{target}/subscribers", who=gina)
    assert [s["user_id"] for s in listed.body["items"]] == [gina.user_id]
    assert (await api.get(f"/api/v1/leads/{target}/subscribers", who=w.users["olga"])).status == 404
    bad = await api.post(f"/api/v1/leads/{target}/subscribers", {"user_id": 9999}, who=tom)
    assert bad.status == 422


async def test_subscribers_are_notified_of_every_change(api, world):
    w = world
    olga, tom = w.users["olga"], w.users["tom"]
    target = w.leads["tom-sales-0"]
    await api.post(f"/api/v1/leads/{target}/subscribers", {"user_id": olga.user_id}, who=tom)
    await api.patch(f"/api/v1/leads/{target}", {"price": 777, "custom_fields": {str(w.fields["Notes"]): "new secret"}},
                    who=tom)
    await api.delete(f"/api/v1/leads/{target}", who=tom)
    r = await api.get("/api/v1/notifications", who=olga)
    kinds = [n["type"] for n in r.body["items"]]
    assert kinds == ["lead.deleted", "lead.updated", "lead.subscribed"]
    update = r.body["items"][1]["data"]
    assert update["after"]["price"] == 777 and "custom_fields" in update["changed"]
    assert "new secret" not in r.text  # the value of a custom field never travels to a subscriber
    # The author of a change is not notified of it.
    assert (await api.get("/api/v1/notifications", who=tom)).body["items"] == []
    r = await api.post("/api/v1/notifications/read", {"ids": [r.body["items"][0]["id"]]}, who=olga)
    assert r.body["marked"] == 1
    unread = await api.get("/api/v1/notifications", who=olga, params={"unread": "true"})
    assert len(unread.body["items"]) == 2
    assert (await api.post("/api/v1/notifications/read", {}, who=olga)).body["marked"] == 2


# --- contacts inside leads (rule 6) ---

async def test_contact_without_view_right_is_name_and_avatar(api, world):
    w = world
    tom, maria = w.users["tom"], w.users["maria"]
    r = await api.post("/api/v1/contacts", {"name": "Jane Buyer", "avatar": "https://a/j.png",
                                            "emails": ["jane@buyer.io"], "phones": ["+100"]}, who=tom)
    contact = r.body["id"]
    lead_id = await lead(api, w, "maria", contact_ids=[contact])
    card = await api.get(f"/api/v1/leads/{lead_id}", who=maria)
    assert card.body["contacts"] == [{"name": "Jane Buyer", "avatar": "https://a/j.png", "restricted": True}]
    assert "jane@buyer.io" not in card.text
    assert (await api.get(f"/api/v1/contacts/{contact}", who=maria)).status == 404
    # tom, the contact's owner, sees it whole inside a lead he can see (his G colleague gina likewise).
    shared = await lead(api, w, "tom", contact_ids=[contact])
    full = await api.get(f"/api/v1/leads/{shared}", who=w.users["gina"])
    assert full.body["contacts"][0]["emails"] == ["jane@buyer.io"]
    # Linking a contact one cannot see is refused like an unknown one.
    r = await api.post("/api/v1/leads", {"name": "x", "contact_ids": [contact]}, who=maria)
    assert r.status == 422 and r.body["errors"][0]["path"] == "contact_ids"


# --- field rights (rule 7) ---

async def test_field_rights_hidden_read_and_edit(api, world):
    w = world
    budget, notes, source = (str(w.fields[n]) for n in ("Budget", "Notes", "Source"))
    await set_rights(api, w, "olga", {"leads": {"add": "A", "view": "A", "edit": "M", "export": "M"},
                                       "field_rights": [{"entity": "leads", "field_id": int(notes), "access": "hidden"},
                                                        {"entity": "leads", "field_id": int(budget), "access": "read"}]})
    olga = w.users["olga"]
    mine = w.leads["olga-sales-0"]
    card = await api.get(f"/api/v1/leads/{mine}", who=olga)
    assert card.body["custom_fields"] == {budget: 100}
    assert "secret plan" not in card.text
    listed = await api.get("/api/v1/leads", who=olga)
    assert "secret plan" not in listed.text
    fields = await api.get("/api/v1/leads/custom_fields", who=olga)
    assert {f["id"]: f["access"] for f in fields.body["items"]} == {int(budget): "read", int(source): "edit"}
    exported = await api.get("/api/v1/leads/export", who=olga)
    assert "secret plan" not in exported.text and "Notes" not in exported.text.splitlines()[0]
    # Search never matches a hidden field.
    assert await visible_ids(api, olga, query="secret") == set()
    # read: 403, and nothing changes, not even the writable field sent alongside.
    r = await api.patch(f"/api/v1/leads/{mine}", {"name": "new", "custom_fields": {budget: 5}}, who=olga)
    assert r.status == 403
    after = await api.get(f"/api/v1/leads/{mine}", who=w.admin)
    assert after.body["custom_fields"][budget] == 100 and after.body["name"] != "new"
    # hidden: answered like a field that does not exist.
    r = await api.patch(f"/api/v1/leads/{mine}", {"custom_fields": {notes: "x"}}, who=olga)
    assert r.status == 422
    assert (await api.get(f"/api/v1/leads/{mine}", who=w.admin)).body["custom_fields"][notes] == "secret plan"
    # edit: fine.
    r = await api.patch(f"/api/v1/leads/{mine}", {"custom_fields": {source: "web"}}, who=olga)
    assert r.status == 200 and r.body["custom_fields"][source] == "web"
    # A field right never raises access above the record's: edit on Source, but tom's lead is view-only.
    r = await api.patch(f"/api/v1/leads/{w.leads['tom-sales-0']}", {"custom_fields": {source: "web"}}, who=olga)
    assert r.status == 403


async def test_custom_field_values_are_typed(api, world):
    w = world
    lead_id = w.leads["maria-sales-0"]
    budget, source = str(w.fields["Budget"]), str(w.fields["Source"])
    for bad in ({budget: "100"}, {budget: True}, {source: "fax"}, {"9999": 1}, {"abc": 1}):
        r = await api.patch(f"/api/v1/leads/{lead_id}", {"custom_fields": bad}, who=w.users["maria"])
        assert r.status == 422, bad
        assert r.body["errors"][0]["path"].startswith("custom_fields.")
    r = await api.patch(f"/api/v1/leads/{lead_id}", {"custom_fields": {budget: None}}, who=w.users["maria"])
    assert r.status == 200 and budget not in r.body["custom_fields"]


# --- tasks (rule 10) ---

async def test_task_visibility(api, world):
    w = world
    maria, tom, gina, olga = (w.users[n] for n in ("maria", "tom", "gina", "olga"))
    r = await api.post("/api/v1/tasks", {"text": "call back", "entity_type": "leads",
                                         "entity_id": w.leads["tom-sales-0"], "due_at": "2027-02-01T10:00:00+01:00"},
                       who=tom)
    assert r.status == 201 and r.body["due_at"] == "2027-02-01T09:00:00.000Z"
    task = r.body["id"]
    # Responsible (tom), G task editors in his group (gina), and not maria (M) or olga (outside).
    for who, status in ((tom, 200), (gina, 200), (maria, 404), (olga, 404)):
        assert (await api.get(f"/api/v1/tasks/{task}", who=who)).status == status
    # Someone who can view the attached lead sees the task too.
    await set_rights(api, w, "olga", {"leads": {"view": "A"}})
    assert (await api.get(f"/api/v1/tasks/{task}", who=olga)).status == 200
    assert task in {t["id"] for t in (await api.get("/api/v1/tasks", who=olga)).body["items"]}
    # ...but may not edit it: editing needs the task edit level.
    assert (await api.patch(f"/api/v1/tasks/{task}", {"is_done": True}, who=olga)).status == 403
    r = await api.patch(f"/api/v1/tasks/{task}", {"is_done": True}, who=gina)
    assert r.status == 200 and r.body["is_done"] is True
    assert (await api.delete(f"/api/v1/tasks/{task}", who=gina)).status == 403  # delete D
    listed = await api.get("/api/v1/tasks", who=maria, params={"is_done": "true"})
    assert listed.body["items"] == [] and listed.body["total"] == 0
    assert (await api.delete(f"/api/v1/tasks/{task}", who=tom)).status == 204
    # Tasks for a user one's level does not cover are refused.
    r = await api.post("/api/v1/tasks", {"text": "x", "responsible_user_id": olga.user_id}, who=maria)
    assert r.status == 403
    r = await api.post("/api/v1/tasks", {"text": "x", "entity_type": "leads"}, who=maria)
    assert r.status == 422


async def test_deleting_a_record_detaches_its_tasks(api, world):
    w = world
    maria = w.users["maria"]
    task = (await api.post("/api/v1/tasks", {"text": "t", "entity_type": "leads", "entity_id": w.leads["maria-sales-0"]},
                           who=maria)).body["id"]
    assert (await api.delete(f"/api/v1/leads/{w.leads['maria-sales-0']}", who=maria)).status == 204
    r = await api.get(f"/api/v1/tasks/{task}", who=maria)
    assert r.status == 200 and r.body["entity_type"] is None


# --- export (rule 11) ---

async def test_export_is_exactly_what_the_export_level_covers(api, world):
    w = world
    gina = w.users["gina"]  # view G, edit M, export asked G: stored as M (export <= edit, rule 1)
    r = await api.get("/api/v1/leads/export", who=gina)
    assert r.status == 200 and r.content_type == "text/csv"
    assert "attachment" in r.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert names(w, {int(row["id"]) for row in rows}) == {"gina-sales-0", "gina-sales-1", "gina-partners-0"}
    await set_rights(api, w, "gina", {"leads": {"view": "G", "edit": "G", "export": "G"}})
    r = await api.get("/api/v1/leads/export", who=gina)
    assert {int(row["id"]) for row in csv.DictReader(io.StringIO(r.text))} == await visible_ids(api, gina)
    assert (await api.get("/api/v1/leads/export", who=w.users["nobody"])).status == 403
    # Filters apply; a formula-looking value is written as text.
    await api.patch(f"/api/v1/leads/{w.leads['gina-sales-0']}", {"name": "=HYPERLINK(\"x\")"}, who=gina)
    r = await api.get("/api/v1/leads/export", who=gina, params={"responsible_user_id": str(gina.user_id)})
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 3 and "'=HYPERLINK(\"x\")" in {row["name"] for row in rows}
    logged = await api.rows("SELECT actor_id, data FROM activity WHERE type = 'leads.exported' ORDER BY id")
    assert logged[-1][0] == gina.user_id and json.loads(logged[-1][1])["count"] == 3


async def test_export_under_stage_rights_never_exceeds_stage_edit(api, world):
    w = world
    await set_rights(api, w, "olga", {"leads": {"view": "A", "edit": "A", "export": "A"}, "stage_rights": [
        {"pipeline_id": w.sales["id"], "stage_id": w.stage("sales", 0), "view": "A", "edit": "D", "delete": "D"}]})
    r = await api.get("/api/v1/leads/export", who=w.users["olga"])
    ids = {int(row["id"]) for row in csv.DictReader(io.StringIO(r.text))}
    assert ids == {v for k, v in w.leads.items() if not k.endswith("sales-0")}


# --- explain (rule 15) ---

async def test_explain_names_the_deciding_rule_and_source(api, world):
    w = world

    async def why(user, action, lead_key=None, **extra):
        params = {"user_id": str(w.users[user].user_id if user != "admin" else w.admin.user_id),
                  "entity": "leads", "action": action, **extra}
        if lead_key:
            params["record_id"] = str(w.leads[lead_key])
        r = await api.get("/api/v1/access/explain", who=w.admin, params=params)
        assert r.status == 200, r.body
        return r.body

    assert (await why("admin", "delete", "tom-sales-0"))["rule"] == "admin"
    e = await why("maria", "view", "tom-sales-0")
    assert e["allowed"] is False and e["rule"] == "lead_level" and e["source"] == f"role Agent (#{w.roles['agent']})"
    e = await why("nobody", "view", "tom-sales-0")  # no role, no own rights, no group: no source (docs/rules.md)
    assert (e["allowed"], e["rule"], e["source"], e["sources"]) == (False, "no_rights", None, [])
    await set_rights(api, w, "olga", {"leads": {"view": "A"}, "pipeline_access": {str(w.partners["id"]): False},
                                       "stage_rights": [{"pipeline_id": w.sales["id"], "stage_id": w.stage("sales", 1),
                                                         "view": "M", "edit": "D", "delete": "D"}]})
    assert (await why("olga", "view", "tom-partners-0"))["rule"] == "pipeline_access"
    e = await why("olga", "view", "tom-sales-1")
    assert (e["allowed"], e["rule"], e["source"]) == (False, "stage_right", "own rights")
    await api.post(f"/api/v1/leads/{w.leads['tom-sales-1']}/subscribers", {"user_id": w.users["olga"].user_id},
                   who=w.admin)
    e = await why("olga", "view", "tom-sales-1")
    assert (e["allowed"], e["rule"]) == (True, "subscription")
    assert (await why("olga", "edit", "tom-sales-1"))["allowed"] is False
    wide = await _role(api, w.admin, "Wide", {"leads": {"view": "A"}})
    await api.patch(f"/api/v1/groups/{w.group_id}", {"role_id": wide}, who=w.admin)
    e = await why("maria", "view", "tom-sales-0")
    assert (e["allowed"], e["source"]) == (True, f"role Wide (#{wide}) via group Sales team (#{w.group_id})")
    assert e["source_detail"] == {"kind": "group_role", "role_id": wide, "role": "Wide", "group_id": w.group_id,
                                  "group": "Sales team", "label": e["source"]}
    assert (await why("maria", "add", pipeline_id=str(w.sales["id"])))["allowed"] is True
    r = await api.get("/api/v1/access/explain", who=w.admin, params={"user_id": str(w.users["gina"].user_id),
                                                                    "entity": "contacts", "action": "view",
                                                                    "record_id": "999"})
    assert r.status == 404
    r = await api.get("/api/v1/access/explain", who=w.users["gina"], params={"user_id": "1", "entity": "leads",
                                                                            "action": "view", "record_id": "1"})
    assert r.status == 403


# --- bad input: a clear 4xx and nothing changed ---

@pytest.mark.parametrize("path,body", [
    ("/api/v1/leads", {"name": "x", "price": "5"}),
    ("/api/v1/leads", {"name": "x", "stage_id": 99999}),
    ("/api/v1/leads", {"name": "x", "pipeline_id": 99999}),
    ("/api/v1/leads", {"name": "x", "colour": "red"}),
    ("/api/v1/leads", {"name": ""}),
    ("/api/v1/leads", {"name": "x", "price": -1}),
    ("/api/v1/leads", {"name": "x", "responsible_user_id": 99999}),
    ("/api/v1/leads", {"name": "x", "company_id": 99999}),
    ("/api/v1/contacts", {"name": "x", "emails": "a@b.c"}),
    ("/api/v1/tasks", {"text": "x", "due_at": "tomorrow"}),
    ("/api/v1/tasks", {"text": "x", "due_at": "2027-01-01T00:00:00"}),
    ("/api/v1/tasks", {"text": "x", "due_at": "9999-12-31T23:59:59-23:59"}),   # year 10000 in UTC (was a 500)
    ("/api/v1/tasks", {"text": "x", "entity_type": "leads", "entity_id": 99999}),
])
async def test_bad_writes_are_422_and_change_nothing(api, world, path, body):
    before = await api.rows("SELECT (SELECT count(*) FROM leads), (SELECT count(*) FROM contacts),"
                            " (SELECT count(*) FROM tasks), (SELECT count(*) FROM activity)")
    r = await api.post(path, body, who=world.admin)
    assert r.status == 422 and r.content_type == "application/problem+json", r.body
    assert r.body["errors"]
    assert await api.rows("SELECT (SELECT count(*) FROM leads), (SELECT count(*) FROM contacts),"
                          " (SELECT count(*) FROM tasks), (SELECT count(*) FROM activity)") == before


async def test_bad_ids_and_queries(api, world):
    w = world
    for path in ("/api/v1/leads/abc", "/api/v1/leads/-1", "/api/v1/contacts/1.5", "/api/v1/tasks/0x1",
                 "/api/v1/leads/\u00b2"):  # "²".isdigit() is true, int("²") fails (was a 500)
        r = await api.get(path, who=w.admin)
        assert r.status == 422 and r.content_type == "application/problem+json", path
    for params in ({"limit": "251"}, {"cursor": "5", "page": "2"}, {"stage_id": "x"}, {"updated_since": "yesterday"},
                   {"sort": "name"}, {"updated_since": "0001-01-01T00:00:00+14:00"}):
        r = await api.get("/api/v1/leads", who=w.admin, params=params)
        assert r.status == 422, params
    r = await api.patch(f"/api/v1/leads/{w.leads['maria-sales-0']}", {"stage_id": w.stage("partners", 0),
                                                                     "pipeline_id": w.sales["id"]}, who=w.admin)
    assert r.status == 422 and r.body["errors"][0]["path"] == "stage_id"
    r = await api.patch(f"/api/v1/leads/{w.leads['maria-sales-0']}", {"name": None}, who=w.admin)
    assert r.status == 422


# --- lists: filters, cursor, totals ---

async def test_lists_filter_and_page_by_cursor(api, world):
    w = world
    gina = w.users["gina"]
    # Expected from the world, not the endpoint: gina (G) sees her group's leads (maria, tom, her own).
    every = sorted((w.leads[f"{o}-{p}"] for o in ("maria", "tom", "gina")
                    for p in ("sales-0", "sales-1", "partners-0")), reverse=True)
    seen, cursor = [], None
    while True:
        params = {"limit": "4", **({"cursor": str(cursor)} if cursor else {})}
        r = await api.get("/api/v1/leads", who=gina, params=params)
        seen += [i["id"] for i in r.body["items"]]
        if cursor:
            assert "total" not in r.body
        cursor = r.body["next_cursor"]
        if cursor is None:
            break
    assert seen == every
    r = await api.get("/api/v1/leads", who=gina, params={"limit": "4", "page": "2"})
    assert [i["id"] for i in r.body["items"]] == every[4:8] and r.body["total"] == 9
    only_tom = await visible_ids(api, gina, responsible_user_id=str(w.users["tom"].user_id))
    assert names(w, only_tom) == {"tom-sales-0", "tom-sales-1", "tom-partners-0"}
    assert names(w, await visible_ids(api, gina, pipeline_id=str(w.partners["id"]))) == {
        "maria-partners-0", "tom-partners-0", "gina-partners-0"}
    assert names(w, await visible_ids(api, gina, query="tom sales")) == {"tom-sales-0", "tom-sales-1"}
    assert await visible_ids(api, gina, query="%") == set()  # LIKE wildcards are literal
    api.clock.advance(60)
    await api.patch(f"/api/v1/leads/{w.leads['tom-sales-1']}", {"price": 3}, who=w.admin)
    since = "2027-01-15T08:00:30Z"
    assert names(w, await visible_ids(api, gina, updated_since=since)) == {"tom-sales-1"}


# --- contacts and companies CRUD, export ---

async def test_contacts_and_companies(api, world):
    w = world
    maria, gina = w.users["maria"], w.users["gina"]
    r = await api.post("/api/v1/companies", {"name": "Acme"}, who=maria)
    assert r.status == 201
    company = r.body["id"]
    r = await api.post("/api/v1/contacts", {"name": "Bob", "emails": ["bob@acme.io"], "company_id": company}, who=maria)
    assert r.status == 201 and r.body["company_id"] == company
    contact = r.body["id"]
    # gina: contacts G (sees maria's), companies D (cannot see Acme at all).
    assert (await api.get(f"/api/v1/contacts/{contact}", who=gina)).status == 200
    assert (await api.get(f"/api/v1/companies/{company}", who=gina)).status == 404
    lead_id = await lead(api, w, "gina", company_id=company, contact_ids=[contact])
    card = await api.get(f"/api/v1/leads/{lead_id}", who=gina)
    assert card.body["company"] == {"name": "Acme", "restricted": True}
    r = await api.patch(f"/api/v1/contacts/{contact}", {"phones": ["+1 555"]}, who=gina)
    assert r.status == 200 and r.body["phones"] == ["+1 555"]
    assert (await api.patch(f"/api/v1/companies/{company}", {"name": "Acme 2"}, who=maria)).body["name"] == "Acme 2"
    found = await api.get("/api/v1/contacts", who=gina, params={"query": "bob@acme"})
    assert [c["id"] for c in found.body["items"]] == [contact]
    assert (await api.get("/api/v1/companies", who=gina)).body["total"] == 0
    exported = await api.get("/api/v1/contacts/export", who=gina)
    assert "bob@acme.io" in exported.text
    assert (await api.get("/api/v1/companies/export", who=maria)).status == 403  # export D
    r = await api.get("/api/v1/companies/export", who=w.admin)
    assert "Acme 2" in r.text
    assert (await api.delete(f"/api/v1/contacts/{contact}", who=gina)).status == 403  # delete D
    assert (await api.delete(f"/api/v1/contacts/{contact}", who=maria)).status == 204
    assert (await api.delete(f"/api/v1/companies/{company}", who=w.admin)).status == 204
    assert (await api.get(f"/api/v1/leads/{lead_id}", who=gina)).body["company"] is None


# --- activity entries with before/after, hidden values masked ---

async def test_record_changes_are_logged_with_hidden_values_masked(api, world):
    w = world
    await set_rights(api, w, "olga", {"leads": {"add": "A", "view": "A", "edit": "A", "delete": "A"},
                                       "field_rights": [{"entity": "leads", "field_id": w.fields["Notes"],
                                                         "access": "hidden"}]})
    olga = w.users["olga"]
    target = w.leads["olga-sales-0"]
    await api.patch(f"/api/v1/leads/{target}", {"price": 9}, who=olga)
    await api.delete(f"/api/v1/leads/{target}", who=olga)
    logged = await api.rows("SELECT type, actor_id, data FROM activity WHERE object_type = 'lead' AND object_id = ?"
                            " ORDER BY id", (target,))
    kinds = [t for t, _, _ in logged]
    assert kinds == ["lead.created", "lead.updated", "lead.deleted"]
    update = json.loads(logged[1][2])
    assert update == {"before": {"price": 0}, "after": {"price": 9}}
    deleted = json.loads(logged[2][2])["before"]
    assert deleted["custom_fields"][str(w.fields["Notes"])] == "***"
    assert deleted["custom_fields"][str(w.fields["Budget"])] == 100
    assert logged[2][1] == olga.user_id


# --- pipelines, stages and field definitions (admin) ---

async def test_pipeline_and_field_administration(api, world):
    w = world
    maria = w.users["maria"]
    assert (await api.post("/api/v1/pipelines", {"name": "X", "stages": ["a"]}, who=maria)).status == 403
    r = await api.post("/api/v1/pipelines", {"name": "Empty", "stages": ["One"]}, who=w.admin)
    pid = r.body["id"]
    r = await api.post(f"/api/v1/pipelines/{pid}/stages", {"name": "Two"}, who=w.admin)
    assert r.status == 201 and r.body["sort"] == 1
    two = r.body["id"]
    r = await api.patch(f"/api/v1/pipelines/{pid}/stages/{two}", {"name": "Second", "sort": 0}, who=w.admin)
    assert r.body["name"] == "Second"
    stages = await api.get(f"/api/v1/pipelines/{pid}/stages", who=maria)
    assert [s["name"] for s in stages.body["items"]] == ["One", "Second"]  # ties keep creation order
    assert (await api.patch(f"/api/v1/pipelines/{pid}", {"name": "Renamed"}, who=w.admin)).body["name"] == "Renamed"
    # A stage or pipeline with leads cannot go; an empty one can.
    assert (await api.delete(f"/api/v1/pipelines/{w.sales['id']}", who=w.admin)).status == 409
    busy = w.stage("sales", 0)
    assert (await api.delete(f"/api/v1/pipelines/{w.sales['id']}/stages/{busy}", who=w.admin)).status == 409
    assert (await api.delete(f"/api/v1/pipelines/{pid}/stages/{two}", who=w.admin)).status == 204
    assert (await api.delete(f"/api/v1/pipelines/{pid}/stages/{w.stage('sales', 2)}", who=w.admin)).status == 404
    assert (await api.delete(f"/api/v1/pipelines/{pid}", who=w.admin)).status == 204
    assert (await api.get(f"/api/v1/pipelines/{pid}", who=w.admin)).status == 404
    # Fields: select needs options; renaming works; deleting removes the values.
    r = await api.post("/api/v1/contacts/custom_fields", {"name": "Tier", "type": "select"}, who=w.admin)
    assert r.status == 422
    r = await api.post("/api/v1/companies/custom_fields", {"name": "Size", "type": "select", "options": ["S", "L"]},
                       who=w.admin)
    size = r.body["id"]
    r = await api.patch(f"/api/v1/companies/custom_fields/{size}", {"options": ["S", "M", "L"]}, who=w.admin)
    assert r.body["options"] == ["S", "M", "L"]
    company = (await api.post("/api/v1/companies", {"name": "Big", "custom_fields": {str(size): "L"}},
                              who=w.admin)).body["id"]
    budget = w.fields["Budget"]
    assert (await api.delete(f"/api/v1/leads/custom_fields/{budget}", who=maria)).status == 403
    assert (await api.delete(f"/api/v1/companies/custom_fields/{size}", who=w.admin)).status == 204
    assert (await api.get(f"/api/v1/companies/{company}", who=w.admin)).body["custom_fields"] == {}
    assert (await api.get("/api/v1/contacts/custom_fields", who=maria)).body["items"] == []


@pytest.mark.parametrize("entity", ["leads", "contacts", "companies"])
async def test_custom_field_definitions_per_entity(api, admin, entity):
    r = await api.post(f"/api/v1/{entity}/custom_fields", {"name": "Tier", "type": "text"}, who=admin)
    assert r.status == 201 and r.body["access"] == "edit"
    fid = r.body["id"]
    r = await api.patch(f"/api/v1/{entity}/custom_fields/{fid}", {"name": "Level", "sort": 3}, who=admin)
    assert r.status == 200 and r.body["name"] == "Level"
    assert (await api.patch(f"/api/v1/{entity}/custom_fields/{fid}", {"options": ["a"]}, who=admin)).status == 409
    assert (await api.patch(f"/api/v1/{entity}/custom_fields/{fid}", {"type": "date"}, who=admin)).status == 422
    listed = await api.get(f"/api/v1/{entity}/custom_fields", who=admin)
    assert [f["name"] for f in listed.body["items"]] == ["Level"]
    assert (await api.delete(f"/api/v1/{entity}/custom_fields/{fid}", who=admin)).status == 204
    assert (await api.delete(f"/api/v1/{entity}/custom_fields/{fid}", who=admin)).status == 404
    assert (await api.get(f"/api/v1/{entity}/custom_fields", who=admin)).body["items"] == []
