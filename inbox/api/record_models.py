"""Request bodies and query strings for CRM records, pipelines and custom fields."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints, model_validator

from .models import Body, Id, Name, Page, Query

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=5000)]
Price = Annotated[int, Field(ge=0, le=10**15)]
Sort = Annotated[int, Field(ge=0, le=10**6)]
Custom = Annotated[dict[str, Any], Field(max_length=200)]
Search = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


def parse_time(value: Any) -> float:
    """RFC 3339 with an explicit offset ('Z' or +hh:mm) to UNIX seconds."""
    if not isinstance(value, str) or len(value) > 40:
        raise ValueError("expected an RFC 3339 time string such as 2026-01-31T09:00:00Z")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("expected an RFC 3339 time such as 2026-01-31T09:00:00Z") from None
    if parsed.tzinfo is None:
        raise ValueError("the time needs a timezone, such as Z or +02:00")
    try:
        return parsed.astimezone(UTC).timestamp()
    except OverflowError:  # 9999-12-31T23:59:59-01:00 is in year 10000 in UTC
        raise ValueError("the time is out of range: in UTC it must fall in the years 1 to 9999") from None


def _not_null(model, keys: tuple[str, ...]):
    for key in keys:
        if key in model.model_fields_set and getattr(model, key) is None:
            raise ValueError(f"{key} cannot be null")
    return model


class LeadIn(Body):
    name: Name
    price: Price = 0
    pipeline_id: Id | None = None
    stage_id: Id | None = None
    responsible_user_id: Id | None = None
    company_id: Id | None = None
    contact_ids: Annotated[list[Id], Field(max_length=100)] = []
    custom_fields: Custom = {}


class LeadUpdate(Body):
    name: Name | None = None
    price: Price | None = None
    pipeline_id: Id | None = None
    stage_id: Id | None = None
    responsible_user_id: Id | None = None
    company_id: Id | None = None
    contact_ids: Annotated[list[Id], Field(max_length=100)] | None = None
    custom_fields: Custom | None = None

    @model_validator(mode="after")
    def _nulls(self):
        return _not_null(self, ("name", "price", "pipeline_id", "stage_id", "responsible_user_id", "contact_ids",
                                "custom_fields"))


Emails = Annotated[list[Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=254)]],
                   Field(max_length=20)]
Phones = Annotated[list[Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)]],
                   Field(max_length=20)]
Avatar = Annotated[str | None, Field(max_length=2048)]


class ContactIn(Body):
    name: Name
    avatar: Avatar = None
    emails: Emails = []
    phones: Phones = []
    company_id: Id | None = None
    responsible_user_id: Id | None = None
    custom_fields: Custom = {}


class ContactUpdate(Body):
    name: Name | None = None
    avatar: Avatar = None
    emails: Emails | None = None
    phones: Phones | None = None
    company_id: Id | None = None
    responsible_user_id: Id | None = None
    custom_fields: Custom | None = None

    @model_validator(mode="after")
    def _nulls(self):
        return _not_null(self, ("name", "emails", "phones", "responsible_user_id", "custom_fields"))


class CompanyIn(Body):
    name: Name
    responsible_user_id: Id | None = None
    custom_fields: Custom = {}


class CompanyUpdate(Body):
    name: Name | None = None
    responsible_user_id: Id | None = None
    custom_fields: Custom | None = None

    @model_validator(mode="after")
    def _nulls(self):
        return _not_null(self, ("name", "responsible_user_id", "custom_fields"))


Entity = Literal["leads", "contacts", "companies"]
# Times travel as RFC 3339 strings and are held as UNIX seconds.
Time = Annotated[float, BeforeValidator(parse_time)]


class TaskIn(Body):
    text: Text
    due_at: Time | None = None
    responsible_user_id: Id | None = None
    entity_type: Entity | None = None
    entity_id: Id | None = None
    is_done: bool = False


class TaskUpdate(Body):
    text: Text | None = None
    due_at: Time | None = None
    responsible_user_id: Id | None = None
    entity_type: Entity | None = None
    entity_id: Id | None = None
    is_done: bool | None = None

    @model_validator(mode="after")
    def _nulls(self):
        return _not_null(self, ("text", "responsible_user_id", "is_done"))


# --- lists ---

class RecordFilter(Query):
    responsible_user_id: Id | None = None
    updated_since: Time | None = None
    query: Search | None = None


class LeadFilter(RecordFilter):
    pipeline_id: Id | None = None
    stage_id: Id | None = None


class Cursor(Page):
    cursor: Id | None = None  # the id of the last item of the previous page

    @model_validator(mode="after")
    def _one_way(self):
        if self.cursor is not None and self.page != 1:
            raise ValueError("give either cursor or page, not both")
        return self


class LeadList(LeadFilter, Cursor):
    pass


class RecordList(RecordFilter, Cursor):
    pass


class TaskList(Cursor):
    responsible_user_id: Id | None = None
    entity_type: Entity | None = None
    entity_id: Id | None = None
    is_done: bool | None = None


# --- pipelines and fields ---

class PipelineIn(Body):
    name: Name
    sort: Sort | None = None  # None: after the last pipeline (the first one is the default for new leads)
    stages: Annotated[list[Name], Field(min_length=1, max_length=100)]


class PipelineUpdate(Body):
    name: Name | None = None
    sort: Sort | None = None

    @model_validator(mode="after")
    def _nulls(self):
        return _not_null(self, ("name", "sort"))


class StageIn(Body):
    name: Name
    sort: Sort | None = None


class StageUpdate(Body):
    name: Name | None = None
    sort: Sort | None = None

    @model_validator(mode="after")
    def _nulls(self):
        return _not_null(self, ("name", "sort"))


Options = Annotated[list[Annotated[str, StringConstraints(min_length=1, max_length=200)]], Field(max_length=500)]


class FieldIn(Body):
    name: Name
    type: Literal["text", "number", "select", "date"]
    options: Options = []
    sort: Sort = 0

    @model_validator(mode="after")
    def _options(self):
        if (self.type == "select") != bool(self.options):
            raise ValueError("'options' is required for select fields and only for them")
        if len(set(self.options)) != len(self.options):
            raise ValueError("options must be distinct")
        return self


class FieldUpdate(Body):
    name: Name | None = None
    options: Options | None = None
    sort: Sort | None = None

    @model_validator(mode="after")
    def _nulls(self):
        return _not_null(self, ("name", "options", "sort"))


class SubscriberIn(Body):
    user_id: Id


class NotificationList(Query):
    unread: bool = False
    cursor: Id | None = None
    limit: Annotated[int, Field(ge=1, le=250)] = 50


class NotificationsRead(Body):
    ids: Annotated[list[Id], Field(max_length=1000)] | None = None  # None: all


class ExplainQuery(Query):
    user_id: Id
    entity: Literal["leads", "contacts", "companies", "tasks"]
    action: Literal["add", "view", "edit", "delete", "export"]
    record_id: Id | None = None
    pipeline_id: Id | None = None  # for action=add on leads

    @model_validator(mode="after")
    def _target(self):
        if self.action != "add" and self.record_id is None:
            raise ValueError("record_id is required for this action")
        if self.action == "add" and self.entity == "leads" and self.pipeline_id is None:
            raise ValueError("pipeline_id is required to explain adding a lead")
        return self


class ConversationIn(Body):
    contact_id: Id
    lead_id: Id | None = None


class MessageIn(Body):
    text: Annotated[str, StringConstraints(max_length=20_000)] = ""
    attachments: Annotated[list[Id], Field(max_length=20)] = []

    @model_validator(mode="after")
    def _something(self):
        if not self.text.strip() and not self.attachments:
            raise ValueError("a message needs text or an attachment")
        return self


class ReadIn(Body):
    message_id: Id


Assignee = Annotated[str, StringConstraints(pattern=r"^(me|none|[1-9][0-9]{0,15})$")]
WorkStatus = Literal["open", "pending", "resolved"]


class ChatList(Query):
    cursor: Id | None = None
    limit: Annotated[int, Field(ge=1, le=250)] = 50
    lead_id: Id | None = None
    assignee: Assignee | None = Field(default=None, description="me, none, or a user id")
    status: WorkStatus | None = None


class MessageList(Query):
    cursor: Id | None = None
    limit: Annotated[int, Field(ge=1, le=250)] = 50


class ThreadList(Query):
    cursor: Id | None = None
    limit: Annotated[int, Field(ge=1, le=250)] = 50
    assignee: Assignee | None = Field(default=None, description="me, none, or a user id")
    status: WorkStatus | None = None


class WorkflowPatch(Body):
    """Who handles a conversation or thread, and where it stands."""

    assignee_id: Id | None = Field(default=None, description="A user who may read it; null to unassign")
    status: WorkStatus | None = None

    @model_validator(mode="after")
    def _something(self):
        if not self.model_fields_set:
            raise ValueError("give assignee_id, status, or both")
        if "status" in self.model_fields_set and self.status is None:
            raise ValueError("status cannot be null")
        return self


class ChannelIn(Body):
    name: Name
    pipeline_id: Id
    responsible_user_id: Id | None = None


class ChannelPatch(Body):
    name: Name | None = None
    outbound_url: Annotated[str, StringConstraints(strip_whitespace=True, max_length=2048)] | None = Field(
        default=None, description="Where agents' replies are POSTed (docs/outbound.md); empty string removes it")


class DeliveryStatus(Body):
    """A provider reports what became of a reply (POST /hooks/chat/{channel}/status)."""

    message_id: Id | None = Field(default=None, description="Our message id (the payload's message.id)")
    provider_message_id: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = Field(
        default=None, description="The provider's id, as its 2xx answer gave it")
    status: Literal["delivered", "read", "failed"]
    reason: Annotated[str, StringConstraints(max_length=1000)] | None = None

    @model_validator(mode="after")
    def _one_id(self):
        if (self.message_id is None) == (self.provider_message_id is None):
            raise ValueError("give exactly one of message_id and provider_message_id")
        return self


class Sender(Body):
    handle: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] | None = None
    avatar: Annotated[str, Field(max_length=2048)] | None = None


class IncomingFile(Body):
    name: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    data: str  # base64


class IncomingMessage(Body):
    """What a channel provider posts to /hooks/chat/{channel}."""

    id: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    sender: Sender = Field(alias="from")
    text: Annotated[str, StringConstraints(max_length=20_000)] = ""
    # A factory, not ``= []``: pydantic deep-copies a mutable default on every validation.
    attachments: Annotated[list[IncomingFile], Field(max_length=10, default_factory=list,
                                                     json_schema_extra={"default": []})]


class InboxIn(Body):
    name: Name
    user_ids: Annotated[list[Id], Field(max_length=1000)] = []


class InboxUpdate(Body):
    name: Name


def _mail_address(value: str) -> str:
    """An addr-spec the standard library accepts (``local@domain``), with nothing that could end a header."""
    from email.errors import HeaderParseError
    from email.headerregistry import Address

    value = value.strip()
    if not value or any(c in value for c in "\r\n\0 <>,;") or value.count("@") != 1:
        raise ValueError("not an email address (local@domain)")
    try:
        Address(addr_spec=value)
    except (ValueError, IndexError, HeaderParseError) as exc:
        raise ValueError(f"not an email address ({exc})") from None
    return value


MailAddress = Annotated[str, StringConstraints(max_length=254), AfterValidator(_mail_address)]
Host = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=253,
                                        pattern=r"^[A-Za-z0-9.\-:\[\]]+$")]


class OutgoingIn(Body):
    """How a shared inbox sends (PUT /inboxes/{id}/outgoing)."""

    address: MailAddress = Field(description="From address of replies; its domain names their Message-IDs")
    display_name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200,
                                                   pattern=r"^[^\r\n]*$")] = ""
    host: Host = Field(description="SMTP server (private addresses refused unless INBOX_OUTBOUND_ALLOW_PRIVATE)")
    port: Annotated[int, Field(ge=1, le=65535)] = 587
    security: Literal["starttls", "tls", "none"] = Field(
        default="starttls", description="STARTTLS, implicit TLS, or none (only for a loopback relay)")
    username: Annotated[str, StringConstraints(max_length=500, pattern=r"^[^\r\n]*$")] | None = None
    password: Annotated[str, StringConstraints(max_length=500)] | None = Field(
        default=None, description="Sealed at rest, never returned; leave out to keep the current one")


class EmailReplyIn(Body):
    text: Annotated[str, StringConstraints(max_length=100_000)] = ""
    html: Annotated[str, StringConstraints(max_length=500_000)] = ""
    cc: Annotated[list[MailAddress], Field(max_length=20)] = []
    media_ids: Annotated[list[Id], Field(max_length=20)] = []

    @model_validator(mode="after")
    def _something(self):
        if not self.text.strip() and not self.html.strip():
            raise ValueError("a reply needs text or html")
        return self


class MembersIn(Body):
    user_ids: Annotated[list[Id], Field(max_length=1000)]
