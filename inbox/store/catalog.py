"""Pipelines, their ordered stages, and custom field definitions: the catalogue records hang on."""

from __future__ import annotations

import orjson

from .db import Database, Tx


async def stage_catalogue(db: Database | Tx) -> dict[int, int]:
    """stage id -> pipeline id, for every stage (the permission core decides leads per stage)."""
    return {r[0]: r[1] for r in await db.fetchall("SELECT id, pipeline_id FROM stages")}


async def list_pipelines(db: Database | Tx) -> list:
    return await db.fetchall("SELECT * FROM pipelines ORDER BY sort, id")


async def get_pipeline(db: Database | Tx, pipeline_id: int):
    return await db.fetchone("SELECT * FROM pipelines WHERE id = ?", (pipeline_id,))


async def stages_of(db: Database | Tx, pipeline_ids: list[int] | None = None) -> list:
    if pipeline_ids is None:
        return await db.fetchall("SELECT * FROM stages ORDER BY pipeline_id, sort, id")
    marks = ",".join("?" * len(pipeline_ids))
    return await db.fetchall(f"SELECT * FROM stages WHERE pipeline_id IN ({marks}) ORDER BY sort, id",
                             pipeline_ids)


async def get_stage(db: Database | Tx, stage_id: int):
    return await db.fetchone("SELECT * FROM stages WHERE id = ?", (stage_id,))


async def first_stage(db: Database | Tx, pipeline_id: int):
    return await db.fetchone("SELECT * FROM stages WHERE pipeline_id = ? ORDER BY sort, id LIMIT 1", (pipeline_id,))


def _fresh_id(table: str) -> str:
    """The next id of ``table`` above every id it ever gave out (migration 0009), as an SQL expression."""
    return (f"max(coalesce((SELECT max(id) FROM {table}), 0),"
            f" coalesce((SELECT last FROM retired_ids WHERE name = '{table}'), 0)) + 1")


async def insert_pipeline(tx: Tx, name: str, sort: int, now: float) -> int:
    return await tx.insert(f"INSERT INTO pipelines (id, name, sort, created_at, updated_at)"
                           f" VALUES ({_fresh_id('pipelines')},?,?,?,?)", (name, sort, now, now))


async def update_pipeline(tx: Tx, pipeline_id: int, changes: dict, now: float) -> None:
    for column in ("name", "sort"):
        if column in changes:
            await tx.execute(f"UPDATE pipelines SET {column} = ?, updated_at = ? WHERE id = ?",
                             (changes[column], now, pipeline_id))


async def insert_stage(tx: Tx, pipeline_id: int, name: str, sort: int) -> int:
    return await tx.insert(f"INSERT INTO stages (id, pipeline_id, name, sort) VALUES ({_fresh_id('stages')},?,?,?)",
                           (pipeline_id, name, sort))


async def update_stage(tx: Tx, stage_id: int, changes: dict) -> None:
    for column in ("name", "sort"):
        if column in changes:
            await tx.execute(f"UPDATE stages SET {column} = ? WHERE id = ?", (changes[column], stage_id))


async def leads_in(tx: Tx, *, pipeline_id: int | None = None, stage_id: int | None = None) -> int:
    if stage_id is not None:
        return await tx.fetchval("SELECT count(*) FROM leads WHERE stage_id = ?", (stage_id,))
    return await tx.fetchval("SELECT count(*) FROM leads WHERE pipeline_id = ?", (pipeline_id,))


async def channels_into(tx: Tx, pipeline_id: int) -> int:
    """Chat channels whose new leads go to this pipeline."""
    return await tx.fetchval("SELECT count(*) FROM channels WHERE pipeline_id = ?", (pipeline_id,))


async def delete_pipeline(tx: Tx, pipeline_id: int) -> None:
    await tx.execute("DELETE FROM pipelines WHERE id = ?", (pipeline_id,))


async def delete_stage(tx: Tx, stage_id: int) -> None:
    await tx.execute("DELETE FROM stages WHERE id = ?", (stage_id,))


# --- custom fields ---

async def fields_of(db: Database | Tx, entity: str) -> list:
    return await db.fetchall("SELECT * FROM custom_fields WHERE entity = ? ORDER BY sort, id", (entity,))


async def all_fields(db: Database | Tx) -> list:
    return await db.fetchall("SELECT * FROM custom_fields ORDER BY sort, id")


async def get_field(db: Database | Tx, entity: str, field_id: int):
    return await db.fetchone("SELECT * FROM custom_fields WHERE entity = ? AND id = ?", (entity, field_id))


async def insert_field(tx: Tx, entity: str, name: str, type_: str, options: list[str], sort: int, now: float) -> int:
    return await tx.insert("INSERT INTO custom_fields (id, entity, name, type, options, sort, created_at)"
                           f" VALUES ({_fresh_id('custom_fields')},?,?,?,?,?,?)",
                           (entity, name, type_, orjson.dumps(options).decode(), sort, now))


async def update_field(tx: Tx, field_id: int, changes: dict) -> None:
    for column in ("name", "sort", "options"):
        if column in changes:
            value = orjson.dumps(changes[column]).decode() if column == "options" else changes[column]
            await tx.execute(f"UPDATE custom_fields SET {column} = ? WHERE id = ?", (value, field_id))


async def delete_field(tx: Tx, entity: str, field_id: int) -> int:
    """Remove the definition and its value from every record; returns how many records held one."""
    assert entity in {"leads", "contacts", "companies"}
    key = f'$."{field_id}"'
    cur = await tx.execute(f"UPDATE {entity} SET custom = json_remove(custom, ?) WHERE json_extract(custom, ?)"
                           " IS NOT NULL", (key, key))
    await tx.execute("DELETE FROM custom_fields WHERE id = ?", (field_id,))
    return cur.rowcount


async def next_pipeline_sort(tx: Tx) -> int:
    return await tx.fetchval("SELECT coalesce(max(sort) + 1, 0) FROM pipelines")


async def next_stage_sort(tx: Tx, pipeline_id: int) -> int:
    return await tx.fetchval("SELECT coalesce(max(sort) + 1, 0) FROM stages WHERE pipeline_id = ?", (pipeline_id,))


async def stage_count(tx: Tx, pipeline_id: int) -> int:
    return await tx.fetchval("SELECT count(*) FROM stages WHERE pipeline_id = ?", (pipeline_id,))


async def first_pipeline_id(tx: Tx) -> int | None:
    """Where new leads land by default: the first pipeline in order."""
    return await tx.fetchval("SELECT id FROM pipelines ORDER BY sort, id LIMIT 1")
