"""Compile "which records may this user see" into SQL, so lists, counts and exports filter in the
database (rule 12). Pure: it returns SQL text and parameters; the store runs them.

The visible part of a table is a union of *slices*. A slice fixes at most a stage and a responsible
user, both by equality, so each slice is one contiguous range of an index that ends in ``id``:
``(stage_id, responsible_user_id, id)``, ``(stage_id, id)``, ``(responsible_user_id, id)`` or the
primary key. Reading every slice newest-first with ``LIMIT n`` and merging costs O(slices x n)
whatever the depth of the page, where a single ``WHERE a OR b OR c ORDER BY id DESC`` makes SQLite
either sort every visible row or walk the whole table. ``where()`` gives the same set as one
predicate, for counts and for plans with too many slices.

Column names are fixed here; values always travel as parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, cast

from .policy import LEAD_ACTIONS, Subject
from .rights import A, D, G, M

# A UNION of short index ranges stays cheap into the hundreds of branches (measured: 100 slices,
# 1 ms); SQLite allows 500 compound terms. Past this, pages walk the primary key instead.
MAX_SLICES = 400


@dataclass(frozen=True, slots=True)
class Slice:
    stage_id: int | None = None      # None: any stage
    responsible: int | None = None   # None: anyone


@dataclass(frozen=True, slots=True)
class Visibility:
    """The compiled answer: slices (disjoint) plus, for leads, the user's subscriptions."""

    slices: tuple[Slice, ...]
    subscriber: int | None = None    # also show leads this user is subscribed to

    @property
    def everything(self) -> bool:
        return Slice() in self.slices

    @property
    def nothing(self) -> bool:
        return not self.slices and self.subscriber is None

    def slice_where(self, s: Slice, prefix: str = "") -> tuple[str, list[Any]]:
        parts, params = [], []
        if s.stage_id is not None:
            parts.append(f"{prefix}stage_id = ?")
            params.append(s.stage_id)
        if s.responsible is not None:
            parts.append(f"{prefix}responsible_user_id = ?")
            params.append(s.responsible)
        return (" AND ".join(parts) or "1"), params

    def rule_where(self, prefix: str = "") -> tuple[str, list[Any]]:
        """The slices as one compact predicate (without subscriptions)."""
        if self.everything:
            return "1", []
        if not self.slices:
            return "0", []
        # Group stages that share the same set of responsible users: usually one term per level.
        by_stage: dict[int | None, set[int] | None] = {}
        for s in self.slices:
            if s.responsible is None:
                by_stage[s.stage_id] = None
            else:
                cur = by_stage.setdefault(s.stage_id, set())
                if cur is not None:
                    cur.add(s.responsible)
        groups: dict[frozenset[int] | None, list[int | None]] = {}
        for stage, people in by_stage.items():
            groups.setdefault(frozenset(people) if people is not None else None, []).append(stage)
        terms, params = [], []
        for members, stages in sorted(groups.items(), key=lambda kv: sorted(kv[1], key=lambda x: x or 0)):
            conds = []
            if stages != [None]:
                conds.append(f"{prefix}stage_id IN ({_marks(stages)})")
                params.extend(sorted(cast("list[int]", stages)))  # stage slices: every id is set
            if members is not None:
                conds.append(f"{prefix}responsible_user_id IN ({_marks(members)})")
                params.extend(sorted(members))
            terms.append("(" + " AND ".join(conds or ["1"]) + ")")
        return "(" + " OR ".join(terms) + ")", params

    def where(self, prefix: str = "") -> tuple[str, list[Any]]:
        """Every visible row as one predicate: the rules, or a subscription."""
        sql, params = self.rule_where(prefix)
        if self.subscriber is None or self.everything:
            return sql, params
        sub = f"{prefix}id IN (SELECT lead_id FROM lead_subscribers WHERE user_id = ?)"
        return f"({sql} OR {sub})", [*params, self.subscriber]


def _marks(values: Iterable[Any]) -> str:
    return ",".join("?" * len(list(values)))


def _level_slices(subject: Subject, level: int, stage_id: int | None) -> list[Slice]:
    if level == A:
        return [Slice(stage_id, None)]
    if level == G:
        return [Slice(stage_id, m) for m in sorted(subject.members)]
    if level == M:
        return [Slice(stage_id, subject.user_id)]
    return []


def _restrict(slices: Iterable[Slice], stages: frozenset[int] | None, responsible: int | None) -> list[Slice]:
    """Intersect slices with list filters, keeping each one an index range."""
    out: list[Slice] = []
    for s in slices:
        stage_options = [s.stage_id] if stages is None or s.stage_id is not None else sorted(stages)
        for stage in stage_options:
            if stages is not None and stage not in stages:
                continue
            if responsible is not None and s.responsible not in (None, responsible):
                continue
            out.append(Slice(stage, responsible if responsible is not None else s.responsible))
    return out


def leads_visibility(subject: Subject, catalogue: Mapping[int, int], *, action: str = "view",
                     stages: frozenset[int] | None = None, responsible: int | None = None) -> Visibility:
    """Leads ``subject`` may ``action`` (view or export), optionally within ``stages`` / ``responsible``.

    ``catalogue`` maps every stage id to its pipeline id; a lead's stage is always in it.
    """
    assert action in LEAD_ACTIONS
    index = LEAD_ACTIONS.index(action)
    levels = {stage: subject.lead_levels(pipeline, stage)[index] for stage, pipeline in catalogue.items()}
    uniform = set(levels.values())
    if len(uniform) <= 1:
        # One level everywhere (the usual case): slice by responsible user only.
        level = uniform.pop() if uniform else (A if subject.is_admin else D)
        base = _level_slices(subject, level, None)
    else:
        base = [sl for stage, level in sorted(levels.items()) for sl in _level_slices(subject, level, stage)]
    subscriber = subject.user_id if action == "view" and not subject.is_admin else None
    return Visibility(tuple(_restrict(base, stages, responsible)), subscriber)


def entity_visibility(subject: Subject, entity: str, *, action: str = "view",
                      responsible: int | None = None) -> Visibility:
    """Contacts or companies: the merged level decides, there are no stages."""
    level = A if subject.is_admin else subject.entity_level(entity, action)
    return Visibility(tuple(_restrict(_level_slices(subject, level, None), None, responsible)))


def tasks_where(subject: Subject, attached: Mapping[str, Visibility], prefix: str = "") -> tuple[str, list[Any]]:
    """Rule 10: own tasks, tasks the task edit level covers, tasks on records the user can view."""
    if subject.is_admin:
        return "1", []
    terms = [f"{prefix}responsible_user_id = ?"]
    params: list[Any] = [subject.user_id]
    level = subject.rights.tasks.edit
    if level == A:
        return "1", []
    if level == G:
        terms.append(f"{prefix}responsible_user_id IN ({_marks(subject.members)})")
        params.extend(sorted(subject.members))
    for entity, vis in attached.items():
        if vis.nothing:
            continue
        sql, p = vis.where()
        terms.append(f"({prefix}entity_type = '{entity}' AND {prefix}entity_id IN (SELECT id FROM {entity} WHERE {sql}))")
        params.extend(p)
    return "(" + " OR ".join(terms) + ")", params


__all__ = ["Slice", "Visibility", "leads_visibility", "entity_visibility", "tasks_where", "MAX_SLICES"]
