"""Lists over 100,000 leads: they never load invisible rows and a deep page costs what the first does
(SPEC rule 12; docs/performance.md).

The workspace is made through the API; the leads are bulk-inserted into the test's database. For an
M user, a G user and a stage-restricted user the test checks, against visible sets computed here in
Python from the rights (not with auth.visibility):

- ``total`` counts exactly the visible leads;
- walking with the keyset cursor returns exactly the visible ids, newest first, with no duplicates,
  from the start and from 200 pages deep;
- the SQL the server runs (rebuilt with the same functions) is index searches only, no ``SCAN`` of
  leads, and does the same work 200 pages deep as on the first page, far less than a scan of leads.

Work is counted in SQLite virtual-machine steps with a progress handler on a separate connection,
so it is deterministic; nothing here is timed.
"""

from __future__ import annotations

import random
import re
import sqlite3
from dataclasses import dataclass, field

import pytest

from conftest import FAST_HASHING, Persona

from auth.visibility import MAX_SLICES, leads_visibility
from inbox.actions.access import load_subject
from inbox.store import catalog
from inbox.store.listing import Filter, count_query, page_query

N_LEADS = 100_000
PAGE = 50
DEEP = 200 * PAGE          # the deep cursor is the id of the 10,000th visible lead

AGENT_M = {"leads": {"add": "A", "view": "M", "edit": "M", "delete": "M", "export": "M"}}
LEAD_G = {"leads": {"add": "A", "view": "G", "edit": "G", "delete": "M", "export": "G"}}


@pytest.fixture
def config_overrides() -> dict:
    return FAST_HASHING


@dataclass
class World:
    admin: Persona
    sales: dict
    partners: dict
    users: dict[str, Persona]
    groups: list[list[int]]                              # member ids of each group
    leads: list[tuple] = field(default_factory=list)     # (id, pipeline, stage, responsible)
    subs: set[tuple[int, int]] = field(default_factory=set)  # (lead_id, user_id)

    def stage(self, pipeline: str, index: int) -> int:
        return getattr(self, pipeline)["stages"][index]["id"]

    def team(self, uid: int) -> set[int]:
        return {uid} | {m for g in self.groups if uid in g for m in g}

    def visible(self, who: str) -> list[int]:
        """Ids ``who`` may see, newest first, decided here from the roles' rights."""
        uid = self.users[who].user_id
        team = self.team(uid)
        sales = self.sales["id"]
        won, lost = self.stage("sales", 3), self.stage("sales", 4)
        open_stages = {self.stage("sales", i) for i in range(3)}

        def rule(pipeline: int, stage: int, resp: int) -> bool:
            if who in ("maria", "tom", "olga"):                      # M everywhere
                return resp == uid
            if who in ("gina", "pete"):                              # G everywhere
                return resp in team
            if who == "sam":                                         # stage-restricted
                return pipeline == sales and (stage in open_stages and resp in team or stage == won
                                              or stage == lost and resp == uid)
            if who == "rhea":                                        # G, plus every won deal
                return resp in team or stage == won
            raise AssertionError(who)

        return [i for i, p, s, r in reversed(self.leads) if rule(p, s, r) or (i, uid) in self.subs]


def _assistant(w: World) -> dict:
    """Sales assistant: Partners denied; G in the open Sales stages, every Won deal, own Lost deals."""
    return {"leads": {"add": "A", "view": "G", "edit": "M", "delete": "D", "export": "M"},
            "pipeline_access": {str(w.partners["id"]): False},
            "stage_rights": [
                {"pipeline_id": w.sales["id"], "stage_id": w.stage("sales", 3), "view": "A", "edit": "M"},
                {"pipeline_id": w.sales["id"], "stage_id": w.stage("sales", 4), "view": "M", "edit": "M"}]}


def _regional(w: World) -> dict:
    """Regional manager: G over two teams plus every Won deal -- more slices than MAX_SLICES."""
    return {"leads": {"add": "A", "view": "G", "edit": "G", "delete": "M", "export": "G"},
            "stage_rights": [{"pipeline_id": w.sales["id"], "stage_id": w.stage("sales", 3), "view": "A"}]}


async def _role(api, admin, name: str, rights: dict) -> int:
    r = await api.post("/api/v1/roles", {"name": name, "rights": rights}, who=admin)
    assert r.status == 201, r.body
    return r.body["id"]


@pytest.fixture
async def world(api, admin) -> World:
    pipes = {}
    for name, stages in (("Sales", ["New", "Qualified", "Proposal", "Won", "Lost"]),
                         ("Partners", ["Intro", "Evaluation", "Contract", "Live", "Churned"])):
        r = await api.post("/api/v1/pipelines", {"name": name, "stages": stages}, who=admin)
        assert r.status == 201, r.body
        pipes[name] = r.body
    w = World(admin, pipes["Sales"], pipes["Partners"], {}, [])
    roles = {"agent": await _role(api, admin, "Agent", AGENT_M), "lead": await _role(api, admin, "Lead", LEAD_G),
             "assistant": await _role(api, admin, "Assistant", _assistant(w)),
             "regional": await _role(api, admin, "Regional", _regional(w))}
    for name, role in (("maria", "agent"), ("tom", "agent"), ("gina", "lead"), ("sam", "assistant"),
                       ("olga", "agent"), ("pete", "lead"), ("ivan", "agent"), ("rhea", "regional")):
        w.users[name] = await api.add_user(admin, name.title(), role_id=roles[role])
    u = {k: v.user_id for k, v in w.users.items()}
    for name, members in (("North", ["maria", "tom", "gina", "sam", "rhea"]),
                          ("South", ["olga", "pete", "ivan", "rhea"])):
        ids = [u[m] for m in members]
        r = await api.post("/api/v1/groups", {"name": name, "user_ids": ids}, who=admin)
        assert r.status == 201, r.body
        w.groups.append(ids)

    # 100,000 leads: 70% Sales, spread over the eight users and the admin with unequal books; 1% of
    # them get a subscriber, often someone who could not otherwise see the lead.
    rng = random.Random(12)
    owners = [admin.user_id, *u.values()]
    weights = [1, 3, 2, 2, 2, 3, 2, 2, 1]
    sales, partners = [s["id"] for s in w.sales["stages"]], [s["id"] for s in w.partners["stages"]]
    rows = []
    for i in range(1, N_LEADS + 1):
        pipeline, stages = (w.sales["id"], sales) if rng.random() < 0.7 else (w.partners["id"], partners)
        stage = rng.choices(stages, (3, 2, 2, 2, 1))[0]
        resp = rng.choices(owners, weights)[0]
        w.leads.append((i, pipeline, stage, resp))
        rows.append((i, f"Lead {i}", pipeline, stage, resp, float(i), float(i)))
        if rng.random() < 0.01:
            w.subs.add((i, rng.choice(list(u.values()))))

    async def load(tx) -> None:
        await tx.executemany("INSERT INTO leads (id, name, pipeline_id, stage_id, responsible_user_id,"
                             " created_at, updated_at) VALUES (?,?,?,?,?,?,?)", rows)
        await tx.executemany("INSERT INTO lead_subscribers (lead_id, user_id, created_at) VALUES (?,?,0)",
                             sorted(w.subs))

    await api.db.write(load)
    return w


async def _plan_inputs(api, w: World, who: str):
    subject = await load_subject(api.db, w.users[who].user_id, is_admin=False)
    return leads_visibility(subject, await catalog.stage_catalogue(api.db))


class Meter:
    """A separate connection to the test's database that counts SQLite VM steps (in hundreds)."""

    def __init__(self, path) -> None:
        self.conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        self.steps = 0

    def _tick(self) -> int:
        self.steps += 1
        return 0

    def work(self, sql: str, params) -> tuple[int, list]:
        self.steps = 0
        self.conn.set_progress_handler(self._tick, 100)
        try:
            rows = self.conn.execute(sql, params).fetchall()
        finally:
            self.conn.set_progress_handler(None, 0)
        return self.steps, rows

    def plan(self, sql: str, params) -> list[str]:
        return [r[3] for r in self.conn.execute("EXPLAIN QUERY PLAN " + sql, params)]

    def close(self) -> None:
        self.conn.close()


def _scans_leads(plan: list[str]) -> list[str]:
    """Plan lines that read leads other than by an index search (aliases: t, l; and OR-by-union)."""
    return [line for line in plan if re.match(r"(SCAN (leads|t|l)\b|MULTI-INDEX OR)", line)]


USERS = ["maria", "gina", "sam"]     # M, G, stage-restricted


async def test_totals_count_only_visible_rows(api, world):
    r = await api.get("/api/v1/leads", who=world.admin, params={"limit": "1"})
    assert r.status == 200 and r.body["total"] == N_LEADS
    for who in USERS:
        expected = world.visible(who)
        assert 0 < len(expected) < N_LEADS * 0.7
        r = await api.get("/api/v1/leads", who=world.users[who], params={"limit": str(PAGE)})
        assert r.status == 200, r.body
        assert r.body["total"] == len(expected), who
        assert [it["id"] for it in r.body["items"]] == expected[:PAGE], who
        # A filter narrows the count the same way: one stage of Sales.
        stage = world.stage("sales", 0)
        in_stage = {i for i, _, s, _ in world.leads if s == stage}
        r = await api.get("/api/v1/leads", who=world.users[who], params={"limit": "1", "stage_id": str(stage)})
        assert r.body["total"] == len([i for i in expected if i in in_stage]), who


async def test_cursor_walk_returns_exactly_the_visible_ids(api, world):
    for who in USERS:
        expected = world.visible(who)
        assert len(expected) > DEEP + 1000
        for start, cursor in ((0, None), (DEEP, expected[DEEP - 1])):
            seen: list[int] = []
            for _ in range(4):
                params = {"limit": "250", **({"cursor": str(cursor)} if cursor else {})}
                r = await api.get("/api/v1/leads", who=world.users[who], params=params)
                assert r.status == 200, r.body
                ids = [it["id"] for it in r.body["items"]]
                assert ("total" in r.body) == (cursor is None)
                assert r.body["next_cursor"] == ids[-1]
                seen += ids
                cursor = r.body["next_cursor"]
            assert seen == expected[start:start + 1000], (who, start)
            assert len(set(seen)) == len(seen)
    # The end of the list: the last page is short and has no next cursor.
    expected = world.visible("maria")
    r = await api.get("/api/v1/leads", who=world.users["maria"],
                      params={"limit": "250", "cursor": str(expected[-11])})
    assert [it["id"] for it in r.body["items"]] == expected[-10:] and r.body["next_cursor"] is None


async def test_page_queries_are_index_searches_and_deep_pages_cost_the_same(api, world):
    meter = Meter(api.db.path)
    try:
        full_scan, _ = meter.work("SELECT sum(price) FROM leads", ())
        assert meter.plan("SELECT sum(price) FROM leads", ()) == ["SCAN leads"]
        for who in USERS:
            vis = await _plan_inputs(api, world, who)
            assert len(vis.slices) <= MAX_SLICES
            expected = world.visible(who)
            deep_cursor = expected[DEEP - 1]
            # The handler asks for limit + 1 rows to know whether there is a next page.
            first_sql = page_query("leads", vis, Filter(), before=None, limit=PAGE + 1)
            deep_sql = page_query("leads", vis, Filter(), before=deep_cursor, limit=PAGE + 1)
            first_work, first_rows = meter.work(*first_sql)
            deep_work, deep_rows = meter.work(*deep_sql)
            assert [r[0] for r in first_rows] == expected[:PAGE + 1]
            assert [r[0] for r in deep_rows] == expected[DEEP:DEEP + PAGE + 1]
            for sql in (first_sql, deep_sql):
                assert not _scans_leads(meter.plan(*sql)), (who, meter.plan(*sql))
            # Same work 200 pages deep as on page 1, and a small fraction of one pass over leads.
            assert deep_work <= first_work * 1.25 + 5, (who, first_work, deep_work)
            # (17 slices x 51 rows for the stage-restricted user: about 5% of one pass over 100,000 leads.)
            assert first_work * 10 < full_scan and deep_work * 10 < full_scan, (who, first_work, deep_work, full_scan)
            # Offset paging, for contrast, grows with the depth (it is kept only as a convenience).
            offset_work, _ = meter.work(*page_query("leads", vis, Filter(), before=None, limit=PAGE + 1, offset=DEEP))
            assert offset_work > 10 * deep_work
    finally:
        meter.close()


async def test_counts_never_walk_the_visible_rows(api, world):
    """An unfiltered total sums per-cell counters (lead_counts) and the user's subscriptions: it never
    reads leads. A filtered total counts index ranges, in proportion to the visible share."""
    meter = Meter(api.db.path)
    try:
        full_scan, _ = meter.work("SELECT count(*) FROM leads WHERE price >= 0", ())
        for who in USERS:
            vis = await _plan_inputs(api, world, who)
            sql = count_query("leads", vis, Filter())
            plan = meter.plan(*sql)
            assert not any(re.search(r"\b(leads|t|l) USING|SCAN leads\b", line) for line in plan), (who, plan)
            work, rows = meter.work(*sql)
            assert rows[0][0] == len(world.visible(who))
            assert work * 50 < full_scan, (who, work, full_scan)
            # With any filter term the counters cannot answer: index range counts, still only the visible
            # share (an id term, which every index holds, so the work measured is the ranges alone).
            filtered = Filter(("{p}id > ?",), (0,))
            sql = count_query("leads", vis, filtered)
            assert not _scans_leads(meter.plan(*sql)), (who, meter.plan(*sql))
            work, rows = meter.work(*sql)
            assert rows[0][0] == len(world.visible(who))
            share = len(world.visible(who)) / N_LEADS
            assert work < full_scan * (share + 0.1), (who, work, full_scan, share)
    finally:
        meter.close()


async def test_many_slices_still_page_by_index_ranges(api, world):
    vis = await _plan_inputs(api, world, "rhea")
    assert len(vis.slices) == 9 * 8 + 1      # G in 9 stages x 8 team members, A in the Won stage
    expected = world.visible("rhea")
    r = await api.get("/api/v1/leads", who=world.users["rhea"], params={"limit": "1"})
    assert r.body["total"] == len(expected)
    meter = Meter(api.db.path)
    try:
        full_scan, _ = meter.work("SELECT sum(price) FROM leads", ())
        first_sql = page_query("leads", vis, Filter(), before=None, limit=PAGE + 1)
        deep_sql = page_query("leads", vis, Filter(), before=expected[DEEP - 1], limit=PAGE + 1)
        first_work, rows = meter.work(*first_sql)
        assert [r[0] for r in rows] == expected[:PAGE + 1]
        deep_work, rows = meter.work(*deep_sql)
        assert [r[0] for r in rows] == expected[DEEP:DEEP + PAGE + 1]
        # 73 index ranges of at most 51 rows each: a few percent of a pass over 100,000 leads.
        assert first_work * 5 < full_scan and deep_work * 5 < full_scan, (first_work, deep_work, full_scan)
        assert deep_work <= first_work * 1.25 + 5, (first_work, deep_work)
        assert not _scans_leads(meter.plan(*first_sql)), meter.plan(*first_sql)
    finally:
        meter.close()
