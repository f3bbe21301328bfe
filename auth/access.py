"""Who may see a conversation, an email, a task or a lead, each rule written once: the predicate the
websocket filter and single-record checks ask (from an event's facts), next to the plan that list
queries render in SQL (``chat_plan`` here, ``auth/visibility.py`` for records and tasks). Pure.

A chat (rules 5 and 6): admins, a real view right on its lead, a subscription to the lead, or a view
right on its contact. An email (rule 8): admins, and members of its inbox with ``mail_access``. A
task (rule 10): its owner, the task edit level, or a view of the record it is attached to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Container, Mapping

from .policy import Subject
from .visibility import Visibility, entity_visibility, leads_visibility


@dataclass(frozen=True, slots=True)
class ChatPlan:
    """Conversations a subject may read, for a list query: every one, or those whose lead is in
    ``leads`` (subscriptions included) or whose contact is in ``contacts``."""

    everything: bool
    leads: Visibility = Visibility(())
    contacts: Visibility = Visibility(())


def chat_plan(subject: Subject, catalogue: Mapping[int, int]) -> ChatPlan:
    """``chat_visible`` as a plan: the same three ways in (a real view right on the lead or a
    subscription, through ``leads_visibility``; the contact, through ``entity_visibility``)."""
    if subject.is_admin:
        return ChatPlan(True)
    return ChatPlan(False, leads_visibility(subject, catalogue), entity_visibility(subject, "contacts"))


def cell_visible(subject: Subject, cell: Mapping[str, Any] | None, subscribers: Container[int]) -> bool:
    if not cell:
        return False
    return subject.can_lead("view", cell["pipeline_id"], cell["stage_id"], cell["responsible_user_id"],
                            subscribed=subject.user_id in subscribers)


def lead_visible(subject: Subject, data: Mapping[str, Any]) -> bool:
    return cell_visible(subject, data["lead"], data.get("subscribers", ()))


def chat_visible(subject: Subject, data: Mapping[str, Any]) -> bool:
    """Rule 5 and 6: admin, a real view right on the lead, a subscription to it, or the contact."""
    if subject.is_admin:
        return True
    lead = data.get("lead")
    if lead and (subject.user_id in data.get("subscribers", ())
                 or subject.lead_view_right(lead["pipeline_id"], lead["stage_id"], lead["responsible_user_id"])):
        return True
    return subject.can_entity("contacts", "view", data["contact"]["responsible_user_id"])


def task_visible(subject: Subject, card: Mapping[str, Any] | None) -> bool:
    """Rule 10, from a task event's card: own tasks, tasks the task edit level covers, tasks on a
    record the reader can view (a lead also through a subscription, as in REST)."""
    if not card:
        return False
    task, attached = card["task"], card["attached"]
    if attached is None:
        seen = False
    elif task["entity_type"] == "leads":
        seen = cell_visible(subject, attached, card["subscribers"])
    else:
        seen = subject.can_entity(task["entity_type"], "view", attached["responsible_user_id"])
    return subject.task_visible(task["responsible_user_id"], attached_viewable=seen)


def email_visible(subject: Subject, members: Container[int]) -> bool:
    """Rule 8: admins, and users with mail_access who are members of the email's inbox."""
    return subject.is_admin or (bool(subject.rights.mail_access) and subject.user_id in members)
