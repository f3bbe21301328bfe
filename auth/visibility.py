"""Compile "which records may this user see" into a plan of index ranges, so lists, counts and
exports filter in the database (rule 12). Pure and backend-neutral: it returns the plan, and the
store renders it in its SQL dialect (``inbox/store/plans.py``).

The visible part of a table is a union of *slices*. A slice fixes at most a stage and a responsible
user, both by equality, so each slice is one contiguous range of an index that ends in ``id``:
``(stage_id, responsible_user_id, id)``, ``(stage_id, id)``, ``(responsible_user_id, id)`` or the
primary key. Reading every slice newest-first with ``LIMIT n`` and merging costs O(slices x n)
whatever the depth of the page, where a single ``WHERE a OR b OR c ORDER BY id DESC`` makes SQLite
either sort every visible row or walk the whole table. ``groups()`` gives the same set as a few
(stages, responsible users) pairs, which render as one predicate, for counts and for plans with too
many slices.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, cast

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

    def groups(self) -> list[tuple[tuple[int, ...] | None, tuple[int, ...] | None]]:
        """The slices as few (stages, responsible users) pairs, None meaning any: stages that share
        the same set of responsible users form one pair (usually one per level). What a backend
        renders as one compact predicate; subscriptions are apart."""
        by_stage: dict[int | None, set[int] | None] = {}
        for s in self.slices:
            if s.responsible is None:
                by_stage[s.stage_id] = None
            else:
                cur = by_stage.setdefault(s.stage_id, set())
                if cur is not None:
                    cur.add(s.responsible)
        grouped: dict[frozenset[int] | None, list[int | None]] = {}
        for stage, people in by_stage.items():
            grouped.setdefault(frozenset(people) if people is not None else None, []).append(stage)
        out: list[tuple[tuple[int, ...] | None, tuple[int, ...] | None]] = []
        for members, stages in sorted(grouped.items(), key=lambda kv: sorted(kv[1], key=lambda x: x or 0)):
            out.append((None if stages == [None] else tuple(sorted(cast("list[int]", stages))),
                        None if members is None else tuple(sorted(members))))
        return out


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


@dataclass(frozen=True, slots=True)
class TasksPlan:
    """Rule 10 compiled: every task, or tasks owned by one of ``owners`` or attached to a record the
    user may view (each entity's plan)."""

    everything: bool
    owners: tuple[int, ...] = ()
    attached: tuple[tuple[str, Visibility], ...] = ()


def tasks_plan(subject: Subject, attached: Mapping[str, Visibility]) -> TasksPlan:
    """Rule 10: own tasks, tasks the task edit level covers, tasks on records the user can view."""
    level = subject.rights.tasks.edit
    if subject.is_admin or level == A:
        return TasksPlan(True)
    owners = {subject.user_id} | (set(subject.members) if level == G else set())
    return TasksPlan(False, tuple(sorted(owners)),
                     tuple((entity, vis) for entity, vis in attached.items() if not vis.nothing))


__all__ = ["Slice", "Visibility", "TasksPlan", "leads_visibility", "entity_visibility", "tasks_plan", "MAX_SLICES"]
