"""Visibility plans (``auth/visibility.py``) rendered in SQLite's SQL. Column names are fixed here;
values always travel as parameters."""

from __future__ import annotations

from typing import Any, Iterable

from auth.access import ChatPlan
from auth.visibility import Slice, TasksPlan, Visibility

ENTITY_TABLES = ("leads", "contacts", "companies")


def _marks(values: Iterable[Any]) -> str:
    return ",".join("?" * len(list(values)))


def slice_where(s: Slice, prefix: str = "") -> tuple[str, list[Any]]:
    parts, params = [], []
    if s.stage_id is not None:
        parts.append(f"{prefix}stage_id = ?")
        params.append(s.stage_id)
    if s.responsible is not None:
        parts.append(f"{prefix}responsible_user_id = ?")
        params.append(s.responsible)
    return (" AND ".join(parts) or "1"), params


def rule_where(vis: Visibility, prefix: str = "") -> tuple[str, list[Any]]:
    """The slices as one compact predicate (without subscriptions)."""
    if vis.everything:
        return "1", []
    if not vis.slices:
        return "0", []
    terms, params = [], []
    for stages, members in vis.groups():
        conds = []
        if stages is not None:
            conds.append(f"{prefix}stage_id IN ({_marks(stages)})")
            params.extend(stages)
        if members is not None:
            conds.append(f"{prefix}responsible_user_id IN ({_marks(members)})")
            params.extend(members)
        terms.append("(" + " AND ".join(conds or ["1"]) + ")")
    return "(" + " OR ".join(terms) + ")", params


def where(vis: Visibility, prefix: str = "") -> tuple[str, list[Any]]:
    """Every visible row as one predicate: the rules, or a subscription."""
    sql, params = rule_where(vis, prefix)
    if vis.subscriber is None or vis.everything:
        return sql, params
    sub = f"{prefix}id IN (SELECT lead_id FROM lead_subscribers WHERE user_id = ?)"
    return f"({sql} OR {sub})", [*params, vis.subscriber]


def tasks_where(plan: TasksPlan, prefix: str = "") -> tuple[str, list[Any]]:
    """Rule 10's plan as a predicate on tasks."""
    if plan.everything:
        return "1", []
    terms = [f"{prefix}responsible_user_id IN ({_marks(plan.owners)})"]
    params: list[Any] = list(plan.owners)
    for entity, vis in plan.attached:
        if entity not in ENTITY_TABLES:
            raise ValueError(f"tasks are not attached to {entity}")
        sql, p = where(vis)
        terms.append(f"({prefix}entity_type = '{entity}' AND {prefix}entity_id IN (SELECT id FROM {entity} WHERE {sql}))")
        params.extend(p)
    return "(" + " OR ".join(terms) + ")", params


def conversations_where(plan: ChatPlan) -> tuple[str, list[Any]]:
    """``auth.access.chat_plan`` on conversations: its lead in the leads plan, or its contact in the
    contacts plan (the rule ``auth.access.chat_visible`` states for one conversation)."""
    if plan.everything:
        return "1", []
    lead_sql, lead_params = where(plan.leads)
    contact_sql, contact_params = where(plan.contacts) if not plan.contacts.nothing else ("0", [])
    return (f"(lead_id IN (SELECT id FROM leads WHERE {lead_sql}) OR contact_id IN"
            f" (SELECT id FROM contacts WHERE {contact_sql}))", [*lead_params, *contact_params])
