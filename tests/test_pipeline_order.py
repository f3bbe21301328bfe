"""A new pipeline goes last unless the admin gives it a place (issue 13 point 21): adding one must not
silently become the default pipeline for new leads."""

from __future__ import annotations


async def test_a_new_pipeline_goes_last_and_does_not_become_the_default(api, admin):
    first = (await api.post("/api/v1/pipelines", {"name": "Sales", "stages": ["In"]}, who=admin)).body
    second = await api.post("/api/v1/pipelines", {"name": "Later", "stages": ["New"]}, who=admin)
    assert second.status == 201, second.body
    assert second.body["sort"] == first["sort"] + 1
    r = await api.get("/api/v1/pipelines", who=admin)
    assert [p["name"] for p in r.body["items"]] == ["Sales", "Later"]
    # A lead without a pipeline still lands in the first one.
    r = await api.post("/api/v1/leads", {"name": "Deal"}, who=admin)
    assert r.status == 201 and r.body["pipeline_id"] == first["id"], r.body


async def test_a_given_sort_is_kept(api, admin):
    await api.post("/api/v1/pipelines", {"name": "Sales", "sort": 5, "stages": ["In"]}, who=admin)
    r = await api.post("/api/v1/pipelines", {"name": "Front", "sort": 0, "stages": ["New"]}, who=admin)
    assert r.status == 201 and r.body["sort"] == 0
    r = await api.post("/api/v1/pipelines", {"name": "Back", "stages": ["New"]}, who=admin)
    assert r.body["sort"] == 6
    r = await api.get("/api/v1/pipelines", who=admin)
    assert [p["name"] for p in r.body["items"]] == ["Front", "Sales", "Back"]


async def test_a_bad_sort_is_refused_and_changes_nothing(api, admin):
    r = await api.post("/api/v1/pipelines", {"name": "Odd", "sort": "first", "stages": ["New"]}, who=admin)
    assert r.status == 422 and r.content_type == "application/problem+json"
    assert (await api.get("/api/v1/pipelines", who=admin)).body["items"] == []
