"""Request bodies and query strings. Strict: unknown keys and wrong JSON types are refused (422)."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from auth.rights_schema import RightsIn

EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Id = Annotated[int, Field(ge=1, le=2**53)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Query(BaseModel):
    # Query values arrive as strings, so these are converted ("2" -> 2), but unknown keys are refused.
    model_config = ConfigDict(extra="forbid")


def _email(value: str) -> str:
    value = value.strip()
    if len(value) > 254 or not EMAIL.match(value):
        raise ValueError("not an email address")
    return value


class Page(Query):
    page: Annotated[int, Field(ge=1, le=10**6)] = 1
    limit: Annotated[int, Field(ge=1, le=250)] = 50


class LoginIn(Body):
    email: Annotated[str, Field(max_length=254)]
    password: Annotated[str, Field(max_length=1024)]


class UserCreate(Body):
    email: str
    name: Name
    password: Annotated[str, Field(max_length=1024)]
    avatar: Annotated[str | None, Field(max_length=2048)] = None
    is_admin: bool = False
    is_partner: bool = False
    role_id: Id | None = None
    rights: RightsIn | None = None
    group_ids: list[Id] = []

    _check_email = field_validator("email")(classmethod(lambda cls, v: _email(v)))

    @model_validator(mode="after")
    def _role_or_rights(self):
        if self.role_id is not None and self.rights is not None:
            raise ValueError("give either role_id or rights, not both")
        return self


class UserUpdate(Body):
    email: str | None = None
    name: Name | None = None
    avatar: Annotated[str | None, Field(max_length=2048)] = None
    is_admin: bool | None = None
    is_active: bool | None = None
    is_partner: bool | None = None
    role_id: Id | None = None
    rights: RightsIn | None = None
    group_ids: list[Id] | None = None

    _check_email = field_validator("email")(classmethod(lambda cls, v: v if v is None else _email(v)))

    @model_validator(mode="after")
    def _role_or_rights(self):
        if self.role_id is not None and self.rights is not None:
            raise ValueError("give either role_id or rights, not both")
        for key in ("email", "name", "is_admin", "is_active", "is_partner", "group_ids"):
            if key in self.model_fields_set and getattr(self, key) is None:
                raise ValueError(f"{key} cannot be null")
        return self


class UserRemove(Query):
    reassign_to: Id | None = None


class AccountUpdate(Body):
    """What users may change about themselves: nothing that grants access (checklist 19)."""

    name: Name | None = None
    avatar: Annotated[str | None, Field(max_length=2048)] = None


class PasswordChange(Body):
    current_password: Annotated[str, Field(max_length=1024)]
    new_password: Annotated[str, Field(max_length=1024)]


class PasswordReset(Body):
    new_password: Annotated[str, Field(max_length=1024)]


class GroupIn(Body):
    name: Name
    role_id: Id | None = None
    user_ids: list[Id] = []


class GroupUpdate(Body):
    name: Name | None = None
    role_id: Id | None = None
    user_ids: list[Id] | None = None


class RoleIn(Body):
    name: Name
    rights: RightsIn


class RoleUpdate(Body):
    name: Name | None = None
    rights: RightsIn | None = None


Code = Annotated[str, Field(min_length=1, max_length=20)]


class CodeIn(Body):
    code: Code


class FactorIn(Body):
    """A second factor: a TOTP code or a recovery code, exactly one."""

    code: Code | None = None
    recovery_code: Code | None = None

    @model_validator(mode="after")
    def _one(self):
        if (self.code is None) == (self.recovery_code is None):
            raise ValueError("give either code or recovery_code")
        return self


class SecondFactorLogin(FactorIn):
    challenge: Annotated[str, Field(min_length=1, max_length=200)]


class WhitelistEntry(Body):
    cidr: Annotated[str, Field(min_length=1, max_length=64)]
    note: Annotated[str, Field(max_length=200)] = ""


class SecurityUpdate(Body):
    require_2fa: bool | None = None
    ip_whitelist: Annotated[list[WhitelistEntry], Field(max_length=500)] | None = None
    block_untrusted_api: bool | None = None

    @model_validator(mode="after")
    def _nulls(self):
        for key in self.model_fields_set:
            if getattr(self, key) is None:
                raise ValueError(f"{key} cannot be null")
        return self
