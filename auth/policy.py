"""The permission core: who may do what to which record (SPEC section 2). Pure: no I/O, no clock.

A ``Subject`` is one user's rights at one moment: their rights sources (own rights or role, and
their groups' roles), the merged summary of those, and the users they share a group with. The server
loads those facts and asks; it never decides on its own.

How a lead is decided (rule 2): each source decides alone, first by its pipeline access (rule 3),
then by its stage right for the lead's stage if it has one (rule 4) or else by its lead levels; the
user gets the most permissive answer. Because a level's coverage only grows with the level, "most
permissive answer" is the maximum level per action over the sources, computed once per stage and
cached. A subscription (rule 5) adds view, never edit, delete, export or custom fields.

Contacts, companies and tasks have no pipeline or stage, so the merged levels decide them directly.
"""

from __future__ import annotations

from typing import Any, Iterable, Literal

from .rights import (
    EDIT,
    ENTITIES,
    FIELD_ACCESS,
    HIDDEN,
    LEVEL_CODES,
    READ,
    A,
    D,
    Effective,
    Rights,
    Source,
    admin_effective,
    full_rights,
)

LEAD_ACTIONS = ("view", "edit", "delete", "export")


def _source_lead_levels(rights: Rights, pipeline_id: int, stage_id: int) -> tuple[int, int, int, int]:
    """One source's answer for a lead in (pipeline, stage): levels for view, edit, delete, export."""
    if not rights.pipeline_allowed(pipeline_id):
        return D, D, D, D
    sr = rights.stage_rights.get((pipeline_id, stage_id))
    leads = rights.leads
    if sr is None:
        return leads.view, leads.edit, leads.delete, leads.export
    # A stage right replaces view/edit/delete; export keeps its own level but never exceeds edit (rule 1).
    return sr.view, sr.edit, sr.delete, min(leads.export, sr.edit)


def _source_lead_rule(rights: Rights, pipeline_id: int, stage_id: int) -> str:
    if not rights.pipeline_allowed(pipeline_id):
        return "pipeline_access"
    return "stage_right" if (pipeline_id, stage_id) in rights.stage_rights else "lead_level"


# A scope is what one level covers for this user, ready for one membership test: ``True`` (A: every
# record), or a container of the responsible users whose records it covers (G: the group co-members
# and the user, M: the user alone, D: nobody). Deciding is then ``scope is True or responsible in scope``.
_NOBODY: tuple[int, ...] = ()
Scope = tuple[int, ...] | frozenset[int] | Literal[True]
_LEAD_INDEX = {action: i for i, action in enumerate(LEAD_ACTIONS)}
_ENTITY_ACTIONS = ("add", "view", "edit", "delete", "export")


class _Levels:
    """The levels a set of rights sources gives, per entity action and per (pipeline, stage).

    They depend on the sources alone, not on who holds them, so every user with the same sources
    (everyone with one role, when the server shares their ``Effective``) shares one table: an open
    websocket keeps its user's Subject for hours, and per-user tables cost ~2 KB each.
    """

    __slots__ = ("entity", "cells", "sources", "is_admin")

    def __init__(self, sources: tuple[Source, ...], rights: Rights, is_admin: bool) -> None:
        self.sources = sources
        self.is_admin = is_admin
        self.entity: dict[tuple[str, str], int] = {}
        for entity in ENTITIES:     # leads too: their merged levels, as entity_level gives them
            ent = rights.entity(entity)
            for action in _ENTITY_ACTIONS:
                level = ent.level(action)
                # add is A or D whoever the record belongs to
                self.entity[entity, action] = (A if level == A else D) if action == "add" else level
        self.cells: dict[tuple[int, int], tuple[int, int, int, int]] = {}

    def cell(self, pipeline_id: int, stage_id: int) -> tuple[int, int, int, int]:
        """Levels for (view, edit, delete, export) on leads in this stage: the maximum over sources."""
        key = (pipeline_id, stage_id)
        cell = self.cells.get(key)
        if cell is None:
            if self.is_admin:
                cell = (A, A, A, A)
            else:
                answers = [_source_lead_levels(s.rights, pipeline_id, stage_id) for s in self.sources]
                cell = tuple(max(col) for col in zip(*answers)) if answers else (D, D, D, D)
            self.cells[key] = cell
        return cell


class Subject:
    """One user's rights, ready to answer many questions quickly.

    The hot path (``can_record``, ``can_lead``, ``can_entity``) is two dict or tuple lookups and one
    membership test: the levels come from a table shared by everyone with the same rights sources
    (per stage, computed once), and ``_scopes`` turns a level into what it covers for this user.
    """

    __slots__ = ("user_id", "is_admin", "sources", "rights", "members", "_levels", "_scopes")

    def __init__(self, user_id: int, *, is_admin: bool, effective: Effective,
                 members: Iterable[int] = ()) -> None:
        self.user_id = user_id
        self.is_admin = is_admin
        self.sources: tuple[Source, ...] = effective.sources
        self.rights: Rights = full_rights() if is_admin else effective.rights
        # G covers the records of everyone who shares a group with the user, and the user's own
        # records even when the user is in no group ("levels nest"). Kept as given when it already
        # includes the user, so a caller may share one frozenset between team-mates.
        members = frozenset(members)
        self.members: frozenset[int] = members if user_id in members else members | {user_id}
        levels = effective.tables.get(is_admin)
        if levels is None:
            levels = effective.tables[is_admin] = _Levels(self.sources, self.rights, is_admin)
        self._levels = levels
        self._scopes: tuple[Scope, ...] = (_NOBODY, (user_id,), self.members, True)  # by level: D, M, G, A

    @property
    def rights_class(self) -> object:
        """An object shared by every Subject with the same rights sources and admin flag: two such
        users decide alike wherever they stand in the same relation to the record (the same person,
        a team-mate, or neither), so a caller may decide once per class and relation."""
        return self._levels

    # --- levels ---

    def covers(self, level: int, responsible_user_id: int) -> bool:
        scope = self._scopes[level]
        return scope is True or responsible_user_id in scope

    def lead_levels(self, pipeline_id: int, stage_id: int) -> tuple[int, int, int, int]:
        """Levels for (view, edit, delete, export) on leads in this stage: the maximum over sources."""
        return self._levels.cells.get((pipeline_id, stage_id)) or self._levels.cell(pipeline_id, stage_id)

    def lead_level(self, action: str, pipeline_id: int, stage_id: int) -> int:
        return self.lead_levels(pipeline_id, stage_id)[LEAD_ACTIONS.index(action)]

    def entity_level(self, entity: str, action: str) -> int:
        return self.rights.entity(entity).level(action)

    # --- leads ---

    def can_add_lead(self, pipeline_id: int) -> bool:
        """``add`` is A or D; a source grants it only for pipelines it allows."""
        if self.is_admin:
            return True
        return any(s.rights.leads.add == A and s.rights.pipeline_allowed(pipeline_id) for s in self.sources)

    def lead_view_right(self, pipeline_id: int, stage_id: int, responsible_user_id: int) -> bool:
        """A real view right (level or stage), the only thing that shows custom fields (rule 5)."""
        cell = self._levels.cells.get((pipeline_id, stage_id)) or self._levels.cell(pipeline_id, stage_id)
        scope = self._scopes[cell[0]]
        return scope is True or responsible_user_id in scope

    def can_lead(self, action: str, pipeline_id: int, stage_id: int, responsible_user_id: int, *,
                 subscribed: bool = False) -> bool:
        """``action`` is view, edit, delete or export; a subscription adds view only (rule 5)."""
        if subscribed and action == "view":
            return True
        cell = self._levels.cells.get((pipeline_id, stage_id)) or self._levels.cell(pipeline_id, stage_id)
        scope = self._scopes[cell[_LEAD_INDEX[action]]]
        return scope is True or responsible_user_id in scope

    # --- contacts and companies ---

    def can_entity(self, entity: str, action: str, responsible_user_id: int) -> bool:
        scope = self._scopes[self._levels.entity[entity, action]]
        return scope is True or responsible_user_id in scope

    def can_record(self, entity: str, action: str, record: Any, *, subscribed: bool = False) -> bool:
        """Any record with ``responsible_user_id`` (and, for leads, ``pipeline_id`` and ``stage_id``)."""
        levels = self._levels
        if entity == "leads":
            if subscribed and action == "view":
                return True
            key = (record["pipeline_id"], record["stage_id"])
            level = (levels.cells.get(key) or levels.cell(*key))[_LEAD_INDEX[action]]
        else:
            level = levels.entity[entity, action]
        scope = self._scopes[level]
        return scope is True or record["responsible_user_id"] in scope

    # --- tasks (rule 10) ---

    def task_visible(self, responsible_user_id: int, *, attached_viewable: bool) -> bool:
        return (responsible_user_id == self.user_id or attached_viewable
                or self.covers(self.rights.tasks.edit, responsible_user_id))

    def can_task(self, action: str, responsible_user_id: int) -> bool:
        return self.covers(getattr(self.rights.tasks, action), responsible_user_id)

    # --- fields (rule 7) ---

    def field_access(self, entity: str, field_id: int) -> int:
        if self.is_admin:
            return EDIT
        return self.rights.field_access(entity, field_id)

    def shown_fields(self, entity: str, field_ids: Iterable[int]) -> list[int]:
        return [f for f in field_ids if self.field_access(entity, f) != HIDDEN]

    # --- explain (rule 15) ---

    def explain(self, entity: str, action: str, record: Any, *, subscribed: bool = False) -> dict[str, Any]:
        """Why this user may or may not do ``action`` on ``record``: the deciding rule and source."""
        allowed = self.can_record(entity, action, record, subscribed=subscribed) if action != "add" else (
            self.can_add_lead(record["pipeline_id"]) if entity == "leads" else self.can_entity(entity, "add", 0))
        if self.is_admin:
            return {"allowed": True, "rule": "admin", "source": "admin", "source_detail": dict(_ADMIN_SOURCE),
                    "detail": "Administrators see and do everything."}
        answers = [self._source_answer(s, entity, action, record) for s in self.sources]
        subscription_view = entity == "leads" and subscribed and action == "view"
        if not answers and not subscription_view:
            return {"allowed": False, "rule": "no_rights", "source": None, "source_detail": None, "sources": [],
                    "detail": "The user has no role, no own rights and no group with a role."}
        granting = [a for a in answers if a["allows"]]
        if granting:
            best = max(granting, key=lambda a: a["level_index"])
            out = {"allowed": True, "rule": best["rule"], "source": best["source"],
                   "source_detail": best["source_detail"], "level": best["level"]}
        elif subscription_view:
            out = {"allowed": True, "rule": "subscription", "source": "subscription", "source_detail": None,
                   "detail": "Subscribed users see the lead and its chats, but not its custom fields."}
        else:
            best = max(answers, key=lambda a: a["level_index"])
            out = {"allowed": False, "rule": best["rule"], "source": best["source"],
                   "source_detail": best["source_detail"], "level": best["level"]}
            if entity == "leads" and subscribed:
                out["detail"] = "A subscription never grants edit, delete or export."
        assert out["allowed"] == allowed, (out, allowed)
        out["sources"] = [{k: v for k, v in a.items() if k != "level_index"} for a in answers]
        return out

    def _source_answer(self, source: Source, entity: str, action: str, record: Any) -> dict[str, Any]:
        r = source.rights
        responsible = record.get("responsible_user_id", self.user_id)
        if entity == "leads":
            p, s = record["pipeline_id"], record.get("stage_id")
            if action == "add":
                level = A if (r.leads.add == A and r.pipeline_allowed(p)) else D
                rule = "pipeline_access" if not r.pipeline_allowed(p) else "lead_level"
                return _answer(source, rule, level, level == A)
            level = _source_lead_levels(r, p, s)[LEAD_ACTIONS.index(action)]
            rule = _source_lead_rule(r, p, s)
        else:
            level = r.entity(entity).level(action)
            rule = f"{entity[:-1] if entity != 'companies' else 'company'}_level"
            if action == "add":
                return _answer(source, rule, level, level == A)
        return _answer(source, rule, level, self.covers(level, responsible))


def _answer(source: Source, rule: str, level: int, allows: bool) -> dict[str, Any]:
    # "source" stays the label it always was; "source_detail" names the role and group with their ids.
    return {"source": source.label, "source_detail": source.to_json(), "rule": rule, "level": LEVEL_CODES[level],
            "level_index": level, "allows": allows}


_ADMIN_SOURCE = admin_effective().sources[0].to_json()


def field_access_name(access: int) -> str:
    return FIELD_ACCESS[access]


__all__ = ["Subject", "LEAD_ACTIONS", "ENTITIES", "HIDDEN", "READ", "EDIT", "field_access_name"]
