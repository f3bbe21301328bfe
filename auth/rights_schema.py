"""The JSON shape of a rights object (SPEC section 2), for validation and the OpenAPI document.

Unknown keys and bad level codes are refused with the offending path; missing keys mean "denied".
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Level = Literal["D", "M", "G", "A"]
AddLevel = Literal["D", "A"]
_PIPELINE_KEY = re.compile(r"[1-9][0-9]{0,17}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class EntityRightsIn(_Strict):
    add: AddLevel = "D"
    view: Level = "D"
    edit: Level = "D"
    delete: Level = "D"
    export: Level = "D"


class TaskRightsIn(_Strict):
    edit: Level = "D"
    delete: Level = "D"


class StageRightIn(_Strict):
    pipeline_id: Annotated[int, Field(ge=1)]
    stage_id: Annotated[int, Field(ge=1)]
    view: Level = "D"
    edit: Level = "D"
    delete: Level = "D"


class FieldRightIn(_Strict):
    entity: Literal["leads", "contacts", "companies"]
    field_id: Annotated[int, Field(ge=1)]
    access: Literal["hidden", "read", "edit"]


class RightsIn(_Strict):
    leads: EntityRightsIn = EntityRightsIn()
    contacts: EntityRightsIn = EntityRightsIn()
    companies: EntityRightsIn = EntityRightsIn()
    tasks: TaskRightsIn = TaskRightsIn()
    mail_access: bool = False
    files_access: bool = False
    stage_rights: list[StageRightIn] = []
    pipeline_access: dict[str, bool] = {}
    field_rights: list[FieldRightIn] = []

    @field_validator("pipeline_access")
    @classmethod
    def _pipeline_keys(cls, value: dict[str, bool]) -> dict[str, bool]:
        for key in value:
            # ASCII digits without leading zeros, so one pipeline has exactly one spelling.
            if not _PIPELINE_KEY.fullmatch(key):
                raise ValueError(f"pipeline_access keys are pipeline ids as strings, got {key!r}")
        return value

    @field_validator("stage_rights")
    @classmethod
    def _unique_stages(cls, value: list[StageRightIn]) -> list[StageRightIn]:
        seen = set()
        for sr in value:
            key = (sr.pipeline_id, sr.stage_id)
            if key in seen:
                raise ValueError(f"stage ({sr.pipeline_id}, {sr.stage_id}) is listed twice")
            seen.add(key)
        return value

    @field_validator("field_rights")
    @classmethod
    def _unique_fields(cls, value: list[FieldRightIn]) -> list[FieldRightIn]:
        seen = set()
        for fr in value:
            key = (fr.entity, fr.field_id)
            if key in seen:
                raise ValueError(f"field ({fr.entity}, {fr.field_id}) is listed twice")
            seen.add(key)
        return value
