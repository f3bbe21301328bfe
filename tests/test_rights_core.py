"""Pure tests of the rights core (SPEC section 2, rules 1 and 2) and of the rights JSON schema.

No server, no database: ``auth.rights`` and ``auth.rights_schema`` are exercised directly, and every
expectation is computed by a reference written here, independently of the code under test.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from auth.policy import Subject
from auth.rights import (
    ENTITIES,
    NO_RIGHTS,
    EntityRights,
    Rights,
    Source,
    StageRight,
    TaskRights,
    effective,
)
from auth.rights_schema import RightsIn

# Independent copies of the spec's vocabulary (deliberately not imported from the code under test).
CODES = ["D", "M", "G", "A"]  # weakest first
D, M, G, A = 0, 1, 2, 3
ACCESS = ["hidden", "read", "edit"]
HIDDEN, READ, EDIT = 0, 1, 2
ENTITY_NAMES = ["leads", "contacts", "companies"]
ENT_ACTIONS = ["add", "view", "edit", "delete", "export"]

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------------------------------------------
# Rule 1: interrelation clamping
# --------------------------------------------------------------------------------------------------

# "lower <= upper" pairs of SPEC rule 1.
ENTITY_CONSTRAINTS = [("edit", "view"), ("delete", "edit"), ("export", "edit")]
STAGE_CONSTRAINTS = [("edit", "view"), ("delete", "edit")]
TASK_CONSTRAINTS = [("delete", "edit")]


def ref_clamp(levels: dict[str, int], constraints: list[tuple[str, str]]) -> dict[str, int]:
    """Reference clamp: lower any violating side until no constraint is broken (a fixpoint).

    The result is the greatest assignment that is pointwise <= the request and satisfies every
    constraint, whatever order the constraints are applied in.
    """
    out = dict(levels)
    changed = True
    while changed:
        changed = False
        for lower, upper in constraints:
            if out[lower] > out[upper]:
                out[lower] = out[upper]
                changed = True
    return out


def brute_force_greatest(levels: dict[str, int], constraints: list[tuple[str, str]]) -> dict[str, int]:
    """A second reference: among all valid assignments below the request, the pointwise greatest."""
    names = list(levels)
    best = None
    for combo in itertools.product(range(4), repeat=len(names)):
        cand = dict(zip(names, combo))
        if any(cand[n] > levels[n] for n in names):
            continue
        if any(cand[lo] > cand[up] for lo, up in constraints):
            continue
        if best is None or sum(cand.values()) > sum(best.values()):
            best = cand
    # the greatest must dominate every other valid candidate
    return best


ALL_4 = list(itertools.product(range(4), repeat=4))


@pytest.mark.parametrize("view,edit,delete,export", ALL_4, ids=["".join(CODES[i] for i in c) for c in ALL_4])
def test_entity_clamped_matches_reference_for_every_combination(view, edit, delete, export):
    asked = {"view": view, "edit": edit, "delete": delete, "export": export}
    expected = ref_clamp(asked, ENTITY_CONSTRAINTS)
    for add in range(4):
        got = EntityRights(add, view, edit, delete, export).clamped()
        assert (got.view, got.edit, got.delete, got.export) == (
            expected["view"], expected["edit"], expected["delete"], expected["export"]
        ), f"asked {asked}"
        # add is A or D only: A stays A, anything else becomes D
        assert got.add == (A if add == A else D)
        # the clamped object obeys every pair of the chain
        assert got.edit <= got.view
        assert got.delete <= got.edit
        assert got.export <= got.edit
        # clamping never raises a level, and view is never changed
        assert got.view == view and got.edit <= edit and got.delete <= delete and got.export <= export
        # clamping is idempotent
        assert got.clamped() == got


def test_reference_clamp_agrees_with_brute_force():
    # Guard the reference itself, so a wrong reference cannot hide a wrong implementation.
    for view, edit, delete, export in ALL_4:
        asked = {"view": view, "edit": edit, "delete": delete, "export": export}
        assert ref_clamp(asked, ENTITY_CONSTRAINTS) == brute_force_greatest(asked, ENTITY_CONSTRAINTS)


@pytest.mark.parametrize(
    "asked,expected",
    [
        # edit <= view
        ((A, A, M, D, D), (A, A, M, D, D)),
        ((A, M, A, D, D), (A, M, M, D, D)),
        ((D, G, A, D, D), (D, G, G, D, D)),
        # delete <= edit
        ((D, A, G, A, D), (D, A, G, G, D)),
        ((D, A, D, M, D), (D, A, D, D, D)),
        # export <= edit
        ((D, A, M, D, A), (D, A, M, D, M)),
        ((D, A, D, D, G), (D, A, D, D, D)),
        # transitive: view D forces edit, delete and export to D
        ((A, D, A, A, A), (A, D, D, D, D)),
        # edit lowered by view, then delete and export follow the *clamped* edit
        ((D, M, A, A, A), (D, M, M, M, M)),
        ((D, G, A, A, M), (D, G, G, G, M)),
        # add is A or D only
        ((M, A, A, A, A), (D, A, A, A, A)),
        ((G, A, A, A, A), (D, A, A, A, A)),
    ],
)
def test_entity_clamped_named_cases(asked, expected):
    assert EntityRights(*asked).clamped() == EntityRights(*expected)


ALL_3 = list(itertools.product(range(4), repeat=3))


@pytest.mark.parametrize("view,edit,delete", ALL_3, ids=["".join(CODES[i] for i in c) for c in ALL_3])
def test_stage_right_clamped_matches_reference(view, edit, delete):
    expected = ref_clamp({"view": view, "edit": edit, "delete": delete}, STAGE_CONSTRAINTS)
    got = StageRight(view, edit, delete).clamped()
    assert (got.view, got.edit, got.delete) == (expected["view"], expected["edit"], expected["delete"])


def test_stage_right_transitive_clamp():
    assert StageRight(D, A, A).clamped() == StageRight(D, D, D)
    assert StageRight(M, A, A).clamped() == StageRight(M, M, M)


@pytest.mark.parametrize("edit,delete", list(itertools.product(range(4), repeat=2)))
def test_task_rights_clamped(edit, delete):
    got = TaskRights(edit, delete).clamped()
    assert got.edit == edit
    assert got.delete == min(delete, edit)


def test_rights_clamped_clamps_every_part_and_keeps_the_rest():
    r = Rights(
        leads=EntityRights(G, M, A, A, A),
        contacts=EntityRights(A, D, A, G, M),
        companies=EntityRights(D, A, G, A, A),
        tasks=TaskRights(M, A),
        mail_access=True,
        files_access=False,
        stage_rights={(1, 3): StageRight(M, A, G), (2, 4): StageRight(A, G, M)},
        pipeline_access={1: True, 2: False},
        field_rights={("leads", 7): HIDDEN, ("contacts", 2): READ},
    )
    c = r.clamped()
    assert c.leads == EntityRights(D, M, M, M, M)
    assert c.contacts == EntityRights(A, D, D, D, D)
    assert c.companies == EntityRights(D, A, G, G, G)
    assert c.tasks == TaskRights(M, M)
    assert dict(c.stage_rights) == {(1, 3): StageRight(M, M, M), (2, 4): StageRight(A, G, M)}
    assert (c.mail_access, c.files_access) == (True, False)
    assert dict(c.pipeline_access) == {1: True, 2: False}
    assert dict(c.field_rights) == {("leads", 7): HIDDEN, ("contacts", 2): READ}


# --------------------------------------------------------------------------------------------------
# JSON shape: to_json / from_json
# --------------------------------------------------------------------------------------------------

level_code = st.sampled_from(CODES)
ids = st.integers(min_value=1, max_value=40)


def _optional_keys(required: dict[str, Any], optional: dict[str, Any]):
    return st.fixed_dictionaries(required, optional=optional)


entity_json = _optional_keys({}, {"add": st.sampled_from(["A", "D"]), "view": level_code, "edit": level_code,
                                  "delete": level_code, "export": level_code})
tasks_json = _optional_keys({}, {"edit": level_code, "delete": level_code})
stage_json = _optional_keys({"pipeline_id": ids, "stage_id": ids},
                            {"view": level_code, "edit": level_code, "delete": level_code})
field_json = st.fixed_dictionaries({"entity": st.sampled_from(ENTITY_NAMES), "field_id": ids,
                                    "access": st.sampled_from(ACCESS)})

rights_json = st.fixed_dictionaries(
    {},
    optional={
        "leads": entity_json,
        "contacts": entity_json,
        "companies": entity_json,
        "tasks": tasks_json,
        "mail_access": st.booleans(),
        "files_access": st.booleans(),
        "stage_rights": st.lists(stage_json, max_size=5,
                                 unique_by=lambda s: (s["pipeline_id"], s["stage_id"])),
        "pipeline_access": st.dictionaries(ids.map(str), st.booleans(), max_size=5),
        "field_rights": st.lists(field_json, max_size=5, unique_by=lambda f: (f["entity"], f["field_id"])),
    },
)


def normalized(data: dict[str, Any]) -> dict[str, Any]:
    """Reference: the full JSON object a partial one stands for (missing = denied), in a canonical order."""
    out: dict[str, Any] = {}
    for name in ENTITY_NAMES:
        raw = data.get(name, {})
        out[name] = {a: raw.get(a, "D") for a in ENT_ACTIONS}
    tasks = data.get("tasks", {})
    out["tasks"] = {a: tasks.get(a, "D") for a in ("edit", "delete")}
    out["mail_access"] = data.get("mail_access", False)
    out["files_access"] = data.get("files_access", False)
    out["stage_rights"] = sorted(
        ({"pipeline_id": s["pipeline_id"], "stage_id": s["stage_id"],
          **{a: s.get(a, "D") for a in ("view", "edit", "delete")}} for s in data.get("stage_rights", [])),
        key=lambda s: (s["pipeline_id"], s["stage_id"]),
    )
    out["pipeline_access"] = dict(sorted(data.get("pipeline_access", {}).items(), key=lambda kv: int(kv[0])))
    out["field_rights"] = sorted(data.get("field_rights", []), key=lambda f: (f["entity"], f["field_id"]))
    return out


def canonical(data: dict[str, Any]) -> dict[str, Any]:
    """Order-independent view of a full rights JSON object (lists become sets of tuples)."""
    out = dict(data)
    out["stage_rights"] = sorted(tuple(sorted(s.items())) for s in data["stage_rights"])
    out["field_rights"] = sorted(tuple(sorted(f.items())) for f in data["field_rights"])
    return out


@PROPERTY
@given(rights_json)
def test_json_round_trip(data):
    # the strategy produces valid rights JSON
    RightsIn.model_validate(data)
    r = Rights.from_json(data)
    out = r.to_json()
    assert canonical(out) == canonical(normalized(data))
    # output is itself valid, complete input, and reads back to the same object
    RightsIn.model_validate(out)
    assert set(out) == {"leads", "contacts", "companies", "tasks", "mail_access", "files_access",
                        "stage_rights", "pipeline_access", "field_rights"}
    assert Rights.from_json(out) == r
    assert Rights.from_json(out).to_json() == out
    # what the schema model dumps (defaults filled) means the same as the raw input
    assert Rights.from_json(RightsIn.model_validate(data).model_dump()) == r


def test_from_json_reads_the_spec_example():
    data = {
        "leads": {"add": "A", "view": "G", "edit": "M", "delete": "D", "export": "D"},
        "contacts": {"add": "D", "view": "A", "edit": "A", "delete": "G", "export": "M"},
        "companies": {"add": "D", "view": "M", "edit": "M", "delete": "M", "export": "D"},
        "tasks": {"edit": "A", "delete": "M"},
        "mail_access": True, "files_access": False,
        "stage_rights": [{"pipeline_id": 1, "stage_id": 3, "view": "M", "edit": "M", "delete": "D"}],
        "pipeline_access": {"1": True, "2": False},
        "field_rights": [{"entity": "leads", "field_id": 7, "access": "hidden"}],
    }
    r = Rights.from_json(data)
    assert r.leads == EntityRights(A, G, M, D, D)
    assert r.contacts == EntityRights(D, A, A, G, M)
    assert r.companies == EntityRights(D, M, M, M, D)
    assert r.tasks == TaskRights(A, M)
    assert r.mail_access is True and r.files_access is False
    assert dict(r.stage_rights) == {(1, 3): StageRight(M, M, D)}
    assert dict(r.pipeline_access) == {1: True, 2: False}
    assert dict(r.field_rights) == {("leads", 7): HIDDEN}
    assert r.to_json() == data


def test_from_json_missing_keys_mean_denied():
    r = Rights.from_json({})
    for name in ENTITY_NAMES:
        assert r.entity(name) == EntityRights(D, D, D, D, D)
    assert r.tasks == TaskRights(D, D)
    assert r.mail_access is False and r.files_access is False
    assert dict(r.stage_rights) == {} and dict(r.pipeline_access) == {} and dict(r.field_rights) == {}
    assert r == NO_RIGHTS


def test_from_json_missing_actions_inside_a_section_are_denied():
    r = Rights.from_json({
        "leads": {"view": "A"},
        "tasks": {"edit": "G"},
        "stage_rights": [{"pipeline_id": 2, "stage_id": 5, "view": "G"}],
        "mail_access": True,
    })
    assert r.leads == EntityRights(D, A, D, D, D)
    assert r.contacts == EntityRights(D, D, D, D, D)
    assert r.tasks == TaskRights(G, D)
    assert dict(r.stage_rights) == {(2, 5): StageRight(G, D, D)}
    assert r.mail_access is True and r.files_access is False


def test_rights_defaults_for_missing_pipeline_and_field():
    r = Rights.from_json({"pipeline_access": {"2": False}, "field_rights": [
        {"entity": "leads", "field_id": 7, "access": "read"}]})
    assert r.pipeline_allowed(2) is False
    assert r.pipeline_allowed(3) is True  # a pipeline missing from pipeline_access is allowed
    assert r.field_access("leads", 7) == READ
    assert r.field_access("leads", 8) == EDIT  # a field missing from field_rights is edit
    assert r.field_access("contacts", 7) == EDIT


# --------------------------------------------------------------------------------------------------
# Rule 2: effective rights and conflicts
# --------------------------------------------------------------------------------------------------

lvl = st.integers(min_value=0, max_value=3)
small_id = st.integers(min_value=1, max_value=3)

entity_rights = st.builds(EntityRights, st.sampled_from([D, A]), lvl, lvl, lvl, lvl).map(lambda e: e.clamped())
stage_right = st.builds(StageRight, lvl, lvl, lvl).map(lambda s: s.clamped())

rights_objects = st.builds(
    Rights,
    leads=entity_rights,
    contacts=entity_rights,
    companies=entity_rights,
    tasks=st.builds(TaskRights, lvl, lvl).map(lambda t: t.clamped()),
    mail_access=st.booleans(),
    files_access=st.booleans(),
    stage_rights=st.dictionaries(st.tuples(small_id, small_id), stage_right, max_size=3),
    pipeline_access=st.dictionaries(small_id, st.booleans(), max_size=3),
    field_rights=st.dictionaries(st.tuples(st.sampled_from(ENTITY_NAMES), small_id),
                                 st.integers(min_value=0, max_value=2), max_size=3),
)


@st.composite
def source_lists(draw, min_size=0, max_size=4):
    n = draw(st.integers(min_value=min_size, max_value=max_size))
    out = []
    for i in range(n):
        kind = "own" if i == 0 and draw(st.booleans()) else draw(st.sampled_from(["role", "group_role"]))
        named = kind != "own" and draw(st.booleans())
        out.append(Source(kind, draw(rights_objects), role_id=100 + i,
                          group_id=200 + i if kind == "group_role" else None,
                          role_name=f"Role {i}" if named else None,
                          group_name=f"Team {i}" if named and kind == "group_role" else None))
    return out


def ref_label(s: Source) -> str:
    """Sources are named by their role's and group's names, each with its id (ids alone when unnamed)."""
    if s.kind == "own":
        return "own rights"
    role = f"role {s.role_name} (#{s.role_id})" if s.role_name else f"role #{s.role_id}"
    if s.kind == "role":
        return role
    group = f"group {s.group_name} (#{s.group_id})" if s.group_name else f"group #{s.group_id}"
    return f"{role} via {group}"


def ref_paths(sources: list[Source]) -> dict[str, list[Any]]:
    """Reference: every comparable path with the value each source gives it (displayed as JSON would)."""
    stage_keys = {k for s in sources for k in s.rights.stage_rights}
    pipelines = {p for s in sources for p in s.rights.pipeline_access}
    fields = {k for s in sources for k in s.rights.field_rights}
    paths: dict[str, list[Any]] = {}
    for s in sources:
        r = s.rights
        vals: dict[str, Any] = {}
        for name in ENTITY_NAMES:
            e = getattr(r, name)
            for a in ENT_ACTIONS:
                vals[f"{name}.{a}"] = CODES[getattr(e, a)]
        vals["tasks.edit"] = CODES[r.tasks.edit]
        vals["tasks.delete"] = CODES[r.tasks.delete]
        vals["mail_access"] = r.mail_access
        vals["files_access"] = r.files_access
        for p in pipelines:
            vals[f"pipeline_access.{p}"] = r.pipeline_access.get(p, True)  # missing = allowed
        for (p, st_id) in stage_keys:
            own = r.stage_rights.get((p, st_id))
            for a in ("view", "edit", "delete"):
                # a source without an entry for this stage decides by its lead level
                level = getattr(own, a) if own is not None else getattr(r.leads, a)
                vals[f"stage_rights.{p}.{st_id}.{a}"] = CODES[level]
        for (e, f) in fields:
            vals[f"field_rights.{e}.{f}"] = ACCESS[r.field_rights.get((e, f), EDIT)]  # missing = edit
        for k, v in vals.items():
            paths.setdefault(k, []).append(v)
    return paths


def ref_best(path: str, values: list[Any]) -> Any:
    if isinstance(values[0], bool):
        return any(values)
    if path.startswith("field_rights."):
        return ACCESS[max(ACCESS.index(v) for v in values)]
    return CODES[max(CODES.index(v) for v in values)]


def ref_effective_json(sources: list[Source]) -> dict[str, Any]:
    """Reference merged rights, as the JSON shape."""
    if not sources:
        return normalized({})
    paths = ref_paths(sources)
    best = {p: ref_best(p, v) for p, v in paths.items()}
    out: dict[str, Any] = {}
    for name in ENTITY_NAMES:
        out[name] = {a: best[f"{name}.{a}"] for a in ENT_ACTIONS}
    out["tasks"] = {"edit": best["tasks.edit"], "delete": best["tasks.delete"]}
    out["mail_access"] = best["mail_access"]
    out["files_access"] = best["files_access"]
    stage_keys = sorted({k for s in sources for k in s.rights.stage_rights})
    out["stage_rights"] = [
        {"pipeline_id": p, "stage_id": sid, **{a: best[f"stage_rights.{p}.{sid}.{a}"]
                                              for a in ("view", "edit", "delete")}}
        for p, sid in stage_keys
    ]
    pipelines = sorted({p for s in sources for p in s.rights.pipeline_access})
    out["pipeline_access"] = {str(p): best[f"pipeline_access.{p}"] for p in pipelines}
    fields = sorted({k for s in sources for k in s.rights.field_rights})
    out["field_rights"] = [{"entity": e, "field_id": f, "access": best[f"field_rights.{e}.{f}"]}
                           for e, f in fields]
    return out


def ref_conflicts(sources: list[Source]) -> dict[str, dict[str, Any]]:
    if len(sources) < 2:
        return {}
    out = {}
    for path, values in ref_paths(sources).items():
        if len(set(values)) > 1:
            out[path] = {
                "path": path,
                "effective": ref_best(path, values),
                "values": [{"source": ref_label(s), "value": v} for s, v in zip(sources, values)],
            }
    return out


@PROPERTY
@given(source_lists())
def test_effective_matches_reference(sources):
    eff = effective(sources)
    assert canonical(eff.rights.to_json()) == canonical(ref_effective_json(sources))
    assert eff.sources == tuple(sources)
    got = {c["path"]: c for c in eff.conflicts}
    assert len(got) == len(eff.conflicts), "a path is listed twice"
    assert got == ref_conflicts(sources)


@PROPERTY
@given(source_lists(min_size=1, max_size=4), st.randoms(use_true_random=False))
def test_effective_rights_do_not_depend_on_source_order(sources, rnd):
    shuffled = list(sources)
    rnd.shuffle(shuffled)
    assert effective(shuffled).rights == effective(sources).rights
    assert {c["path"] for c in effective(shuffled).conflicts} == {c["path"] for c in effective(sources).conflicts}


@PROPERTY
@given(source_lists(min_size=1, max_size=4))
def test_effective_is_never_below_any_source(sources):
    eff = effective(sources).rights
    for s in sources:
        for name in ENTITY_NAMES:
            for a in ENT_ACTIONS:
                assert getattr(eff.entity(name), a) >= getattr(s.rights.entity(name), a)
        # the merge of clamped sources is itself clamped (rule 1 survives rule 2)
    for name in ENTITY_NAMES:
        assert eff.entity(name) == eff.entity(name).clamped()
    assert eff.tasks == eff.tasks.clamped()


@PROPERTY
@given(rights_objects)
def test_single_source_has_no_conflicts_and_keeps_its_rights(r):
    eff = effective([Source("own", r)])
    assert eff.conflicts == ()
    assert eff.rights.to_json() == r.to_json()


def test_zero_sources_is_all_denied():
    eff = effective([])
    j = eff.rights.to_json()
    assert j == NO_RIGHTS.to_json()
    for name in ENTITY_NAMES:
        assert set(j[name].values()) == {"D"}
    assert set(j["tasks"].values()) == {"D"}
    assert j["mail_access"] is False and j["files_access"] is False
    assert eff.sources == () and eff.conflicts == ()
    assert eff.to_json()["conflicts"] == [] and eff.to_json()["sources"] == []


def test_zero_sources_show_no_field_but_an_empty_source_shows_every_field():
    """Rule 2 (issue 13.17): with no source at all no field is visible; an empty rights object is still
    a source, and a field it does not list is edit (SPEC section 2)."""
    nothing = effective([])
    assert nothing.rights.field_access("leads", 7) == HIDDEN
    assert nothing.rights.field_access("contacts", 1) == HIDDEN
    assert nothing.to_json()["field_default"] == "hidden"
    empty = effective([Source("own", Rights.from_json({}))])
    assert empty.rights.field_access("leads", 7) == EDIT
    assert empty.to_json()["field_default"] == "edit"
    hidden = Source("group_role", _rights(field_rights=[{"entity": "leads", "field_id": 7, "access": "hidden"}]),
                    role_id=1, group_id=2)
    assert effective([hidden]).rights.field_access("leads", 7) == HIDDEN
    assert effective([hidden]).rights.field_access("leads", 8) == EDIT
    assert effective([hidden]).to_json()["field_default"] == "edit"


def test_a_user_with_no_source_can_do_nothing_and_see_no_field():
    nobody = Subject(5, is_admin=False, effective=effective([]), members={5, 6})
    lead = {"pipeline_id": 1, "stage_id": 2, "responsible_user_id": 5}
    for action in ("view", "edit", "delete", "export"):
        assert nobody.can_record("leads", action, lead) is False
    for entity in ("contacts", "companies"):
        assert nobody.can_entity(entity, "view", 5) is False
    assert nobody.can_add_lead(1) is False
    assert nobody.task_visible(6, attached_viewable=False) is False and nobody.can_task("edit", 5) is False
    assert nobody.field_access("leads", 7) == HIDDEN and nobody.shown_fields("leads", [7, 8]) == []
    # rule 5: a subscription shows the lead, never its custom fields, and explain says so
    assert nobody.can_record("leads", "view", lead, subscribed=True) is True
    assert nobody.lead_view_right(1, 2, 5) is False
    why = nobody.explain("leads", "view", lead, subscribed=True)
    assert (why["allowed"], why["rule"]) == (True, "subscription")
    why = nobody.explain("leads", "view", lead)
    assert (why["allowed"], why["rule"], why["source"], why["sources"]) == (False, "no_rights", None, [])
    admin = Subject(1, is_admin=True, effective=effective([]), members={1})
    assert admin.field_access("leads", 7) == EDIT


def test_an_administrator_is_shown_everything_they_hold():
    """Issue 13.19: an administrator's effective rights are every level A, every flag true, every field
    edit, from being an administrator (not the all-D of holding no rights object)."""
    from auth.rights import admin_effective

    j = admin_effective().to_json()
    for name in ENTITY_NAMES:
        assert j["rights"][name] == {a: "A" for a in ENT_ACTIONS}
    assert j["rights"]["tasks"] == {"edit": "A", "delete": "A"}
    assert j["rights"]["mail_access"] is True and j["rights"]["files_access"] is True
    assert j["rights"]["pipeline_access"] == {} and j["rights"]["field_rights"] == []  # nothing denied
    assert j["field_default"] == "edit"
    assert j["sources"] == [{"kind": "admin", "role_id": None, "role": None, "group_id": None, "group": None,
                             "label": "administrator"}]
    assert j["conflicts"] == []
    why = Subject(1, is_admin=True, effective=effective([]), members={1}).explain(
        "leads", "delete", {"pipeline_id": 1, "stage_id": 1, "responsible_user_id": 4})
    assert (why["allowed"], why["rule"], why["source_detail"]["kind"]) == (True, "admin", "admin")


def _rights(**kw) -> Rights:
    return Rights.from_json(kw)


def test_effective_per_action_maximum_and_conflict_detail():
    own = Source("own", _rights(leads={"add": "A", "view": "M", "edit": "M"}))
    grp = Source("group_role", _rights(leads={"view": "G", "edit": "D"}, mail_access=True), role_id=3, group_id=5)
    eff = effective([own, grp])
    assert eff.rights.leads == EntityRights(A, G, M, D, D)
    assert eff.rights.mail_access is True
    conflicts = {c["path"]: c for c in eff.conflicts}
    assert set(conflicts) == {"leads.add", "leads.view", "leads.edit", "mail_access"}
    assert conflicts["leads.view"] == {
        "path": "leads.view", "effective": "G",
        "values": [{"source": "own rights", "value": "M"}, {"source": "role #3 via group #5", "value": "G"}],
    }
    assert conflicts["mail_access"]["effective"] is True
    assert conflicts["mail_access"]["values"] == [{"source": "own rights", "value": False},
                                                  {"source": "role #3 via group #5", "value": True}]
    assert eff.to_json()["sources"] == [
        {"kind": "own", "role_id": None, "role": None, "group_id": None, "group": None, "label": "own rights"},
        {"kind": "group_role", "role_id": 3, "role": None, "group_id": 5, "group": None,
         "label": "role #3 via group #5"},
    ]


def test_sources_are_named_by_their_role_and_group_with_ids():
    """Issue 13.20: an admin reads names, and the ids stay beside them."""
    r = _rights(leads={"view": "M"})
    grp = Source("group_role", r, role_id=3, group_id=5, role_name="Agent", group_name="Sales")
    role = Source("role", _rights(leads={"view": "A"}), role_id=2, role_name="Manager")
    assert grp.to_json() == {"kind": "group_role", "role_id": 3, "role": "Agent", "group_id": 5, "group": "Sales",
                             "label": "role Agent (#3) via group Sales (#5)"}
    assert role.to_json() == {"kind": "role", "role_id": 2, "role": "Manager", "group_id": None, "group": None,
                              "label": "role Manager (#2)"}
    conflict = {c["path"]: c for c in effective([role, grp]).conflicts}["leads.view"]
    assert conflict["values"] == [{"source": "role Manager (#2)", "value": "A"},
                                  {"source": "role Agent (#3) via group Sales (#5)", "value": "M"}]
    why = Subject(9, is_admin=False, effective=effective([role, grp]), members={9}).explain(
        "leads", "view", {"pipeline_id": 1, "stage_id": 1, "responsible_user_id": 4})
    assert (why["source"], why["source_detail"]) == ("role Manager (#2)", role.to_json())
    assert [a["source_detail"]["label"] for a in why["sources"]] == [role.label, grp.label]


def test_effective_agreeing_sources_have_no_conflict():
    a = _rights(leads={"view": "A", "edit": "G"}, files_access=True, pipeline_access={"1": False})
    eff = effective([Source("role", a, role_id=1), Source("group_role", a, role_id=1, group_id=2)])
    assert eff.conflicts == ()
    assert eff.rights == a


def test_effective_flags_combine_by_any():
    eff = effective([Source("role", _rights(files_access=True), role_id=1),
                     Source("role", _rights(mail_access=True), role_id=2)])
    assert eff.rights.mail_access is True and eff.rights.files_access is True
    eff = effective([Source("role", _rights(), role_id=1), Source("role", _rights(), role_id=2)])
    assert eff.rights.mail_access is False and eff.rights.files_access is False


def test_effective_pipeline_access_missing_is_allowed_and_any_allows():
    closed = Source("role", _rights(pipeline_access={"2": False}), role_id=1)
    silent = Source("group_role", _rights(), role_id=2, group_id=9)
    also_closed = Source("group_role", _rights(pipeline_access={"2": False}), role_id=3, group_id=8)
    eff = effective([closed, silent])
    assert eff.rights.pipeline_allowed(2) is True  # the silent source allows pipeline 2
    conflict = {c["path"]: c for c in eff.conflicts}["pipeline_access.2"]
    assert conflict["effective"] is True
    assert [v["value"] for v in conflict["values"]] == [False, True]
    eff = effective([closed, also_closed])
    assert eff.rights.pipeline_allowed(2) is False
    assert eff.conflicts == ()
    eff = effective([closed, Source("role", _rights(pipeline_access={"2": True}), role_id=4)])
    assert eff.rights.pipeline_allowed(2) is True


def test_effective_field_rights_missing_is_edit_and_max_wins():
    hidden = Source("role", _rights(field_rights=[{"entity": "leads", "field_id": 7, "access": "hidden"}]),
                    role_id=1)
    read = Source("role", _rights(field_rights=[{"entity": "leads", "field_id": 7, "access": "read"}]),
                  role_id=2)
    silent = Source("role", _rights(), role_id=3)
    assert effective([hidden, read]).rights.field_access("leads", 7) == READ
    assert effective([hidden, silent]).rights.field_access("leads", 7) == EDIT
    conflict = {c["path"]: c for c in effective([hidden, silent]).conflicts}["field_rights.leads.7"]
    assert conflict["effective"] == "edit"
    assert [v["value"] for v in conflict["values"]] == ["hidden", "edit"]
    assert effective([hidden, hidden]).rights.field_access("leads", 7) == HIDDEN


def test_effective_stage_rights_compare_against_the_lead_level_of_a_source_without_the_entry():
    staged = Source("role", _rights(leads={"view": "A", "edit": "A"},
                                    stage_rights=[{"pipeline_id": 1, "stage_id": 3, "view": "M", "edit": "M"}]),
                    role_id=1)
    plain_g = Source("group_role", _rights(leads={"view": "G", "edit": "D"}), role_id=2, group_id=4)
    eff = effective([staged, plain_g])
    # the stage entry: max(M from the stage right, G from the other source's lead level)
    assert dict(eff.rights.stage_rights) == {(1, 3): StageRight(G, M, D)}
    conflicts = {c["path"]: c for c in eff.conflicts}
    assert conflicts["stage_rights.1.3.view"]["values"] == [
        {"source": "role #1", "value": "M"}, {"source": "role #2 via group #4", "value": "G"}]
    assert conflicts["stage_rights.1.3.edit"]["values"] == [
        {"source": "role #1", "value": "M"}, {"source": "role #2 via group #4", "value": "D"}]
    assert "stage_rights.1.3.delete" not in conflicts  # D from the entry, D from the lead level

    # a source whose lead level equals the stage entry does not conflict on that stage path
    plain_m = Source("role", _rights(leads={"view": "M", "edit": "M"}), role_id=5)
    eff = effective([staged, plain_m])
    paths = {c["path"] for c in eff.conflicts}
    assert not any(p.startswith("stage_rights.") for p in paths)
    assert dict(eff.rights.stage_rights) == {(1, 3): StageRight(M, M, D)}


# --------------------------------------------------------------------------------------------------
# rights_schema.RightsIn validation
# --------------------------------------------------------------------------------------------------

def _locs(data: Any) -> list[tuple]:
    with pytest.raises(ValidationError) as info:
        RightsIn.model_validate(data)
    return [tuple(e["loc"]) for e in info.value.errors()]


def test_schema_accepts_the_spec_example_and_empty_object():
    example = {
        "leads": {"add": "A", "view": "G", "edit": "M", "delete": "D", "export": "D"},
        "contacts": {"add": "D", "view": "A", "edit": "A", "delete": "A", "export": "A"},
        "companies": {},
        "tasks": {"edit": "A", "delete": "M"},
        "mail_access": True, "files_access": False,
        "stage_rights": [{"pipeline_id": 1, "stage_id": 3, "view": "M", "edit": "M", "delete": "D"}],
        "pipeline_access": {"1": True, "2": False},
        "field_rights": [{"entity": "leads", "field_id": 7, "access": "hidden"}],
    }
    model = RightsIn.model_validate(example)
    assert model.leads.view == "G" and model.pipeline_access == {"1": True, "2": False}
    empty = RightsIn.model_validate({}).model_dump()
    assert empty["leads"] == {a: "D" for a in ENT_ACTIONS}
    assert empty["mail_access"] is False and empty["stage_rights"] == []


@pytest.mark.parametrize(
    "data,loc",
    [
        ({"bogus": True}, ("bogus",)),
        ({"leads": {"bogus": "A"}}, ("leads", "bogus")),
        ({"contacts": {"view": "A", "comment": "A"}}, ("contacts", "comment")),
        ({"tasks": {"add": "A"}}, ("tasks", "add")),
        ({"stage_rights": [{"pipeline_id": 1, "stage_id": 2, "export": "A"}]}, ("stage_rights", 0, "export")),
        ({"field_rights": [{"entity": "leads", "field_id": 1, "access": "read", "x": 1}]},
         ("field_rights", 0, "x")),
    ],
)
def test_schema_rejects_unknown_keys_with_path(data, loc):
    assert loc in _locs(data)


@pytest.mark.parametrize(
    "data,loc",
    [
        ({"leads": {"view": "X"}}, ("leads", "view")),
        ({"leads": {"view": "a"}}, ("leads", "view")),
        ({"contacts": {"edit": "g"}}, ("contacts", "edit")),
        ({"companies": {"export": ""}}, ("companies", "export")),
        ({"leads": {"add": "M"}}, ("leads", "add")),
        ({"leads": {"add": "G"}}, ("leads", "add")),
        ({"tasks": {"delete": "Z"}}, ("tasks", "delete")),
        ({"stage_rights": [{"pipeline_id": 1, "stage_id": 2, "view": "AA"}]}, ("stage_rights", 0, "view")),
        ({"field_rights": [{"entity": "leads", "field_id": 1, "access": "write"}]}, ("field_rights", 0, "access")),
        ({"field_rights": [{"entity": "tasks", "field_id": 1, "access": "read"}]}, ("field_rights", 0, "entity")),
    ],
)
def test_schema_rejects_bad_level_codes(data, loc):
    assert loc in _locs(data)


@pytest.mark.parametrize(
    "data,loc",
    [
        ({"mail_access": "true"}, ("mail_access",)),
        ({"files_access": "false"}, ("files_access",)),
        ({"mail_access": 1}, ("mail_access",)),
        ({"leads": {"view": 1}}, ("leads", "view")),
        ({"leads": {"add": 3}}, ("leads", "add")),
        ({"leads": "A"}, ("leads",)),
        ({"pipeline_access": {"1": "yes"}}, ("pipeline_access", "1")),
        ({"pipeline_access": {"1": 1}}, ("pipeline_access", "1")),
        ({"stage_rights": [{"pipeline_id": "1", "stage_id": 2}]}, ("stage_rights", 0, "pipeline_id")),
        ({"stage_rights": [{"pipeline_id": True, "stage_id": 2}]}, ("stage_rights", 0, "pipeline_id")),
        ({"stage_rights": [{"pipeline_id": 0, "stage_id": 2}]}, ("stage_rights", 0, "pipeline_id")),
        ({"stage_rights": [{"pipeline_id": 1}]}, ("stage_rights", 0, "stage_id")),
        ({"stage_rights": {"pipeline_id": 1, "stage_id": 2}}, ("stage_rights",)),
        ({"field_rights": [{"entity": "leads", "field_id": 1.5, "access": "read"}]},
         ("field_rights", 0, "field_id")),
    ],
)
def test_schema_rejects_wrong_types(data, loc):
    assert loc in _locs(data)


@pytest.mark.parametrize("key", ["abc", "0", "-1", "", " 1", "1.5", "1e3", "00", "²"])
def test_schema_rejects_bad_pipeline_access_keys(key):
    assert ("pipeline_access",) in _locs({"pipeline_access": {key: True}})


def test_schema_rejects_non_ascii_digit_pipeline_keys():
    # "١" (ARABIC-INDIC DIGIT ONE) passes str.isdigit() and int("١") == 1, so it is read as pipeline 1.
    # A pipeline id key must be ASCII decimal digits; anything else is not a pipeline id.
    assert ("pipeline_access",) in _locs({"pipeline_access": {"١": False}})


def test_schema_rejects_the_same_pipeline_spelled_twice():
    # "1" and "01" are the same pipeline with contradictory values; from_json would silently keep one.
    # Like duplicate stage_rights / field_rights entries, this must be refused.
    assert ("pipeline_access",) in _locs({"pipeline_access": {"1": True, "01": False}})


def test_schema_accepts_good_pipeline_keys():
    assert RightsIn.model_validate({"pipeline_access": {"1": True, "12": False, "999": True}}).pipeline_access == {
        "1": True, "12": False, "999": True}


def test_schema_rejects_duplicate_stage_rights():
    data = {"stage_rights": [{"pipeline_id": 1, "stage_id": 3, "view": "A"},
                             {"pipeline_id": 1, "stage_id": 3, "view": "D"}]}
    with pytest.raises(ValidationError) as info:
        RightsIn.model_validate(data)
    errors = info.value.errors()
    assert [tuple(e["loc"]) for e in errors] == [("stage_rights",)]
    assert "twice" in errors[0]["msg"]
    # control: the same stage id in another pipeline, or another stage in the same pipeline, is fine
    RightsIn.model_validate({"stage_rights": [{"pipeline_id": 1, "stage_id": 3}, {"pipeline_id": 2, "stage_id": 3},
                                              {"pipeline_id": 1, "stage_id": 4}]})


def test_schema_rejects_duplicate_field_rights():
    data = {"field_rights": [{"entity": "leads", "field_id": 7, "access": "hidden"},
                             {"entity": "leads", "field_id": 7, "access": "edit"}]}
    with pytest.raises(ValidationError) as info:
        RightsIn.model_validate(data)
    errors = info.value.errors()
    assert [tuple(e["loc"]) for e in errors] == [("field_rights",)]
    assert "twice" in errors[0]["msg"]
    # control: the same field id on another entity is a different field
    RightsIn.model_validate({"field_rights": [{"entity": "leads", "field_id": 7, "access": "hidden"},
                                              {"entity": "contacts", "field_id": 7, "access": "hidden"}]})


@pytest.mark.parametrize("name", ENTITY_NAMES)
def test_schema_entities_match_the_core(name):
    # the schema and the core agree on the entity list, so nothing validated is dropped by from_json
    assert tuple(ENTITY_NAMES) == ENTITIES
    data = {name: {"add": "A", "view": "A", "edit": "G", "delete": "M", "export": "M"}}
    RightsIn.model_validate(data)
    assert Rights.from_json(data).entity(name) == EntityRights(A, A, G, M, M)
