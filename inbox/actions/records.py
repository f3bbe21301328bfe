"""Leads, contacts, companies and tasks: every read is filtered and every write is checked by the
permission core, then written, logged and (for leads) announced to subscribers in one transaction.

Answer codes follow rule 14: a record the caller may not view is 404, as if it did not exist; a
visible record and a forbidden action is 403. Validation (422) comes before permission where the
answer leaks nothing, and nothing is written unless every check passes.
"""

from __future__ import annotations

from typing import Any

from auth.policy import Subject

from ..errors import forbidden, invalid, not_found
from ..store import activity, catalog, events
from ..store import records as rows
from ..store import users as user_rows
from ..store.db import Database, Tx
from ..times import iso
from . import render
from .context import Actor
from .fields import check_custom_write, field_defs, masked_custom, merge_custom

SINGULAR = {"leads": "lead", "contacts": "contact", "companies": "company", "tasks": "task"}
CUSTOM_ENTITIES = ("leads", "contacts", "companies")


async def load_defs(db: Database | Tx) -> dict[str, dict[int, Any]]:
    every = await catalog.all_fields(db)
    return {e: field_defs([r for r in every if r["entity"] == e]) for e in CUSTOM_ENTITIES}


def _bad(path: str, message: str):
    return invalid(f"{path}: {message}", [{"path": path, "message": message}])


# --- reading ---

async def lead_cards(db: Database | Tx, subject: Subject, leads: list[dict[str, Any]],
                     subscribed: set[int] | None = None) -> list[dict[str, Any]]:
    ids = [lead["id"] for lead in leads]
    if subscribed is None:
        subscribed = await rows.subscribed_among(db, subject.user_id, ids)
    links = await rows.lead_contacts(db, ids)
    contacts = await rows.get_many(db, "contacts", [c for cs in links.values() for c in cs])
    companies = await rows.get_many(db, "companies", [lead["company_id"] for lead in leads if lead["company_id"]])
    defs = await load_defs(db)
    return [render.lead_json(subject, lead, subscribed=lead["id"] in subscribed,
                             contacts=[contacts[c] for c in links[lead["id"]]],
                             company=companies.get(lead["company_id"]), defs=defs) for lead in leads]


async def record_cards(db: Database | Tx, subject: Subject, entity: str, records: list[dict[str, Any]],
                       subscribed: set[int] | None = None) -> list[dict[str, Any]]:
    if entity == "leads":
        return await lead_cards(db, subject, records, subscribed)
    if entity == "tasks":
        return [render.task_json(t) for t in records]
    defs = (await load_defs(db))[entity]
    shape = render.contact_json if entity == "contacts" else render.company_json
    return [shape(subject, r, defs) for r in records]


async def attached_viewable(db: Database | Tx, subject: Subject, task: dict[str, Any]) -> bool:
    if not task["entity_type"]:
        return False
    return await visible(db, subject, task["entity_type"], task["entity_id"]) is not None


async def visible(db: Database | Tx, subject: Subject, entity: str, record_id: int) -> dict[str, Any] | None:
    """The record if ``subject`` may view it, else None. Leads carry ``_subscribed``."""
    record = await rows.get(db, entity, record_id)
    if record is None:
        return None
    if entity == "leads":
        record["_subscribed"] = bool(await rows.subscribed_among(db, subject.user_id, [record_id]))
        return record if subject.can_record("leads", "view", record, subscribed=record["_subscribed"]) else None
    if entity == "tasks":
        ok = subject.task_visible(record["responsible_user_id"],
                                  attached_viewable=await attached_viewable(db, subject, record))
        return record if ok else None
    return record if subject.can_entity(entity, "view", record["responsible_user_id"]) else None


async def require_visible(db: Database | Tx, subject: Subject, entity: str, record_id: int) -> dict[str, Any]:
    record = await visible(db, subject, entity, record_id)
    if record is None:
        raise not_found(SINGULAR[entity])
    return record


def _require(subject: Subject, entity: str, action: str, record: dict[str, Any]) -> None:
    if entity == "tasks":
        ok = subject.can_task(action, record["responsible_user_id"])
    else:
        ok = subject.can_record(entity, action, record)  # a subscription never counts here (rule 5)
    if not ok:
        raise forbidden(f"You may not {action} this {SINGULAR[entity]}.")


# --- checks shared by writes ---

async def check_user(tx: Tx, user_id: int, path: str = "responsible_user_id") -> None:
    if not await user_rows.is_active(tx, user_id):
        raise _bad(path, f"no active user with id {user_id}")


async def _check_link(tx: Tx, subject: Subject, entity: str, ids: list[int], path: str) -> None:
    """Linking needs a view right on what is linked; one answer for missing and invisible (rule 14)."""
    found = await rows.get_many(tx, entity, ids)
    unknown = [i for i in ids if i not in found
               or not subject.can_entity(entity, "view", found[i]["responsible_user_id"])]
    if unknown:
        raise _bad(path, f"no {entity} visible to you with ids {unknown}")


async def _resolve_stage(tx: Tx, pipeline_id: int | None, stage_id: int | None,
                         current: dict[str, Any] | None = None) -> tuple[int, int]:
    if stage_id is not None:
        stage = await catalog.get_stage(tx, stage_id)
        if stage is None:
            raise _bad("stage_id", f"no stage with id {stage_id}")
        if pipeline_id is not None and stage["pipeline_id"] != pipeline_id:
            raise _bad("stage_id", f"stage {stage_id} is not in pipeline {pipeline_id}")
        return stage["pipeline_id"], stage_id
    if pipeline_id is None:
        if current is not None:
            return current["pipeline_id"], current["stage_id"]
        first = await catalog.first_pipeline_id(tx)
        if first is None:
            raise _bad("pipeline_id", "there is no pipeline yet; an administrator must create one")
        pipeline_id = first
    if current is not None and current["pipeline_id"] == pipeline_id:
        return pipeline_id, current["stage_id"]
    if await catalog.get_pipeline(tx, pipeline_id) is None:
        raise _bad("pipeline_id", f"no pipeline with id {pipeline_id}")
    stage = await catalog.first_stage(tx, pipeline_id)
    if stage is None:
        raise _bad("pipeline_id", f"pipeline {pipeline_id} has no stages")
    return pipeline_id, stage["id"]


def _snapshot(subject: Subject, entity: str, record: dict[str, Any], contact_ids: list[int] | None = None):
    """What the activity log keeps of a record: every column, hidden custom values masked."""
    out = {k: v for k, v in record.items() if k not in ("id", "created_at", "updated_at") and not k.startswith("_")}
    if "custom" in out:
        out["custom_fields"] = masked_custom(subject, entity, out.pop("custom"))
    if contact_ids is not None:
        out["contact_ids"] = contact_ids
    return out


def _diff(before: dict[str, Any], after: dict[str, Any]) -> tuple[dict, dict]:
    keys = [k for k in after if before.get(k) != after.get(k)]
    return {k: before.get(k) for k in keys}, {k: after[k] for k in keys}


async def _log(tx: Tx, actor: Actor, entity: str, verb: str, record_id: int, data: dict[str, Any]) -> None:
    await activity.append(tx, at=actor.now, actor_id=actor.user_id, ip=actor.ip,
                          type=f"{SINGULAR[entity]}.{verb}", object_type=SINGULAR[entity], object_id=record_id,
                          data=data)


def _cell(lead: dict[str, Any]) -> dict[str, Any]:
    return {"id": lead["id"], "pipeline_id": lead["pipeline_id"], "stage_id": lead["stage_id"],
            "responsible_user_id": lead["responsible_user_id"]}


async def _lead_payload(tx: Tx, lead_id: int) -> dict[str, Any]:
    """What a lead event carries: the unredacted card; each reader's view is cut from it (realtime/views)."""
    lead = await rows.get(tx, "leads", lead_id)
    links = (await rows.lead_contacts(tx, [lead_id]))[lead_id]
    contacts = list((await rows.get_many(tx, "contacts", links)).values())
    company = await rows.get(tx, "companies", lead["company_id"]) if lead["company_id"] else None
    return {"lead": lead, "contacts": contacts, "company": company,
            "subscribers": await rows.subscribers(tx, lead_id)}


def new_lead_card(lead: dict[str, Any], contacts: list[dict[str, Any]]) -> dict[str, Any]:
    """``_lead_payload`` of a lead inserted in this job without a company, from the rows at hand: it
    can have no subscriber yet."""
    return {"lead": lead, "contacts": contacts, "company": None, "subscribers": []}


async def emit_lead(tx: Tx, actor: Actor, type_: str, lead_id: int, before: dict | None = None,
                    changed: list[str] | None = None, *, card: dict[str, Any] | None = None) -> None:
    payload = dict(card) if card is not None else await _lead_payload(tx, lead_id)
    payload.update(before=before, changed=changed or [], actor_id=actor.user_id)
    await events.emit(tx, type_, payload, actor.now)


async def _notify_subscribers(tx: Tx, actor: Actor, lead_id: int, type_: str, before: dict, after: dict) -> None:
    """Rule 5: every change of a lead reaches its subscribers. Custom values are not copied into the
    notice (a subscriber may not see them); only that they changed."""
    targets = [u for u in await rows.subscribers(tx, lead_id) if u != actor.user_id]
    if not targets:
        return
    changed = sorted(set(before) | set(after))
    plain = lambda d: {k: v for k, v in d.items() if k != "custom_fields"}  # noqa: E731
    await notify(tx, actor, targets, lead_id, type_, {"lead_id": lead_id, "actor_id": actor.user_id,
                                                     "changed": changed, "before": plain(before),
                                                     "after": plain(after)})


async def notify(tx: Tx, actor: Actor, user_ids: list[int], lead_id: int | None, type_: str, data: dict) -> None:
    """Store a notification per user and push each one live to its owner."""
    for user_id, note_id in await rows.notify(tx, user_ids, lead_id, type_, data, actor.now):
        await events.emit(tx, "notification.created", {"user_id": user_id, "notification": {
            "id": note_id, "type": type_, "lead_id": lead_id, "data": data, "created_at": iso(actor.now),
            "read_at": None}}, actor.now)


# --- leads ---

async def do_create_lead(db: Database, actor: Actor, subject: Subject, data: dict[str, Any]) -> int:
    async def job(tx: Tx) -> int:
        pipeline_id, stage_id = await _resolve_stage(tx, data.get("pipeline_id"), data.get("stage_id"))
        if not subject.can_add_lead(pipeline_id):
            raise forbidden(f"You may not add leads to pipeline {pipeline_id}.")
        responsible = data.get("responsible_user_id") or subject.user_id
        await check_user(tx, responsible)
        contact_ids = sorted(set(data.get("contact_ids") or []))
        await _check_link(tx, subject, "contacts", contact_ids, "contact_ids")
        if data.get("company_id") is not None:
            await _check_link(tx, subject, "companies", [data["company_id"]], "company_id")
        defs = (await load_defs(tx))["leads"]
        custom = merge_custom({}, check_custom_write(subject, "leads", defs, data.get("custom_fields") or {}))
        values = {"name": data["name"], "price": data.get("price", 0), "pipeline_id": pipeline_id,
                  "stage_id": stage_id, "responsible_user_id": responsible, "company_id": data.get("company_id"),
                  "custom": custom}
        lead_id = await rows.insert(tx, "leads", values, actor.now)
        await rows.set_lead_contacts(tx, lead_id, contact_ids)
        await _log(tx, actor, "leads", "created", lead_id, {"after": _snapshot(subject, "leads", values, contact_ids)})
        await emit_lead(tx, actor, "lead.created", lead_id)
        return lead_id

    return await db.write(job)


async def do_update_lead(db: Database, actor: Actor, subject: Subject, lead_id: int,
                         changes: dict[str, Any]) -> None:
    async def job(tx: Tx) -> None:
        lead = await require_visible(tx, subject, "leads", lead_id)
        _require(subject, "leads", "edit", lead)
        new: dict[str, Any] = {}
        if "pipeline_id" in changes or "stage_id" in changes:
            p, s = await _resolve_stage(tx, changes.get("pipeline_id"), changes.get("stage_id"), lead)
            # Moving a lead needs an edit right where it lands too (same responsible user).
            if not subject.can_lead("edit", p, s, lead["responsible_user_id"]):
                raise forbidden(f"You may not move this lead to stage {s} of pipeline {p}.")
            new.update(pipeline_id=p, stage_id=s)
        if "responsible_user_id" in changes:
            await check_user(tx, changes["responsible_user_id"])
            new["responsible_user_id"] = changes["responsible_user_id"]
        for key in ("name", "price"):
            if key in changes:
                new[key] = changes[key]
        if "company_id" in changes:
            if changes["company_id"] is not None:
                await _check_link(tx, subject, "companies", [changes["company_id"]], "company_id")
            new["company_id"] = changes["company_id"]
        old_contacts = (await rows.lead_contacts(tx, [lead_id]))[lead_id]
        contact_ids = old_contacts
        if "contact_ids" in changes:
            contact_ids = sorted(set(changes["contact_ids"]))
            # Only newly linked contacts need a view right; keeping a link needs none.
            await _check_link(tx, subject, "contacts", [c for c in contact_ids if c not in old_contacts],
                              "contact_ids")
        if "custom_fields" in changes:
            defs = (await load_defs(tx))["leads"]
            new["custom"] = merge_custom(lead["custom"], check_custom_write(subject, "leads", defs,
                                                                            changes["custom_fields"]))
        before = _snapshot(subject, "leads", lead, old_contacts)
        after = _snapshot(subject, "leads", {**lead, **new}, contact_ids)
        b, a = _diff(before, after)
        if not a:
            return
        await rows.update(tx, "leads", lead_id, new, actor.now)  # also bumps updated_at for link changes
        if contact_ids != old_contacts:
            await rows.set_lead_contacts(tx, lead_id, contact_ids)
        await _log(tx, actor, "leads", "updated", lead_id, {"before": b, "after": a})
        await _notify_subscribers(tx, actor, lead_id, "lead.updated", b, a)
        await emit_lead(tx, actor, "lead.updated", lead_id, before=_cell(lead), changed=sorted(a))

    await db.write(job)


async def do_delete(db: Database, actor: Actor, subject: Subject, entity: str, record_id: int) -> None:
    async def job(tx: Tx) -> None:
        record = await require_visible(tx, subject, entity, record_id)
        _require(subject, entity, "delete", record)
        contacts = (await rows.lead_contacts(tx, [record_id]))[record_id] if entity == "leads" else None
        before = _snapshot(subject, entity, record, contacts)
        if entity == "leads":
            await _notify_subscribers(tx, actor, record_id, "lead.deleted", before, {})
            await events.emit(tx, "lead.deleted", {"lead": _cell(record), "actor_id": actor.user_id,
                                                   "subscribers": await rows.subscribers(tx, record_id)}, actor.now)
        elif entity in ("contacts", "companies"):
            await events.emit(tx, f"{SINGULAR[entity]}.deleted", {"record": record, "actor_id": actor.user_id},
                              actor.now)
        elif entity == "tasks":
            await emit_task(tx, actor, "task.deleted", record)
        await rows.delete(tx, entity, record_id)
        await _log(tx, actor, entity, "deleted", record_id, {"before": before})

    await db.write(job)


# --- subscriptions (rule 5) ---

async def do_subscribe(db: Database, actor: Actor, subject: Subject, lead_id: int, user_id: int, *,
                       add: bool) -> bool:
    """Subscribe or unsubscribe ``user_id``: oneself when one can see the lead, others only with edit."""

    async def job(tx: Tx) -> bool:
        lead = await require_visible(tx, subject, "leads", lead_id)
        if user_id != subject.user_id and not subject.can_record("leads", "edit", lead):
            raise forbidden("Only users who may edit this lead can change other users' subscriptions.")
        subscribers_before = await rows.subscribers(tx, lead_id)
        if add:
            await check_user(tx, user_id, "user_id")
            changed = await rows.subscribe(tx, lead_id, user_id, actor.now)
        else:
            changed = await rows.unsubscribe(tx, lead_id, user_id)
        if changed:
            verb = "subscribed" if add else "unsubscribed"
            await _log(tx, actor, "leads", verb, lead_id, {"user_id": user_id})
            # The user whose subscription changed gets the lead as they now see it (a subscriber
            # without a view right could not have had it before), ahead of the notice naming it; the
            # hub sends access_revoked instead to one whose unsubscription took the lead out of sight.
            await events.emit(tx, "subscription.changed", {
                **await _lead_payload(tx, lead_id), "before": _cell(lead), "user_ids": [user_id],
                "subscribed": add, "subscribers_before": subscribers_before}, actor.now)
            if user_id != actor.user_id:
                await notify(tx, actor, [user_id], lead_id, f"lead.{verb}", {"lead_id": lead_id, "actor_id": actor.user_id})
        return changed

    return await db.write(job)


# --- contacts and companies ---

async def do_create_party(db: Database, actor: Actor, subject: Subject, entity: str, data: dict[str, Any]) -> int:
    """Create a contact or a company."""

    async def job(tx: Tx) -> int:
        if not subject.can_entity(entity, "add", 0):
            raise forbidden(f"You may not add {entity}.")
        responsible = data.get("responsible_user_id") or subject.user_id
        await check_user(tx, responsible)
        if data.get("company_id") is not None:
            await _check_link(tx, subject, "companies", [data["company_id"]], "company_id")
        defs = (await load_defs(tx))[entity]
        custom = merge_custom({}, check_custom_write(subject, entity, defs, data.get("custom_fields") or {}))
        values = {k: v for k, v in data.items() if k in rows.COLUMNS[entity] and k != "custom"}
        values.update(responsible_user_id=responsible, custom=custom)
        if entity == "contacts":
            values.setdefault("emails", [])
            values.setdefault("phones", [])
        record_id = await rows.insert(tx, entity, values, actor.now)
        await _log(tx, actor, entity, "created", record_id, {"after": _snapshot(subject, entity, values)})
        await events.emit(tx, f"{SINGULAR[entity]}.created", {"record": await rows.get(tx, entity, record_id),
                                                              "actor_id": actor.user_id}, actor.now)
        return record_id

    return await db.write(job)


async def do_update_party(db: Database, actor: Actor, subject: Subject, entity: str, record_id: int,
                          changes: dict[str, Any]) -> None:
    async def job(tx: Tx) -> None:
        record = await require_visible(tx, subject, entity, record_id)
        _require(subject, entity, "edit", record)
        new = {k: v for k, v in changes.items() if k in rows.COLUMNS[entity] and k != "custom"}
        if "responsible_user_id" in new:
            await check_user(tx, new["responsible_user_id"])
        if new.get("company_id") is not None and new["company_id"] != record.get("company_id"):
            await _check_link(tx, subject, "companies", [new["company_id"]], "company_id")
        if "custom_fields" in changes:
            defs = (await load_defs(tx))[entity]
            new["custom"] = merge_custom(record["custom"], check_custom_write(subject, entity, defs,
                                                                              changes["custom_fields"]))
        b, a = _diff(_snapshot(subject, entity, record), _snapshot(subject, entity, {**record, **new}))
        if not a:
            return
        await rows.update(tx, entity, record_id, new, actor.now)
        await _log(tx, actor, entity, "updated", record_id, {"before": b, "after": a})
        await events.emit(tx, f"{SINGULAR[entity]}.updated", {"record": await rows.get(tx, entity, record_id),
                                                              "actor_id": actor.user_id, "changed": sorted(a)},
                          actor.now)

    await db.write(job)


# --- tasks (rule 10) ---

async def _check_task_target(tx: Tx, subject: Subject, entity_type: str | None, entity_id: int | None) -> None:
    if (entity_type is None) != (entity_id is None):
        raise _bad("entity_id", "give entity_type and entity_id together, or neither")
    if entity_type is not None and await visible(tx, subject, entity_type, entity_id) is None:
        raise _bad("entity_id", f"no {SINGULAR[entity_type]} visible to you with id {entity_id}")


async def task_card(tx: Database | Tx, task: dict[str, Any]) -> dict[str, Any]:
    """What a task event carries: the task and the facts that decide who sees it (rule 10): the
    attached record's owner and, for a lead, its place and subscribers. Readers are decided from this
    alone (realtime/views), so the hub needs no read per reader."""
    attached, subscribers = None, []
    if task["entity_type"]:
        record = await rows.get(tx, task["entity_type"], task["entity_id"])
        if record is not None:
            if task["entity_type"] == "leads":
                attached = _cell(record)
                subscribers = await rows.subscribers(tx, record["id"])
            else:
                attached = {"id": record["id"], "responsible_user_id": record["responsible_user_id"]}
    return {"task": task, "attached": attached, "subscribers": subscribers}


async def emit_task(tx: Tx, actor: Actor, type_: str, task: dict[str, Any], *,
                    before: dict[str, Any] | None = None, changed: list[str] | None = None) -> None:
    """A task event with ``task`` as it is now (as it was, for ``task.deleted``); ``before`` is the
    card before an update, so a reader who loses sight of the task learns it."""
    await events.emit(tx, type_, {**await task_card(tx, task), "before": before, "changed": changed or [],
                                  "actor_id": actor.user_id}, actor.now)


async def do_create_task(db: Database, actor: Actor, subject: Subject, data: dict[str, Any]) -> int:
    async def job(tx: Tx) -> int:
        responsible = data.get("responsible_user_id") or subject.user_id
        await check_user(tx, responsible)
        if not subject.can_task("edit", responsible):
            raise forbidden("Your task rights do not cover tasks for this user.")
        await _check_task_target(tx, subject, data.get("entity_type"), data.get("entity_id"))
        values = {"text": data["text"], "due_at": data.get("due_at"), "responsible_user_id": responsible,
                  "entity_type": data.get("entity_type"), "entity_id": data.get("entity_id"),
                  "is_done": data.get("is_done", False)}
        task_id = await rows.insert(tx, "tasks", values, actor.now)
        await _log(tx, actor, "tasks", "created", task_id, {"after": values})
        await emit_task(tx, actor, "task.created", await rows.get(tx, "tasks", task_id))
        return task_id

    return await db.write(job)


async def do_update_task(db: Database, actor: Actor, subject: Subject, task_id: int, changes: dict[str, Any]) -> None:
    async def job(tx: Tx) -> None:
        task = await require_visible(tx, subject, "tasks", task_id)
        _require(subject, "tasks", "edit", task)
        if "responsible_user_id" in changes:
            await check_user(tx, changes["responsible_user_id"])
            if not subject.can_task("edit", changes["responsible_user_id"]):
                raise forbidden("Your task rights do not cover tasks for that user.")
        if "entity_type" in changes or "entity_id" in changes:
            await _check_task_target(tx, subject, changes.get("entity_type"), changes.get("entity_id"))
        b, a = _diff(_snapshot(subject, "tasks", task), _snapshot(subject, "tasks", {**task, **changes}))
        if not a:
            return
        before = await task_card(tx, task)
        await rows.update(tx, "tasks", task_id, changes, actor.now)
        await _log(tx, actor, "tasks", "updated", task_id, {"before": b, "after": a})
        await emit_task(tx, actor, "task.updated", await rows.get(tx, "tasks", task_id), before=before,
                        changed=sorted(a))

    await db.write(job)


async def log_export(db: Database, actor: Actor, entity: str, count: int, filters: dict[str, str]) -> None:
    async def job(tx: Tx) -> None:
        await activity.append(tx, at=actor.now, actor_id=actor.user_id, ip=actor.ip, type=f"{entity}.exported",
                              object_type=entity, object_id=None, data={"count": count, "filters": filters})

    await db.write(job)
