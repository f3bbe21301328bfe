"""Response bodies for CRM records, pipelines, custom fields, chats, notifications, explain and activity.

As in ``responses``: documentation and a test oracle, with unknown keys refused.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from auth.rights_schema import Level

from .responses import AnyAttachment, FieldAccess, Out, RightsSource, Time, absent, items_of

# Values of custom fields by field id (as a string); fields hidden from the caller are absent (rule 7).
CustomValues = dict[str, str | int | float]


# --- pipelines and custom fields ---

class Stage(Out):
    id: int
    pipeline_id: int
    name: str
    sort: int


class Pipeline(Out):
    id: int
    name: str
    sort: int
    stages: list[Stage]


PipelineList = items_of(Pipeline, "PipelineList", "Pipelines the caller has access to")
StageList = items_of(Stage, "StageList", "A pipeline's stages in order")


class CustomField(Out):
    id: int
    name: str
    type: Literal["text", "number", "select", "date"]
    options: list[str]
    access: FieldAccess


CustomFieldList = items_of(CustomField, "CustomFieldList", "Custom fields the caller may see, with their access")


# --- records as the caller may see them (rules 5-7) ---

class Contact(Out):
    id: int
    name: str
    avatar: str | None
    emails: list[str]
    phones: list[str]
    company_id: int | None
    responsible_user_id: int
    custom_fields: CustomValues
    created_at: Time
    updated_at: Time


class RestrictedContact(Out):
    """A contact inside something the caller may see, without a right to view it: name and avatar."""

    name: str
    avatar: str | None
    restricted: Literal[True]


class Company(Out):
    id: int
    name: str
    responsible_user_id: int
    custom_fields: CustomValues
    created_at: Time
    updated_at: Time


class RestrictedCompany(Out):
    name: str
    restricted: Literal[True]


class Lead(Out):
    id: int
    name: str
    price: int
    pipeline_id: int
    stage_id: int
    responsible_user_id: int
    company: Company | RestrictedCompany | None
    contacts: list[Contact | RestrictedContact]
    subscribed: bool
    access: Literal["full", "subscription"]
    # Only through a real view right, never through a subscription.
    custom_fields: CustomValues = absent()
    created_at: Time
    updated_at: Time


class Task(Out):
    id: int
    text: str
    due_at: Time | None
    responsible_user_id: int
    entity_type: Literal["leads", "contacts", "companies"] | None
    entity_id: int | None
    is_done: bool
    created_at: Time
    updated_at: Time


class NotVisible(Out):
    """Written by the caller but outside what they may view (say, handed to someone else)."""

    id: int
    visible: Literal[False]


LeadPage = items_of(Lead, "LeadPage", "Leads the caller may see", cursor=True, page=True)
ContactPage = items_of(Contact, "ContactPage", "Contacts the caller may see", cursor=True, page=True)
CompanyPage = items_of(Company, "CompanyPage", "Companies the caller may see", cursor=True, page=True)
TaskPage = items_of(Task, "TaskPage", "Tasks the caller may see", cursor=True, page=True)
# Create and edit answer the card, or NotVisible when the result is outside the caller's view.
CARDS: dict[str, tuple[Any, Any, Any]] = {  # entity -> (card, card or not visible, page)
    "leads": (Lead, Lead | NotVisible, LeadPage),
    "contacts": (Contact, Contact | NotVisible, ContactPage),
    "companies": (Company, Company | NotVisible, CompanyPage),
    "tasks": (Task, Task | NotVisible, TaskPage),
}


# --- subscribers, notifications, explain ---

class Subscriber(Out):
    user_id: int
    name: str
    avatar: str | None


SubscriberList = items_of(Subscriber, "SubscriberList", "A lead's subscribers")


class Notification(Out):
    id: int
    type: str
    lead_id: int | None
    data: dict[str, Any]
    created_at: Time
    read_at: Time | None


NotificationPage = items_of(Notification, "NotificationPage", "Notifications, newest first", cursor=True)


class Marked(Out):
    marked: int


class SourceAnswer(Out):
    source: str
    source_detail: RightsSource
    rule: str
    level: Level
    allows: bool


class Explanation(Out):
    """Rule 15. Which keys come depends on the answer: an administrator's or a task's is short."""

    user_id: int
    entity: Literal["leads", "contacts", "companies", "tasks"]
    action: Literal["add", "view", "edit", "delete", "export"]
    record_id: int | None
    allowed: bool
    rule: str
    source: str | None = absent()
    source_detail: RightsSource | None = absent()
    level: Level = absent()
    detail: str = absent()
    sources: list[SourceAnswer] = absent()


# --- chats ---

class Conversation(Out):
    id: int
    lead_id: int | None
    channel: str
    channel_id: int | None = Field(description="The chat channel it came from; null for an internal conversation")
    assignee_id: int | None
    status: Literal["open", "pending", "resolved"]
    unread_count: int = Field(description="Customer messages after your read mark")
    contact: Contact | RestrictedContact
    last_read_id: int | None
    created_at: Time
    updated_at: Time


ConversationPage = items_of(Conversation, "ConversationPage", "Conversations, newest first", cursor=True)


class Message(Out):
    id: int
    conversation_id: int
    author_type: Literal["contact", "agent"]
    author_user_id: int | None
    text: str
    attachments: list[AnyAttachment]
    status: Literal["queued", "sent", "delivered", "read", "failed"] = Field(
        description="An agent's reply on a channel: queued until the provider accepts it (sent), then as the"
                    " provider reports (delivered, read), or failed. Other messages: sent.")
    attempts: int = Field(description="Delivery attempts made so far (0 for messages that are not sent out)")
    last_code: int | None = Field(description="The provider's last HTTP status code")
    last_error: str | None = Field(description="Why the last attempt failed, or why the provider says it failed")
    created_at: Time


MessagePage = items_of(Message, "MessagePage", "Messages, newest first", cursor=True)


# --- activity ---

class ActivityEntry(Out):
    id: int
    at: Time
    actor_id: int | None
    ip: str
    type: str
    object_type: str | None
    object_id: int | None
    data: dict[str, Any]


ActivityPage = items_of(ActivityEntry, "ActivityPage", "The activity log, newest first", cursor=True, page=True)
