"""Custom field values: their types, and who may write which (rule 7)."""

from __future__ import annotations

import math
from datetime import date
from typing import Any, Mapping

import orjson

from auth.policy import EDIT, HIDDEN, Subject

from ..errors import forbidden, invalid

MAX_TEXT = 10_000
MASK = "***"  # what the activity log shows for a field hidden from the actor


def field_defs(rows) -> dict[int, dict[str, Any]]:
    return {r["id"]: {"id": r["id"], "name": r["name"], "type": r["type"], "options": orjson.loads(r["options"])}
            for r in rows}


def _value_problem(defn: dict[str, Any], value: Any) -> str | None:
    kind = defn["type"]
    if kind == "text":
        if not isinstance(value, str) or len(value) > MAX_TEXT:
            return f"expected a string of at most {MAX_TEXT} characters"
    elif kind == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or abs(value) > 2**53:
            return "expected a finite number"
    elif kind == "select":
        if value not in defn["options"]:
            return f"expected one of {defn['options']}"
    elif kind == "date":
        if not isinstance(value, str) or len(value) != 10:
            return "expected a date as YYYY-MM-DD"
        try:
            date.fromisoformat(value)
        except ValueError:
            return "expected a date as YYYY-MM-DD"
    return None


def check_custom_write(subject: Subject, entity: str, defs: Mapping[int, dict[str, Any]],
                       incoming: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a write of custom field values; returns them keyed by field id (as strings).

    A field the writer cannot see is answered exactly like a field that does not exist (422), so
    hidden fields stay absent from everything; a read-only field is 403 and nothing is written.
    """
    errors, read_only, out = [], [], {}
    for key, value in incoming.items():
        path = f"custom_fields.{key}"
        fid = int(key) if key.isascii() and key.isdigit() and len(key) < 12 else None
        if fid is None or fid not in defs or subject.field_access(entity, fid) == HIDDEN:
            errors.append({"path": path, "message": f"no {entity} custom field with id {key!r}"})
            continue
        if value is not None:
            problem = _value_problem(defs[fid], value)
            if problem:
                errors.append({"path": path, "message": problem})
                continue
        if subject.field_access(entity, fid) != EDIT:
            read_only.append(defs[fid]["name"])
        out[str(fid)] = value
    if errors:
        raise invalid("; ".join(f"{e['path']}: {e['message']}" for e in errors[:5]), errors)
    if read_only:
        raise forbidden(f"These fields are read-only for you: {', '.join(sorted(read_only))}.")
    return out


def merge_custom(current: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(current)
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def shown_custom(subject: Subject, entity: str, defs: Mapping[int, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """Values of defined fields the subject may see; hidden ones are simply absent."""
    return {k: v for k, v in values.items()
            if k.isdigit() and int(k) in defs and subject.field_access(entity, int(k)) != HIDDEN}


def masked_custom(subject: Subject, entity: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """For the activity log: every value, with those hidden from the actor masked."""
    return {k: (MASK if k.isdigit() and subject.field_access(entity, int(k)) == HIDDEN else v)
            for k, v in values.items()}
