"""Pipelines, stages and custom field definitions: administrators change them, everything is logged."""

from __future__ import annotations

from typing import Any

from ..errors import conflict, not_found
from ..store import activity, events
from ..store import catalog as rows
from ..store import users as user_rows
from ..store.db import Database, Tx
from .context import Actor
from .fields import field_defs
from .people import access_changed


async def _log(tx: Tx, actor: Actor, type_: str, object_type: str, object_id: int, data: dict) -> None:
    if object_type == "field":  # open websockets re-read field definitions before the next event
        await events.emit(tx, "fields.changed", {}, actor.now)
    await activity.append(tx, at=actor.now, actor_id=actor.user_id, ip=actor.ip, type=type_,
                          object_type=object_type, object_id=object_id, data=data)


def pipeline_json(row, stages: list) -> dict[str, Any]:
    return {"id": row["id"], "name": row["name"], "sort": row["sort"],
            "stages": [stage_json(s) for s in stages if s["pipeline_id"] == row["id"]]}


def stage_json(row) -> dict[str, Any]:
    return {"id": row["id"], "pipeline_id": row["pipeline_id"], "name": row["name"], "sort": row["sort"]}


async def do_create_pipeline(db: Database, actor: Actor, *, name: str, sort: int | None,
                             stages: list[str]) -> int:
    async def job(tx: Tx) -> int:
        # Without a place it goes last: the first pipeline is where new leads land by default, and
        # adding one must not quietly change that.
        position = sort if sort is not None else await rows.next_pipeline_sort(tx)
        pid = await rows.insert_pipeline(tx, name, position, actor.now)
        for i, stage in enumerate(stages):
            await rows.insert_stage(tx, pid, stage, i)
        await _log(tx, actor, "pipeline.created", "pipeline", pid, {"after": {"name": name, "stages": stages}})
        return pid

    return await db.write(job)


async def do_update_pipeline(db: Database, actor: Actor, pipeline_id: int, changes: dict[str, Any]) -> None:
    async def job(tx: Tx) -> None:
        before = await rows.get_pipeline(tx, pipeline_id)
        if before is None:
            raise not_found("pipeline")
        await rows.update_pipeline(tx, pipeline_id, changes, actor.now)
        await _log(tx, actor, "pipeline.updated", "pipeline", pipeline_id,
                   {"before": {k: before[k] for k in changes}, "after": changes})

    await db.write(job)


async def _forget(tx: Tx, actor: Actor, **named) -> None:
    """Rights that named what was just deleted lose that entry (see ``forget_in_rights``); open
    websockets reload rights before the next event, as after any rights change (rule 13)."""
    if await user_rows.forget_in_rights(tx, **named):
        await access_changed(tx, actor, None)


async def do_delete_pipeline(db: Database, actor: Actor, pipeline_id: int) -> None:
    async def job(tx: Tx) -> None:
        before = await rows.get_pipeline(tx, pipeline_id)
        if before is None:
            raise not_found("pipeline")
        held = await rows.leads_in(tx, pipeline_id=pipeline_id)
        if held:
            raise conflict(f"The pipeline still holds {held} leads; move or delete them first.", leads=held)
        feeding = await rows.channels_into(tx, pipeline_id)
        if feeding:
            raise conflict(f"{feeding} chat channel(s) put new leads in this pipeline; delete them first (or keep "
                           "the pipeline).", channels=feeding)
        await rows.delete_pipeline(tx, pipeline_id)
        await _forget(tx, actor, pipeline_id=pipeline_id)
        await _log(tx, actor, "pipeline.deleted", "pipeline", pipeline_id, {"before": {"name": before["name"]}})

    await db.write(job)


async def do_create_stage(db: Database, actor: Actor, pipeline_id: int, *, name: str, sort: int | None) -> int:
    async def job(tx: Tx) -> int:
        if await rows.get_pipeline(tx, pipeline_id) is None:
            raise not_found("pipeline")
        position = sort if sort is not None else await rows.next_stage_sort(tx, pipeline_id)
        sid = await rows.insert_stage(tx, pipeline_id, name, position)
        await _log(tx, actor, "stage.created", "stage", sid, {"after": {"pipeline_id": pipeline_id, "name": name}})
        return sid

    return await db.write(job)


async def _stage_in(tx: Tx, pipeline_id: int, stage_id: int):
    stage = await rows.get_stage(tx, stage_id)
    if stage is None or stage["pipeline_id"] != pipeline_id:
        raise not_found("stage")
    return stage


async def do_update_stage(db: Database, actor: Actor, pipeline_id: int, stage_id: int, changes: dict) -> None:
    async def job(tx: Tx) -> None:
        before = await _stage_in(tx, pipeline_id, stage_id)
        await rows.update_stage(tx, stage_id, changes)
        await _log(tx, actor, "stage.updated", "stage", stage_id,
                   {"before": {k: before[k] for k in changes}, "after": changes})

    await db.write(job)


async def do_delete_stage(db: Database, actor: Actor, pipeline_id: int, stage_id: int) -> None:
    async def job(tx: Tx) -> None:
        before = await _stage_in(tx, pipeline_id, stage_id)
        held = await rows.leads_in(tx, stage_id=stage_id)
        if held:
            raise conflict(f"The stage still holds {held} leads; move them first.", leads=held)
        if await rows.stage_count(tx, pipeline_id) == 1:
            raise conflict("A pipeline keeps at least one stage; delete the pipeline instead.")
        await rows.delete_stage(tx, stage_id)
        await _forget(tx, actor, stage_id=stage_id)
        await _log(tx, actor, "stage.deleted", "stage", stage_id, {"before": stage_json(before)})

    await db.write(job)


# --- custom fields ---

async def do_create_field(db: Database, actor: Actor, entity: str, data: dict[str, Any]) -> int:
    async def job(tx: Tx) -> int:
        fid = await rows.insert_field(tx, entity, data["name"], data["type"], data.get("options", []),
                                      data.get("sort", 0), actor.now)
        await _log(tx, actor, "field.created", "field", fid, {"entity": entity, "after": data})
        return fid

    return await db.write(job)


async def do_update_field(db: Database, actor: Actor, entity: str, field_id: int, changes: dict[str, Any]) -> None:
    async def job(tx: Tx) -> None:
        row = await rows.get_field(tx, entity, field_id)
        if row is None:
            raise not_found("custom field")
        before = field_defs([row])[field_id]
        if "options" in changes and before["type"] != "select":
            raise conflict("Only select fields have options.")
        await rows.update_field(tx, field_id, changes)
        await _log(tx, actor, "field.updated", "field", field_id,
                   {"entity": entity, "before": {k: before.get(k, row[k] if k in row.keys() else None)
                                                 for k in changes}, "after": changes})

    await db.write(job)


async def do_delete_field(db: Database, actor: Actor, entity: str, field_id: int) -> int:
    async def job(tx: Tx) -> int:
        row = await rows.get_field(tx, entity, field_id)
        if row is None:
            raise not_found("custom field")
        cleared = await rows.delete_field(tx, entity, field_id)
        await _forget(tx, actor, field=(entity, field_id))
        await _log(tx, actor, "field.deleted", "field", field_id,
                   {"entity": entity, "before": field_defs([row])[field_id], "values_cleared": cleared})
        return cleared

    return await db.write(job)
