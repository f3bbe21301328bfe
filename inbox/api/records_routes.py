"""/leads, /contacts, /companies and /tasks: lists filtered in the database, cards shaped per user,
writes checked by the permission core, and streamed CSV exports."""

from __future__ import annotations

import csv
import io
from typing import Any

from aiohttp import web

from auth.visibility import Visibility, entity_visibility, leads_visibility, tasks_plan

from ..actions import records
from ..keys import DB
from ..store import catalog, listing, plans
from ..store import records as rows
from ..store.listing import Filter
from . import record_models as m
from .common import actor, iso, subject_of
from .problems import forbidden
from .record_responses import CARDS
from .routing import Access, body, int_id, json_response, query, registry

route = registry.route


# --- filters and visibility ---

def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def record_filter(entity: str, q: Any, stages: frozenset[int] | None = None) -> Filter:
    """Search and filters. ``query`` matches names (and contact emails and phones), never custom
    fields, so a hidden field can never be found by searching (rule 7)."""
    terms: list[str] = []
    params: list[Any] = []
    if stages is not None:
        terms.append("{p}stage_id IN (" + ",".join("?" * len(stages)) + ")" if stages else "0")
        params += sorted(stages)
    if getattr(q, "responsible_user_id", None) is not None:
        terms.append("{p}responsible_user_id = ?")
        params.append(q.responsible_user_id)
    if getattr(q, "updated_since", None) is not None:
        terms.append("{p}updated_at >= ?")
        params.append(q.updated_since)
    if getattr(q, "query", None):
        if entity == "contacts":
            terms.append("({p}name LIKE ? ESCAPE '\\' OR {p}emails LIKE ? ESCAPE '\\' OR {p}phones LIKE ? ESCAPE '\\')")
            params += [_like(q.query)] * 3
        else:
            terms.append("{p}name LIKE ? ESCAPE '\\'")
            params.append(_like(q.query))
    if entity == "tasks":
        for key in ("entity_type", "entity_id", "is_done"):
            value = getattr(q, key, None)
            if value is not None:
                terms.append("{p}" + key + " = ?")
                params.append(int(value) if isinstance(value, bool) else value)
    return Filter(tuple(terms), tuple(params))


async def visibility(request: web.Request, entity: str, q: Any, action: str = "view") -> tuple[Visibility, Filter]:
    subject = await subject_of(request)
    if entity != "leads":
        vis = entity_visibility(subject, entity, action=action, responsible=q.responsible_user_id)
        return vis, record_filter(entity, q)
    cat = await catalog.stage_catalogue(request.app[DB])
    stages = None
    if q.stage_id is not None:
        stages = frozenset({q.stage_id} & cat.keys())
    if q.pipeline_id is not None:
        in_pipeline = frozenset(s for s, p in cat.items() if p == q.pipeline_id)
        stages = in_pipeline if stages is None else stages & in_pipeline
    vis = leads_visibility(subject, cat, action=action, stages=stages, responsible=q.responsible_user_id)
    return vis, record_filter(entity, q, stages)


async def task_visibility(request: web.Request) -> tuple[str, list]:
    subject = await subject_of(request)
    cat = await catalog.stage_catalogue(request.app[DB])
    attached = {"leads": leads_visibility(subject, cat),
                "contacts": entity_visibility(subject, "contacts"),
                "companies": entity_visibility(subject, "companies")}
    return plans.tasks_where(tasks_plan(subject, attached))


def _page_body(items: list, q: Any, total: int | None, has_more: bool, last_id: int | None) -> dict[str, Any]:
    out: dict[str, Any] = {"items": items, "limit": q.limit, "next_cursor": last_id if has_more else None}
    if q.cursor is None:
        out.update(page=q.page, total=total)
    return out


async def list_records(request: web.Request, entity: str) -> web.Response:
    q = query(request)
    db = request.app[DB]
    subject = await subject_of(request)
    offset = (q.page - 1) * q.limit
    if entity == "tasks":
        where = await task_visibility(request)
        flt = record_filter("tasks", q)
        found = await listing.page_where(db, "tasks", where, flt, before=q.cursor, limit=q.limit + 1, offset=offset)
        total = await listing.count_where(db, "tasks", where, flt) if q.cursor is None else None
    else:
        vis, flt = await visibility(request, entity, q)
        found = await listing.page(db, entity, vis, flt, before=q.cursor, limit=q.limit + 1, offset=offset)
        total = await listing.count(db, entity, vis, flt) if q.cursor is None else None
    has_more = len(found) > q.limit
    found = [rows.decode(r) for r in found[:q.limit]]
    items = await records.record_cards(db, subject, entity, found)
    return json_response(_page_body(items, q, total, has_more, found[-1]["id"] if found else None))


async def card(request: web.Request, entity: str, record_id: int, status: int = 200) -> web.Response:
    db = request.app[DB]
    subject = await subject_of(request)
    record = await records.visible(db, subject, entity, record_id)
    if record is None:
        # Created by the caller but outside what they may view (say, assigned to someone else).
        return json_response({"id": record_id, "visible": False}, status=status)
    return await card_of(request, entity, record, status)


async def card_of(request: web.Request, entity: str, record: dict[str, Any], status: int = 200) -> web.Response:
    """A record already known to be visible (``records.visible``), as the caller sees it."""
    subscribed = {record["id"]} if record.get("_subscribed") else set()
    cards = await records.record_cards(request.app[DB], await subject_of(request), entity, [record], subscribed)
    return json_response(cards[0], status=status)


# --- CSV export (rule 11) ---

def _cell(value: Any) -> Any:
    # Spreadsheet formula injection: a cell that starts like a formula is written as text.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


BUILTIN_COLUMNS = {
    "leads": ("id", "name", "price", "pipeline_id", "stage_id", "responsible_user_id", "company_id", "contact_ids"),
    "contacts": ("id", "name", "emails", "phones", "company_id", "responsible_user_id"),
    "companies": ("id", "name", "responsible_user_id"),
}


async def export(request: web.Request, entity: str) -> web.StreamResponse:
    q = query(request)
    db = request.app[DB]
    subject = await subject_of(request)
    vis, flt = await visibility(request, entity, q, action="export")
    everything, _ = await visibility(request, entity, m.LeadFilter() if entity == "leads" else m.RecordFilter(),
                                     action="export")
    if everything.nothing:
        raise forbidden(f"You may not export {entity}.")
    defs = (await records.load_defs(db))[entity]
    fields = subject.shown_fields(entity, defs)
    header = [*BUILTIN_COLUMNS[entity], "created_at", "updated_at", *(f"{defs[f]['name']} (field {f})" for f in fields)]
    response = web.StreamResponse(headers={
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": f'attachment; filename="{entity}.csv"'})
    await response.prepare(request)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    exported = 0
    try:
        async for chunk in listing.stream(db, entity, vis, flt):
            batch = [rows.decode(r) for r in chunk]
            links = await rows.lead_contacts(db, [r["id"] for r in batch]) if entity == "leads" else {}
            for r in batch:
                extra = {"contact_ids": ";".join(map(str, links.get(r["id"], []))),
                         "emails": ";".join(r.get("emails", [])), "phones": ";".join(r.get("phones", []))}
                writer.writerow([_cell(extra.get(c, r.get(c))) for c in BUILTIN_COLUMNS[entity]]
                                + [iso(r["created_at"]), iso(r["updated_at"])]
                                + [_cell(r["custom"].get(str(f), "")) for f in fields])
            exported += len(batch)
            await response.write(buf.getvalue().encode())
            buf.seek(0)
            buf.truncate()
        if buf.tell() or not exported:
            await response.write(buf.getvalue().encode())
    finally:
        await records.log_export(db, actor(request), entity, exported, dict(request.query))
    await response.write_eof()
    return response


# --- routes, declared per entity; the fixed paths come before /{id} so they match first ---

MODELS = {
    "leads": (m.LeadList, m.LeadFilter, m.LeadIn, m.LeadUpdate),
    "contacts": (m.RecordList, m.RecordFilter, m.ContactIn, m.ContactUpdate),
    "companies": (m.RecordList, m.RecordFilter, m.CompanyIn, m.CompanyUpdate),
    "tasks": (m.TaskList, None, m.TaskIn, m.TaskUpdate),
}


def _declare(entity: str) -> None:
    list_model, filter_model, create_model, update_model = MODELS[entity]
    one = records.SINGULAR[entity]
    base = f"/api/v1/{entity}"
    card_model, written_model, page_model = CARDS[entity]

    @route("GET", base, response=page_model, access=Access.USER, tag=entity, query=list_model,
           summary=f"List the {entity} you may see (cursor or page; filtered in the database)")
    async def list_handler(request: web.Request) -> web.Response:
        return await list_records(request, entity)

    if filter_model is not None:
        @route("GET", f"{base}/export", media="text/csv", access=Access.USER, tag=entity, query=filter_model,
               summary=f"Stream the {entity} your export right covers as CSV, visible fields only")
        async def export_handler(request: web.Request) -> web.StreamResponse:
            return await export(request, entity)

    @route("POST", base, response=written_model, access=Access.USER, tag=entity, body=create_model, status=201,
           summary=f"Add a {one}")
    async def create_handler(request: web.Request) -> web.Response:
        data = (await body(request)).model_dump(exclude_unset=True)
        subject = await subject_of(request)
        db = request.app[DB]
        if entity == "leads":
            new_id = await records.do_create_lead(db, actor(request), subject, data)
        elif entity == "tasks":
            new_id = await records.do_create_task(db, actor(request), subject, data)
        else:
            new_id = await records.do_create_party(db, actor(request), subject, entity, data)
        return await card(request, entity, new_id, status=201)

    @route("GET", f"{base}/{{id}}", response=card_model, access=Access.USER, tag=entity, summary=f"Get a {one}")
    async def get_handler(request: web.Request) -> web.Response:
        record = await records.require_visible(request.app[DB], await subject_of(request), entity, int_id(request))
        return await card_of(request, entity, record)

    @route("PATCH", f"{base}/{{id}}", response=written_model, access=Access.USER, tag=entity, body=update_model,
           summary=f"Edit a {one}; read-only fields are refused with 403 and nothing is changed")
    async def update_handler(request: web.Request) -> web.Response:
        record_id = int_id(request)
        data = (await body(request)).model_dump(exclude_unset=True)
        subject = await subject_of(request)
        db = request.app[DB]
        if entity == "leads":
            await records.do_update_lead(db, actor(request), subject, record_id, data)
        elif entity == "tasks":
            await records.do_update_task(db, actor(request), subject, record_id, data)
        else:
            await records.do_update_party(db, actor(request), subject, entity, record_id, data)
        return await card(request, entity, record_id)

    @route("DELETE", f"{base}/{{id}}", access=Access.USER, tag=entity, status=204, summary=f"Delete a {one}")
    async def delete_handler(request: web.Request) -> web.Response:
        await records.do_delete(request.app[DB], actor(request), await subject_of(request), entity, int_id(request))
        return web.Response(status=204)


for _entity in ("leads", "contacts", "companies", "tasks"):
    _declare(_entity)
