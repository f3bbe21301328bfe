"""Benchmark: record-level permission decisions per second in process, next to pycasbin's
FastEnforcer deciding the same questions on an equivalent RBAC model, in the same run.

Decisions are in-process by nature: the server asks ``auth.policy.Subject`` (pure: no I/O) for every
record it shows or changes, so there is no server process here and nothing to load-generate. What
is timed is the call the server makes (``Subject.can_record(entity, action, record, subscribed=..)``)
over a realistic mix, on subjects built the way ``inbox.actions.access.load_subject`` builds them
(rights sources -> ``auth.rights.effective`` -> ``Subject`` with the user's group co-members).

The workspace (in memory, seeded): 3 pipelines (Sales, Partners, Support: 13 stages), 100 users in
10 groups of 10 plus 2 admins, and six kinds of user: team leads (G), stage-restricted sales
assistants (Partners denied, stage rights on Won at A and Lost at M), regional managers (G over two
groups, Won at A), users with their own rights instead of a role, users with no rights at all, and
agents (M). Two groups carry a group role (a Partners desk that denies Sales), so their members
have two sources. Records: 5,000 leads (random pipeline, stage and responsible user), 2,000
contacts, 500 companies. Decisions: 70% leads, 20% contacts, 10% companies; view 55%, edit 20%,
delete 10%, export 15%; half of the records belong to the user or a group co-member, half to anyone;
6% of lead decisions are for a subscriber.

pycasbin (``FastEnforcer``, ``cache_key_order`` on the resource domain and action) gets the same
rights compiled into policy rows by this file (independently of ``auth/``): one row per role (or
own rights, or the admin role) x resource domain (``leads/<pipeline>/<stage>``, ``contacts``,
``companies``) x action, with the scope A, G or M; ``g`` assigns users their role, own rights and
their groups, and groups their group role (transitively); ``g2`` links a record owner to
``team-of:<user>`` for every user who shares a group with the owner; the owner and the
subscription are request attributes. Before timing, both answer every sampled decision and must
agree (exit 1 otherwise). Requests for casbin are pre-built strings (no formatting in the timing).

    .venv/bin/python bench/decisions.py                 # ~10 s
    .venv/bin/python bench/decisions.py --smoke --json out.json

Exit status: 0 when both targets are met (>= 1,000,000 decisions/s and >= 40 x pycasbin), 2 when
the answers agree but a target is missed, 1 on any disagreement.
"""

from __future__ import annotations

import argparse
import gc
import platform
import random
import sys
import time

import common
from common import ROOT, say

sys.path.insert(0, str(ROOT))

from auth.policy import Subject  # noqa: E402
from auth.rights import Rights, Source, effective  # noqa: E402

TARGET_RATE = 1_000_000
TARGET_RATIO = 40.0

PIPELINES = {1: ("Sales", [1, 2, 3, 4, 5]),          # New, Qualified, Proposal, Won, Lost
             2: ("Partners", [6, 7, 8, 9, 10]),
             3: ("Support", [11, 12, 13])}
SALES, PARTNERS, WON, LOST = 1, 2, 4, 5
GROUPS, GROUP_SIZE = 10, 10
ADMINS = (1, 2)
ACTIONS = ("view", "edit", "delete", "export")
CODES = ("D", "M", "G", "A")


def _lv(add: str, view: str, edit: str, delete: str, export: str) -> dict:
    return {"add": add, "view": view, "edit": edit, "delete": delete, "export": export}


ROLES = {
    "agent": {"leads": _lv("A", "M", "M", "M", "M"), "contacts": _lv("A", "M", "M", "M", "M"),
              "companies": _lv("D", "M", "M", "D", "D"), "tasks": {"edit": "M", "delete": "M"}},
    "lead": {"leads": _lv("A", "G", "G", "M", "G"), "contacts": _lv("A", "G", "G", "D", "G"),
             "companies": _lv("A", "G", "G", "D", "G"), "tasks": {"edit": "G", "delete": "M"}},
    "assistant": {"leads": _lv("A", "G", "M", "D", "M"), "contacts": _lv("D", "G", "M", "D", "D"),
                  "companies": _lv("D", "G", "D", "D", "D"), "tasks": {"edit": "M", "delete": "D"},
                  "pipeline_access": {str(PARTNERS): False},
                  "stage_rights": [{"pipeline_id": SALES, "stage_id": WON, "view": "A", "edit": "M", "delete": "D"},
                                   {"pipeline_id": SALES, "stage_id": LOST, "view": "M", "edit": "M", "delete": "D"}]},
    "regional": {"leads": _lv("A", "G", "G", "M", "G"), "contacts": _lv("A", "A", "G", "D", "G"),
                 "companies": _lv("A", "G", "G", "D", "G"), "tasks": {"edit": "G", "delete": "M"},
                 "stage_rights": [{"pipeline_id": SALES, "stage_id": WON, "view": "A", "edit": "G", "delete": "D"}]},
    # a group role: the Partners desk sees its group's Partners leads and every contact, and no Sales
    "partner_desk": {"leads": _lv("D", "G", "M", "D", "D"), "contacts": _lv("D", "A", "D", "D", "D"),
                     "companies": _lv("D", "D", "D", "D", "D"), "pipeline_access": {str(SALES): False}},
}
OWN_RIGHTS = {"leads": _lv("A", "G", "G", "G", "D"), "contacts": _lv("A", "G", "M", "M", "M"),
              "companies": _lv("D", "A", "D", "D", "D"),
              "stage_rights": [{"pipeline_id": 3, "stage_id": 11, "view": "A", "edit": "A", "delete": "G"}]}
GROUP_ROLES = {2: "partner_desk", 5: "partner_desk"}


def stored(rights: dict) -> dict:
    """What the server stores for a role or a user's own rights: the clamped JSON (rule 1)."""
    return Rights.from_json(rights).clamped().to_json()


class Workspace:
    """Users, groups, roles and records, as plain data (the bench's own description)."""

    def __init__(self, seed: int, leads: int, contacts: int, companies: int) -> None:
        rng = random.Random(seed)
        self.roles = {name: stored(r) for name, r in ROLES.items()}
        self.own = stored(OWN_RIGHTS)
        self.users: dict[int, dict] = {a: {"kind": "admin", "role": None, "own": None, "groups": []} for a in ADMINS}
        uid = max(ADMINS)
        self.groups: dict[int, list[int]] = {g: [] for g in range(1, GROUPS + 1)}
        for g in range(1, GROUPS + 1):
            for k in range(GROUP_SIZE):
                uid += 1
                kind = {0: "lead", 1: "assistant", 2: "regional", 3: "own", 4: "none"}.get(k, "agent")
                groups = [g, g % GROUPS + 1] if kind == "regional" else [g]
                self.users[uid] = {"kind": kind, "role": kind if kind in ROLES else None,
                                   "own": self.own if kind == "own" else None, "groups": groups}
                for gg in groups:
                    self.groups[gg].append(uid)
        owners = list(self.users)
        self.leads = []
        for i in range(1, leads + 1):
            p = rng.choices((1, 2, 3), (6, 3, 1))[0]
            self.leads.append({"id": i, "pipeline_id": p, "stage_id": rng.choice(PIPELINES[p][1]),
                               "responsible_user_id": rng.choice(owners)})
        self.records = {"leads": self.leads,
                        "contacts": [{"id": i, "responsible_user_id": rng.choice(owners)} for i in range(contacts)],
                        "companies": [{"id": i, "responsible_user_id": rng.choice(owners)} for i in range(companies)]}

    def sources(self, uid: int) -> list[Source]:
        """Like inbox.store.users.rights_sources + inbox.actions.people.load_effective."""
        u = self.users[uid]
        out = []
        if u["role"] is None:
            out.append(Source("own", Rights.from_json(u["own"]) if u["own"] else Rights()))
        else:
            out.append(Source("role", Rights.from_json(self.roles[u["role"]]), role_id=1))
        for g in sorted(u["groups"]):
            if g in GROUP_ROLES:
                out.append(Source("group_role", Rights.from_json(self.roles[GROUP_ROLES[g]]), role_id=2, group_id=g))
        return out

    def comembers(self, uid: int) -> set[int]:
        return {m for g in self.users[uid]["groups"] for m in self.groups[g]}

    def subject(self, uid: int) -> Subject:
        """Like inbox.actions.access.load_subject."""
        return Subject(uid, is_admin=self.users[uid]["kind"] == "admin", effective=effective(self.sources(uid)),
                       members=self.comembers(uid))


def sample(ws: Workspace, n: int, seed: int) -> list[tuple]:
    """(user id, entity, action, record, subscribed), drawn with the mix in the docstring. Half of the
    records belong to the user or a group co-member (what a user mostly works on), half to anyone."""
    rng = random.Random(seed + 1)
    uids = list(ws.users)
    by_owner: dict[tuple[str, int], list[dict]] = {}
    for entity, records in ws.records.items():
        for r in records:
            by_owner.setdefault((entity, r["responsible_user_id"]), []).append(r)
    out = []
    for _ in range(n):
        uid = rng.choice(uids)
        entity = rng.choices(("leads", "contacts", "companies"), (70, 20, 10))[0]
        action = rng.choices(ACTIONS, (55, 20, 10, 15))[0]
        near = [m for m in sorted(ws.comembers(uid) | {uid}) if (entity, m) in by_owner]
        if near and rng.random() < 0.5:
            record = rng.choice(by_owner[entity, rng.choice(near)])
        else:
            record = rng.choice(ws.records[entity])
        subscribed = entity == "leads" and rng.random() < 0.06
        out.append((uid, entity, action, record, subscribed))
    return out


# --- pycasbin ----------------------------------------------------------------------------------

CASBIN_MODEL = """
[request_definition]
r = sub, dom, act, owner, subscribed

[policy_definition]
p = sub, dom, act, scope

[role_definition]
g = _, _
g2 = _, _

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = g(r.sub, p.sub) && r.dom == p.dom && r.act == p.act && (p.scope == "A" || r.owner == r.sub || p.scope == "G" && g2(r.owner, "team-of:" + r.sub)) || r.act == "view" && r.subscribed == "yes"
"""


def compile_rows(name: str, rights: dict) -> list[list[str]]:
    """Policy rows (role, domain, action, scope) for one stored rights object, written from SPEC
    section 2 without auth/: a pipeline denied by ``pipeline_access`` gives nothing; a stage right
    replaces view/edit/delete for its stage, and export there is min(lead export, stage edit)."""
    lvl = {c: i for i, c in enumerate(CODES)}
    rows = []
    leads = rights.get("leads", {})
    stage_rights = {(sr["pipeline_id"], sr["stage_id"]): sr for sr in rights.get("stage_rights", [])}
    for p, (_, stages) in PIPELINES.items():
        if not rights.get("pipeline_access", {}).get(str(p), True):
            continue
        for s in stages:
            sr = stage_rights.get((p, s))
            levels = dict(leads) if sr is None else {
                "view": sr["view"], "edit": sr["edit"], "delete": sr["delete"],
                "export": CODES[min(lvl[leads.get("export", "D")], lvl[sr["edit"]])]}
            for a in ACTIONS:
                if levels.get(a, "D") != "D":
                    rows.append([name, f"leads/{p}/{s}", a, levels[a]])
    for entity in ("contacts", "companies"):
        for a in ACTIONS:
            code = rights.get(entity, {}).get(a, "D")
            if code != "D":
                rows.append([name, entity, a, code])
    return rows


def casbin_enforcer(ws: Workspace):
    import casbin
    from casbin.model import FastModel

    class Model(FastModel):
        # pycasbin's FastModel.add_def drops the base method's return value, so a model loaded from
        # text stops after its first role definition (g2 would be missing); return it.
        def add_def(self, sec, key, value):
            super().add_def(sec, key, value)
            return value != ""

    model = Model([1, 2])          # filter the policy on (domain, action) before matching
    model.load_model_from_text(CASBIN_MODEL)
    e = casbin.FastEnforcer(model, cache_key_order=[1, 2])
    rows = []
    for name, rights in ws.roles.items():
        rows += compile_rows(f"role:{name}", rights)
    every = {"leads": {a: "A" for a in ACTIONS}, "contacts": {a: "A" for a in ACTIONS},
             "companies": {a: "A" for a in ACTIONS}}
    rows += compile_rows("role:admin", every)
    g = []
    for uid, u in ws.users.items():
        if u["kind"] == "admin":
            g.append([f"u{uid}", "role:admin"])
        elif u["role"] is not None:
            g.append([f"u{uid}", f"role:{u['role']}"])
        elif u["own"] is not None:
            rows += compile_rows(f"own:{uid}", u["own"])
            g.append([f"u{uid}", f"own:{uid}"])
        for grp in u["groups"]:
            g.append([f"u{uid}", f"group:{grp}"])
    for grp, role in GROUP_ROLES.items():
        g.append([f"group:{grp}", f"role:{role}"])
    g2 = [[f"u{owner}", f"team-of:u{uid}"] for uid in ws.users for owner in ws.comembers(uid)]
    e.add_policies(rows)
    e.add_named_grouping_policies("g", g)
    e.add_named_grouping_policies("g2", g2)
    return e, {"policy_rows": len(rows), "g_links": len(g), "g2_links": len(g2)}


def casbin_request(d: tuple) -> tuple[str, ...]:
    uid, entity, action, record, subscribed = d
    dom = f"leads/{record['pipeline_id']}/{record['stage_id']}" if entity == "leads" else entity
    return f"u{uid}", dom, action, f"u{record['responsible_user_id']}", "yes" if subscribed else "no"


# --- timing ------------------------------------------------------------------------------------

def time_loop(fn, work: list, seconds: float) -> tuple[int, float, float]:
    """Run ``fn(work)`` (one pass each) until ``seconds`` have passed: (decisions, total s, best pass s)."""
    done, total, best = 0, 0.0, float("inf")
    gc.collect()
    while total < seconds or done == 0:
        t = time.perf_counter()
        fn(work)
        dt = time.perf_counter() - t
        total += dt
        best = min(best, dt)
        done += len(work)
    return done, total, best


def ours_pass(work: list) -> None:
    for s, e, a, rec, sub in work:
        s.can_record(e, a, rec, subscribed=sub)


def loop_pass(work: list) -> None:
    """The same loop with a trivial call in place of the decision: what the harness itself costs."""
    f = bool
    for _s, _e, _a, _rec, sub in work:
        f(sub)


def dict_pass(work: list) -> None:
    """The same loop with one dict lookup per decision (a (pipeline, stage)-keyed cache hit)."""
    cache = {}
    for _s, _e, a, _rec, _sub in work:
        cache.get(a)


def casbin_pass(e):
    enforce = e.enforce

    def run(reqs: list) -> None:
        for r in reqs:
            enforce(*r)
    return run


def machine() -> dict:
    return {"cores": len(common.usable_cpus()), "cpu": common.cpu_model(), "python": platform.python_version()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--decisions", type=int, default=20_000, help="sampled decisions, all checked (default 20,000)")
    ap.add_argument("--seconds", type=float, default=3.0, help="timed seconds per side (default 3)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--smoke", action="store_true", help="2,000 decisions, 0.3 s per side: a smoke run")
    ap.add_argument("--json", metavar="FILE", help="write the figures as JSON to FILE")
    args = ap.parse_args()
    if args.smoke:
        args.decisions, args.seconds = min(args.decisions, 2_000), min(args.seconds, 0.3)
    m = machine()
    say(f"decisions bench: {args.decisions:,} sampled decisions, {args.seconds:g} s per side; in process "
        f"(decisions have no I/O), one thread; {m['cores']} cores, {m['cpu']}, Python {m['python']}")
    import casbin
    casbin_version = getattr(casbin, "__version__", None)
    if casbin_version is None:
        from importlib.metadata import PackageNotFoundError, version
        for dist in ("pycasbin", "casbin"):
            try:
                casbin_version = version(dist)
                break
            except PackageNotFoundError:
                pass

    t = time.perf_counter()
    ws = Workspace(args.seed, leads=5_000, contacts=2_000, companies=500)
    subjects = {uid: ws.subject(uid) for uid in ws.users}
    build_us = (time.perf_counter() - t) * 1e6 / len(subjects)
    decisions = sample(ws, args.decisions, args.seed)
    enforcer, sizes = casbin_enforcer(ws)
    kinds: dict[str, int] = {}
    for uid, *_ in decisions:
        kinds[ws.users[uid]["kind"]] = kinds.get(ws.users[uid]["kind"], 0) + 1
    say(f"  {len(ws.users)} users ({', '.join(f'{k} {v / len(decisions):.0%}' for k, v in sorted(kinds.items()))}"
        f" of decisions), {len(ws.groups)} groups, {sum(len(st) for _, st in PIPELINES.values())} stages in {len(PIPELINES)} pipelines; "
        f"casbin: {sizes['policy_rows']} policy rows, {sizes['g_links']} g and {sizes['g2_links']} g2 links")

    # Check: both answer every sampled decision, and agree.
    ours_work = [(subjects[uid], e, a, rec, sub) for uid, e, a, rec, sub in decisions]
    reqs = [casbin_request(d) for d in decisions]
    t = time.perf_counter()
    ours_answers = [s.can_record(e, a, rec, subscribed=sub) for s, e, a, rec, sub in ours_work]
    theirs = [enforcer.enforce(*r) for r in reqs]
    check_s = time.perf_counter() - t
    mismatches = [(d, o, c) for d, o, c in zip(decisions, ours_answers, theirs) if o != c]
    allowed = sum(ours_answers)
    say(f"  check: {len(decisions):,} decisions, {allowed / len(decisions):.0%} allowed, "
        f"{len(mismatches)} disagreements ({check_s:.1f} s)")
    for d, o, c in mismatches[:10]:
        uid, e, a, rec, sub = d
        say(f"    user {uid} ({ws.users[uid]['kind']}) {a} {e} {rec} subscribed={sub}: ours {o}, casbin {c}")
    if mismatches:
        say("The two models disagree: no timing.")
        common.write_json(args.json, "decisions", [], ok=False, smoke=args.smoke,
                          error=f"{len(mismatches)} disagreements with pycasbin")
        return 1

    # Timing: each side alone, warm (subjects and enforcer built once, as a websocket holds its Subject).
    n_ours, s_ours, best_ours = time_loop(ours_pass, ours_work, args.seconds)
    # pycasbin is ~700x slower: time it on the first 5,000 of the same decisions for a third as long.
    casbin_reqs = reqs[:5_000]
    n_cb, s_cb, best_cb = time_loop(casbin_pass(enforcer), casbin_reqs, max(args.seconds / 3, min(args.seconds, 0.2)))
    n_loop, s_loop, _ = time_loop(loop_pass, ours_work, min(args.seconds, 0.5))
    n_dict, s_dict, _ = time_loop(dict_pass, ours_work, min(args.seconds, 0.5))
    ours = n_ours / s_ours
    theirs_rate = n_cb / s_cb
    ratio = ours / theirs_rate
    loop_rate, dict_rate = n_loop / s_loop, n_dict / s_dict
    say("")
    say("| side | decisions | seconds | decisions/s | per decision | best pass |")
    say("|---|---:|---:|---:|---:|---:|")
    say(f"| auth.policy.Subject.can_record | {n_ours:,} | {s_ours:.2f} | {ours:,.0f} | {1e9 / ours:,.0f} ns | "
        f"{len(ours_work) / best_ours:,.0f}/s |")
    say(f"| pycasbin {casbin_version} FastEnforcer | {n_cb:,} | {s_cb:.2f} | {theirs_rate:,.0f} | "
        f"{1e9 / theirs_rate:,.0f} ns | {len(casbin_reqs) / best_cb:,.0f}/s |")
    say(f"| (the loop alone, a trivial call) | {n_loop:,} | {s_loop:.2f} | {loop_rate:,.0f} | {1e9 / loop_rate:,.0f} ns | |")
    say(f"| (the loop + one dict lookup) | {n_dict:,} | {s_dict:.2f} | {dict_rate:,.0f} | {1e9 / dict_rate:,.0f} ns | |")
    say("")
    say(f"Ratio ours / pycasbin: {ratio:,.1f} (target >= {TARGET_RATIO:g}); ours {ours:,.0f}/s "
        f"(target >= {TARGET_RATE:,}/s). Building one Subject (effective rights + members): {build_us:.1f} us.")
    details = {"decisions_checked": len(decisions), "allowed_share": round(allowed / len(decisions), 3),
               "casbin_version": casbin_version, "subject_build_us": round(build_us, 2),
               "loop_only_per_s": round(loop_rate), "loop_plus_dict_lookup_per_s": round(dict_rate),
               "mix": {k: round(v / len(decisions), 3) for k, v in sorted(kinds.items())}, **sizes}
    figures = [
        common.figure("record-level permission decisions/s in process (vs pycasbin FastEnforcer)",
                      round(ours), round(theirs_rate), "decisions/s", f">= {TARGET_RATIO:g}",
                      baseline_name=f"pycasbin {casbin_version} FastEnforcer", **details),
        common.figure("record-level permission decisions/s in process (absolute)", round(ours), None,
                      "decisions/s", f">= {TARGET_RATE:,}/s"),
    ]
    met_rate, met_ratio = figures[1]["met"], figures[0]["met"]
    common.write_json(args.json, "decisions", figures, ok=True, smoke=args.smoke)
    return 0 if (met_rate and met_ratio) else 2


if __name__ == "__main__":
    sys.exit(main())
