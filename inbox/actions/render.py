"""Records as a given user may see them. Pure: the rows and the user's ``Subject`` go in, JSON comes out.

The same functions shape REST answers, exports and (later) websocket events, so a field hidden here
is hidden everywhere (rule 7).
"""

from __future__ import annotations

from typing import Any, Mapping

import orjson

from auth.policy import Subject

from ..times import iso
from .fields import shown_custom

Defs = Mapping[int, Any]


def contact_card(subject: Subject, contact: dict[str, Any], defs: Defs) -> dict[str, Any]:
    """A contact inside something the user may see: all of it, or only name and avatar (rule 6)."""
    if subject.can_entity("contacts", "view", contact["responsible_user_id"]):
        return contact_json(subject, contact, defs)
    return {"name": contact["name"], "avatar": contact["avatar"], "restricted": True}


def company_card(subject: Subject, company: dict[str, Any], defs: Defs) -> dict[str, Any]:
    # The same treatment as contacts: a company the user cannot view shows its name only.
    if subject.can_entity("companies", "view", company["responsible_user_id"]):
        return company_json(subject, company, defs)
    return {"name": company["name"], "restricted": True}


def _times(record: dict[str, Any]) -> dict[str, Any]:
    return {"created_at": iso(record["created_at"]), "updated_at": iso(record["updated_at"])}


def contact_json(subject: Subject, c: dict[str, Any], defs: Defs) -> dict[str, Any]:
    return {"id": c["id"], "name": c["name"], "avatar": c["avatar"], "emails": c["emails"], "phones": c["phones"],
            "company_id": c["company_id"], "responsible_user_id": c["responsible_user_id"],
            "custom_fields": shown_custom(subject, "contacts", defs, c["custom"]), **_times(c)}


def company_json(subject: Subject, c: dict[str, Any], defs: Defs) -> dict[str, Any]:
    return {"id": c["id"], "name": c["name"], "responsible_user_id": c["responsible_user_id"],
            "custom_fields": shown_custom(subject, "companies", defs, c["custom"]), **_times(c)}


def lead_json(subject: Subject, lead: dict[str, Any], *, subscribed: bool, contacts: list[dict[str, Any]],
              company: dict[str, Any] | None, defs: Mapping[str, Defs]) -> dict[str, Any]:
    """A lead for a user who may view it, by a real right or by subscription (rule 5)."""
    real = subject.lead_view_right(lead["pipeline_id"], lead["stage_id"], lead["responsible_user_id"])
    out = {"id": lead["id"], "name": lead["name"], "price": lead["price"], "pipeline_id": lead["pipeline_id"],
           "stage_id": lead["stage_id"], "responsible_user_id": lead["responsible_user_id"],
           "company": company_card(subject, company, defs["companies"]) if company else None,
           "contacts": [contact_card(subject, c, defs["contacts"]) for c in contacts],
           "subscribed": subscribed, "access": "full" if real else "subscription", **_times(lead)}
    if real:
        # Custom fields only through a real view right, never through a subscription (seed 001).
        out["custom_fields"] = shown_custom(subject, "leads", defs["leads"], lead["custom"])
    return out


def task_json(t: dict[str, Any]) -> dict[str, Any]:
    return {"id": t["id"], "text": t["text"], "due_at": iso(t["due_at"]), "responsible_user_id": t["responsible_user_id"],
            "entity_type": t["entity_type"], "entity_id": t["entity_id"], "is_done": t["is_done"], **_times(t)}


def email_json(subject: Subject, row) -> dict[str, Any]:
    attachments = orjson.loads(row["attachments"]) if isinstance(row["attachments"], str) else row["attachments"]
    files = subject.is_admin or subject.rights.files_access
    return {"id": row["id"], "inbox_id": row["inbox_id"], "thread_id": row["thread_id"], "message_id": row["message_id"],
            "in_reply_to": row["in_reply_to"], "subject": row["subject"], "from": {"address": row["from_addr"],
                                                                                   "name": row["from_name"]},
            "to": orjson.loads(row["to_addrs"]) if isinstance(row["to_addrs"], str) else row["to_addrs"],
            "sent_at": iso(row["sent_at"]), "text": row["text"], "html": row["html"],
            "attachments": [a if files else {"type": a["type"], "hidden": True} for a in attachments],
            "contact_id": row["contact_id"], "lead_id": row["lead_id"], "created_at": iso(row["created_at"]),
            **_delivery(row)}


def _delivery(row) -> dict[str, Any]:
    """Direction and sending state; emails stored in events before replies existed have neither."""
    keys = row.keys()
    def get(key, default=None):
        return row[key] if key in keys else default
    cc = get("cc_addrs", [])
    return {"direction": get("direction", "incoming"), "cc": orjson.loads(cc) if isinstance(cc, str) else cc,
            "author_user_id": get("author_user_id"), "status": get("status"), "attempts": get("attempts", 0),
            "last_code": get("last_code"), "last_error": get("last_error")}


def sending_state(state: dict[str, Any] | None) -> dict[str, Any]:
    """A channel's or inbox's delivery state (``store.outbox.target``): paused since when, failed
    attempts in a row, and the last error."""
    state = state or {}
    return {"paused_at": iso(state.get("paused_at")), "failures": state.get("failures", 0),
            "last_error": state.get("last_error")}
