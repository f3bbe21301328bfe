"""Who may see an event, and what they see of it. Pure: the permission core decides, the same
renderers as REST shape the payload, so a websocket shows exactly what a GET would.

``view(subject, event, defs)`` answers with a *signature* (the facts that change the rendering for
this reader, e.g. "real view right, fields 1 and 3 visible, contact restricted") and a function that
renders for it. Readers who share a signature share one serialisation (SPEC section 4).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from auth.access import cell_visible, chat_visible, email_visible, lead_visible, task_visible
from auth.policy import Subject

from ..actions import render
from ..store.events import Event
from ..times import iso

Defs = Mapping[str, Mapping[int, Any]]


# (signature, build): the facts that change the rendering for this reader, and how to render for
# them. A plain tuple, because one is made per reader per event (a frozen dataclass cost 0.4 µs more
# each, a NamedTuple 0.3 µs).
View = tuple[tuple, Callable[[], dict[str, Any]]]


def lost_lead(subject: Subject, event: Event) -> int | None:
    """The lead this event took out of the reader's sight, if any (for ``access_revoked``)."""
    data = event.data
    if event.type in ("lead.updated", "subscription.changed") and data.get("before"):
        subs_before = data.get("subscribers_before", data.get("subscribers", ()))
        if cell_visible(subject, data["before"], subs_before) and not lead_visible(subject, data):
            return data["lead"]["id"]
    return None


def attachment_json(subject: Subject, attachment: Mapping[str, Any]) -> dict[str, Any]:
    """Rule 9: without files_access an attachment is its type and nothing else."""
    if subject.rights.files_access:
        return dict(attachment)
    return {"type": attachment["type"], "hidden": True}


def message_json(subject: Subject, message: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": message["id"], "conversation_id": message["conversation_id"], "author_type": message["author_type"],
            "author_user_id": message["author_user_id"], "text": message["text"],
            "attachments": [attachment_json(subject, a) for a in message["attachments"]],
            # Events stored before outbound delivery existed carry no delivery fields.
            "status": message["status"], "attempts": message.get("attempts", 0),
            "last_code": message.get("last_code"), "last_error": message.get("last_error"),
            "created_at": iso(message["created_at"])}


def _relation(subject: Subject, user_id: int | None) -> int:
    if user_id == subject.user_id:
        return 2
    return 1 if user_id in subject.members else 0


def reader_class(subject: Subject, event: Event) -> tuple | None:
    """A key shared by readers who must get the same ``view`` of this event, or None when a reader
    must be decided alone. Only for chat messages, the event that reaches the most readers: what a
    reader sees of one depends on their rights (``rights_class``: rights sources and admin flag), on
    whether they are subscribed to the lead, and on how they stand to the lead's and the contact's
    responsible users (themselves, a team-mate, neither) — nothing else about them."""
    if event.type != "message.created":
        return None
    data = event.data
    lead = data.get("lead")
    return (subject.rights_class, subject.user_id in data.get("subscribers", ()),
            _relation(subject, lead["responsible_user_id"]) if lead else -1,
            _relation(subject, data["contact"]["responsible_user_id"]))


def view(subject: Subject, event: Event, defs: Defs) -> View | None:
    data = event.data
    kind = event.type
    if kind in ("lead.created", "lead.updated"):
        if not lead_visible(subject, data):
            return None
        return _lead_view(subject, kind, data, defs, {})
    if kind == "subscription.changed":
        # Only to the user whose subscription changed, while they see the lead: their card changed
        # (``subscribed``, and through a subscription alone the lead itself), nobody else's did.
        # Events stored before they carried the card (only its cell) have nothing to show.
        if subject.user_id not in data.get("user_ids", ()) or "contacts" not in data \
                or not lead_visible(subject, data):
            return None
        return _lead_view(subject, kind, data, defs, {"subscribed": data["subscribed"]})
    if kind == "lead.deleted":
        if not lead_visible(subject, data):
            return None
        return ((kind,), lambda: {"lead_id": data["lead"]["id"]})
    if kind in ("contact.created", "contact.updated", "company.created", "company.updated"):
        entity = "contacts" if kind.startswith("contact") else "companies"
        record = data["record"]
        if not subject.can_entity(entity, "view", record["responsible_user_id"]):
            return None
        shape = render.contact_json if entity == "contacts" else render.company_json
        return ((kind, _party_signature(subject, entity, record, defs)),
                    lambda: {entity[:-1] if entity == "contacts" else "company": shape(subject, record, defs[entity])})
    if kind in ("contact.deleted", "company.deleted"):
        entity = "contacts" if kind.startswith("contact") else "companies"
        if not subject.can_entity(entity, "view", data["record"]["responsible_user_id"]):
            return None
        return ((kind,), lambda: {"id": data["record"]["id"]})
    if kind in ("task.created", "task.updated"):
        task = data["task"]
        if task_visible(subject, data):
            return ((kind,), lambda: {"task": render.task_json(task)})
        if kind == "task.updated" and task_visible(subject, data["before"]):
            # Out of sight now (reassigned, moved to a record they cannot view): say so, show nothing.
            return ((kind, "hidden"), lambda: {"task_id": task["id"], "hidden": True})
        return None
    if kind == "task.deleted":
        if not task_visible(subject, data):
            return None
        return ((kind,), lambda: {"task_id": data["task"]["id"]})
    if kind == "message.created":
        if not chat_visible(subject, data):
            return None
        contact = data["contact"]
        contact_ok = subject.can_entity("contacts", "view", contact["responsible_user_id"])
        signature = (kind, subject.rights.files_access, _party_signature(subject, "contacts", contact, defs)
                     if contact_ok else False)
        return (signature, lambda: {"message": message_json(subject, data["message"]),
                                        "conversation": {"id": data["conversation"]["id"],
                                                         "lead_id": data["conversation"]["lead_id"]},
                                        "contact": render.contact_card(subject, contact, defs["contacts"])})
    if kind == "message.status":
        if not chat_visible(subject, data):
            return None
        message = data["message"]
        return ((kind,), lambda: {"message_id": message["id"], "conversation_id": message["conversation_id"],
                                  "status": message["status"], "attempts": message["attempts"],
                                  "last_code": message["last_code"], "last_error": message["last_error"]})
    if kind == "conversation.updated":
        if not chat_visible(subject, data):
            return None
        return ((kind,), lambda: {"conversation": dict(data["conversation"]), "before": data["before"]})
    if kind == "thread.updated":
        if not email_visible(subject, data["members"]):
            return None
        return ((kind,), lambda: {"thread": data["thread"], "before": data["before"]})
    if kind == "email.created":
        if not email_visible(subject, data["members"]):
            return None
        files = subject.is_admin or subject.rights.files_access
        return ((kind, files), lambda: {"email": render.email_json(subject, data["email"])})
    if kind == "email.status":
        if not email_visible(subject, data["members"]):
            return None
        email = data["email"]
        return ((kind,), lambda: {"email_id": email["id"], "inbox_id": email["inbox_id"],
                                  "thread_id": email["thread_id"], "status": email["status"],
                                  "attempts": email["attempts"], "last_code": email["last_code"],
                                  "last_error": email["last_error"]})
    if kind == "notification.created":
        if data["user_id"] != subject.user_id:
            return None
        return ((kind, subject.user_id), lambda: {"notification": data["notification"]})
    return None  # control events (access, security, fields) are handled by the hub, not delivered


def _lead_view(subject: Subject, kind: str, data: Mapping[str, Any], defs: Defs, extra: dict[str, Any]) -> View:
    """A lead card as ``GET /leads/{id}`` shows it to this reader (rules 5, 6 and 7)."""
    lead = data["lead"]
    subscribed = subject.user_id in data.get("subscribers", ())
    real = subject.lead_view_right(lead["pipeline_id"], lead["stage_id"], lead["responsible_user_id"])
    shown = tuple(sorted(render.shown_custom(subject, "leads", defs["leads"], lead["custom"]))) if real else ()
    contacts = data.get("contacts", [])
    company = data.get("company")
    signature = (kind, real, subscribed, shown,
                 tuple(_party_signature(subject, "contacts", c, defs) for c in contacts),
                 _party_signature(subject, "companies", company, defs) if company else None)
    return (signature, lambda: {"lead": render.lead_json(subject, lead, subscribed=subscribed, contacts=contacts,
                                                         company=company, defs=defs), **extra})


def _party_signature(subject: Subject, entity: str, record: Mapping[str, Any], defs: Defs) -> tuple:
    if not subject.can_entity(entity, "view", record["responsible_user_id"]):
        return (False,)
    return (True, tuple(sorted(render.shown_custom(subject, entity, defs[entity], record["custom"]))))
