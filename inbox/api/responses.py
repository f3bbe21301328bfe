"""Response bodies: people, sign-in, security, sessions, channels, inboxes, media and chats.

Each route names its model with ``response=`` on ``registry.route``; the OpenAPI document publishes it
and tests/test_response_schemas.py holds every JSON answer a test run produces to it. The models are
never used to build answers (handlers return plain dicts), so ``extra="forbid"`` is what keeps them
honest: a key a handler sends that its model lacks fails the tests instead of going undocumented.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from auth.rights_schema import AddLevel, Level

from .problems import PROBLEM_TYPE


class Out(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


# What inbox.times.iso writes: UTC with milliseconds and a Z.
Time = Annotated[str, Field(pattern=r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", description="RFC 3339, UTC")]
FieldAccess = Literal["hidden", "read", "edit"]


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def absent() -> Any:
    """A key that some answers leave out (never null): optional in the schema, with no default shown."""
    return Field(default=None, json_schema_extra=_no_default)


def items_of(item: Any, name: str, doc: str, *, cursor: bool = False, page: bool = False) -> type[Out]:
    """A list envelope: ``items``, then ``limit`` and ``next_cursor`` (cursor walks) and ``page`` and
    ``total`` (numbered pages). Where both are allowed, ``page`` and ``total`` come only without a cursor,
    so they are optional there."""
    fields: dict[str, Any] = {"items": (list[item], ...)}
    if cursor:
        fields.update(limit=(int, ...), next_cursor=(int | None, ...))
    if page:
        # absent on a cursor walk
        fields.update(page=(int, absent() if cursor else ...), total=(int, absent() if cursor else ...))
        if not cursor:
            fields["limit"] = (int, ...)
    return create_model(name, __base__=Out, __doc__=doc, **fields)


class Problem(BaseModel):
    """RFC 9457 problem details. Extension members (``errors``, ``retry_after``, ``owned``...) vary by
    problem, so unknown keys are allowed here and only here."""

    model_config = ConfigDict(extra="allow", strict=True, json_schema_extra={
        "description": f"RFC 9457 problem details; type is {PROBLEM_TYPE}<slug>"})

    type: Annotated[str, Field(pattern="^" + PROBLEM_TYPE.replace(".", r"\.") + "[a-z0-9-]+$")]
    title: str
    status: Annotated[int, Field(ge=400, le=599)]
    detail: str = absent()
    instance: str = absent()
    errors: list[ErrorItem] = absent()


class ErrorItem(Out):
    path: str
    message: str


Problem.model_rebuild()


# --- meta ---

class Health(Out):
    status: Literal["ok"]


class OpenApiDocument(Out):
    openapi: str
    info: dict[str, Any]
    paths: dict[str, Any]
    components: dict[str, Any]


# --- rights (SPEC 2): every key present in answers, unlike the request shape ---

class EntityRights(Out):
    add: AddLevel
    view: Level
    edit: Level
    delete: Level
    export: Level


class TaskRights(Out):
    edit: Level
    delete: Level


class StageRight(Out):
    pipeline_id: int
    stage_id: int
    view: Level
    edit: Level
    delete: Level


class FieldRight(Out):
    entity: Literal["leads", "contacts", "companies"]
    field_id: int
    access: FieldAccess


class Rights(Out):
    leads: EntityRights
    contacts: EntityRights
    companies: EntityRights
    tasks: TaskRights
    mail_access: bool
    files_access: bool
    stage_rights: list[StageRight]
    pipeline_access: dict[str, bool]
    field_rights: list[FieldRight]


class RightsSource(Out):
    kind: Literal["own", "role", "group_role", "admin"]
    role_id: int | None
    role: str | None
    group_id: int | None
    group: str | None
    label: str


class ConflictValue(Out):
    source: str
    value: str | bool


class Conflict(Out):
    path: str
    effective: str | bool
    values: list[ConflictValue]


class EffectiveRights(Out):
    user_id: int
    is_admin: bool
    rights: Rights
    field_default: FieldAccess
    sources: list[RightsSource]
    conflicts: list[Conflict]


# --- users, groups, roles ---

class Colleague(Out):
    """What a non-administrator sees of another user (checklist 20)."""

    id: int
    name: str
    avatar: str | None
    is_active: bool


class User(Colleague):
    email: str
    is_admin: bool
    is_partner: bool
    role_id: int | None
    rights: Rights | None
    group_ids: list[int]
    created_at: Time
    updated_at: Time


AnyUser = User | Colleague
UserPage = items_of(AnyUser, "UserPage", "Users, one numbered page", page=True)


class Account(User):
    effective_rights: Rights
    effective_field_default: FieldAccess


class Group(Out):
    id: int
    name: str
    role_id: int | None
    user_ids: list[int]


GroupList = items_of(Group, "GroupList", "Every group")


class Role(Out):
    id: int
    name: str
    rights: Rights


RoleList = items_of(Role, "RoleList", "Every role")


# --- signing in, sessions, two-step verification, policy ---

class Token(Out):
    token: str
    csrf_token: str


class SignedIn(Token):
    session_id: int
    user: Account


class TwoFactorChallenge(Out):
    two_factor_required: Literal[True]
    challenge: str
    expires_in: int
    next: str


LoginAnswer = SignedIn | TwoFactorChallenge


class RecoveryCodes(Out):
    recovery_codes: list[str]


class Confirmed(Token):
    recovery_codes: list[str]


class TwoFactorStatus(Out):
    enabled: bool
    pending: bool
    recovery_codes_left: int
    required: bool


class Enrolment(Out):
    secret: str
    provisioning_uri: str
    qr_png: str
    next: str


class Session(Out):
    id: int
    user_id: int
    device: str
    ip: str
    created_at: Time
    last_activity_at: Time
    current: bool


SessionList = items_of(Session, "SessionList", "Sessions, newest first")


class Ended(Out):
    ended: list[int]


class WhitelistItem(Out):
    cidr: str
    note: str


class SecurityPolicy(Out):
    require_2fa: bool
    ip_whitelist: list[WhitelistItem]
    block_untrusted_api: bool
    your_address: str


# --- channels, inboxes, hooks ---

class Secret(Out):
    secret: str


class Channel(Out):
    id: int
    name: str
    pipeline_id: int
    responsible_user_id: int
    webhook: str
    outbound_url: str | None
    paused_at: Time | None
    failures: int
    last_error: str | None


class DeliveryStatusAck(Out):
    message_id: int
    status: str
    changed: bool


class ChannelCreated(Channel):
    secret: str


ChannelList = items_of(Channel, "ChannelList", "Every chat channel")


class ChatDelivery(Out):
    message_id: int
    conversation_id: int
    contact_id: int
    lead_id: int | None
    duplicate: bool


class EmailDelivery(Out):
    email_id: int
    thread_id: int
    contact_id: int | None
    lead_id: int | None
    duplicate: bool


class Inbox(Out):
    id: int
    name: str
    member_ids: list[int]
    webhook: str


class InboxCreated(Inbox):
    secret: str


InboxList = items_of(Inbox, "InboxList", "Inboxes the caller may read")


class Members(Out):
    user_ids: list[int]


# --- media and attachments ---

class Media(Out):
    id: int
    type: str
    name: str
    size: int
    created_at: Time


class MediaLink(Out):
    url: str
    expires_at: Time


class Attachment(Out):
    media_id: int
    type: str
    name: str
    size: int


class HiddenAttachment(Out):
    """An attachment for a caller without files access (rule 9): its type only."""

    type: str
    hidden: Literal[True]


AnyAttachment = Attachment | HiddenAttachment


class Address(Out):
    address: str
    name: str


class Email(Out):
    id: int
    inbox_id: int
    thread_id: int
    message_id: str
    in_reply_to: str | None
    subject: str
    sender: Annotated[Address, Field(alias="from")]
    to: list[str]
    sent_at: Time | None
    text: str
    html: str
    attachments: list[AnyAttachment]
    contact_id: int | None
    lead_id: int | None
    created_at: Time
    direction: Literal["incoming", "outgoing"]
    cc: list[str]
    author_user_id: int | None = Field(description="The agent who wrote an outgoing email")
    status: Literal["queued", "sent", "failed"] | None = Field(
        description="An outgoing email: queued until the SMTP server accepts it, then sent, or failed")
    attempts: int
    last_code: int | None = Field(description="The SMTP server's last reply code")
    last_error: str | None


class Outgoing(Out):
    address: str | None
    display_name: str
    host: str | None
    port: int | None
    security: Literal["starttls", "tls", "none"] | None
    username: str | None
    has_password: bool
    paused_at: Time | None
    failures: int
    last_error: str | None


EmailList = items_of(Email, "EmailList", "Emails of a lead the caller may read (rule 8)")


class ThreadSummary(Out):
    id: int
    subject: str
    contact_id: int | None
    lead_id: int | None
    last_email_id: int | None
    read: bool
    unread_count: int = Field(description="Emails from the customer newer than your read mark")
    assignee_id: int | None
    status: Literal["open", "pending", "resolved"]
    updated_at: Time


ThreadPage = items_of(ThreadSummary, "ThreadPage", "An inbox's threads, newest first", cursor=True)


class Thread(Out):
    id: int
    subject: str
    contact_id: int | None
    lead_id: int | None
    emails: list[Email]
