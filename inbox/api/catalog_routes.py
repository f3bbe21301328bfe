"""/pipelines (with stages) and /{entity}/custom_fields. Admins change them; users read what they may."""

from __future__ import annotations

from aiohttp import web

from auth.policy import HIDDEN, field_access_name

from ..actions import catalog as actions
from ..actions.fields import field_defs
from ..keys import DB
from ..store import catalog as rows
from . import record_models as m
from .common import actor, subject_of
from .problems import not_found
from .record_responses import CustomField, CustomFieldList, Pipeline, PipelineList, Stage, StageList
from .routing import Access, body, int_id, json_response, registry

route = registry.route


def _pipeline_allowed(subject, pipeline_id: int) -> bool:
    return subject.is_admin or any(s.rights.pipeline_allowed(pipeline_id) for s in subject.sources)


@route("GET", "/api/v1/pipelines", response=PipelineList, access=Access.USER, tag="pipelines",
       summary="List the pipelines you have access to, with their stages in order")
async def list_pipelines(request: web.Request) -> web.Response:
    db = request.app[DB]
    subject = await subject_of(request)
    found = [p for p in await rows.list_pipelines(db) if _pipeline_allowed(subject, p["id"])]
    stages = await rows.stages_of(db, [p["id"] for p in found]) if found else []
    return json_response({"items": [actions.pipeline_json(p, stages) for p in found]})


@route("POST", "/api/v1/pipelines", response=Pipeline, access=Access.ADMIN, tag="pipelines", body=m.PipelineIn,
       status=201, summary="Create a pipeline with its stages (admin)")
async def create_pipeline(request: web.Request) -> web.Response:
    data: m.PipelineIn = await body(request)
    pid = await actions.do_create_pipeline(request.app[DB], actor(request), name=data.name, sort=data.sort,
                                           stages=data.stages)
    return await _pipeline(request, pid, status=201)


async def _pipeline(request: web.Request, pipeline_id: int, status: int = 200) -> web.Response:
    db = request.app[DB]
    row = await rows.get_pipeline(db, pipeline_id)
    if row is None or not _pipeline_allowed(await subject_of(request), pipeline_id):
        raise not_found("pipeline")
    return json_response(actions.pipeline_json(row, await rows.stages_of(db, [pipeline_id])), status=status)


@route("GET", "/api/v1/pipelines/{id}", response=Pipeline, access=Access.USER, tag="pipelines",
       summary="Get a pipeline")
async def get_pipeline(request: web.Request) -> web.Response:
    return await _pipeline(request, int_id(request))


@route("PATCH", "/api/v1/pipelines/{id}", response=Pipeline, access=Access.ADMIN, tag="pipelines",
       body=m.PipelineUpdate, summary="Rename or reorder a pipeline (admin)")
async def update_pipeline(request: web.Request) -> web.Response:
    pid = int_id(request)
    data: m.PipelineUpdate = await body(request)
    await actions.do_update_pipeline(request.app[DB], actor(request), pid, data.model_dump(exclude_unset=True))
    return await _pipeline(request, pid)


@route("DELETE", "/api/v1/pipelines/{id}", access=Access.ADMIN, tag="pipelines", status=204,
       summary="Delete an empty pipeline (admin; 409 while it holds leads)")
async def delete_pipeline(request: web.Request) -> web.Response:
    await actions.do_delete_pipeline(request.app[DB], actor(request), int_id(request))
    return web.Response(status=204)


@route("GET", "/api/v1/pipelines/{id}/stages", response=StageList, access=Access.USER, tag="pipelines",
       summary="List a pipeline's stages in order")
async def list_stages(request: web.Request) -> web.Response:
    pid = int_id(request)
    if await rows.get_pipeline(request.app[DB], pid) is None or not _pipeline_allowed(await subject_of(request), pid):
        raise not_found("pipeline")
    stages = await rows.stages_of(request.app[DB], [pid])
    return json_response({"items": [actions.stage_json(s) for s in stages]})


@route("POST", "/api/v1/pipelines/{id}/stages", response=Stage, access=Access.ADMIN, tag="pipelines", body=m.StageIn,
       status=201, summary="Add a stage (admin; appended unless sort is given)")
async def create_stage(request: web.Request) -> web.Response:
    pid = int_id(request)
    data: m.StageIn = await body(request)
    sid = await actions.do_create_stage(request.app[DB], actor(request), pid, name=data.name, sort=data.sort)
    return json_response(actions.stage_json(await rows.get_stage(request.app[DB], sid)), status=201)


@route("PATCH", "/api/v1/pipelines/{id}/stages/{stage_id}", response=Stage, access=Access.ADMIN, tag="pipelines",
       body=m.StageUpdate, summary="Rename or reorder a stage (admin)")
async def update_stage(request: web.Request) -> web.Response:
    pid, sid = int_id(request), int_id(request, "stage_id")
    data: m.StageUpdate = await body(request)
    await actions.do_update_stage(request.app[DB], actor(request), pid, sid, data.model_dump(exclude_unset=True))
    return json_response(actions.stage_json(await rows.get_stage(request.app[DB], sid)))


@route("DELETE", "/api/v1/pipelines/{id}/stages/{stage_id}", access=Access.ADMIN, tag="pipelines", status=204,
       summary="Delete an empty stage (admin; 409 while it holds leads)")
async def delete_stage(request: web.Request) -> web.Response:
    await actions.do_delete_stage(request.app[DB], actor(request), int_id(request), int_id(request, "stage_id"))
    return web.Response(status=204)


# --- custom fields, per entity ---

def _field_json(defn: dict, access: int) -> dict:
    return {**defn, "access": field_access_name(access)}


def _declare_fields(entity: str) -> None:
    base = f"/api/v1/{entity}/custom_fields"

    @route("GET", base, response=CustomFieldList, access=Access.USER, tag="custom fields",
           summary=f"List {entity} custom fields you may see, with your access to each")
    async def list_fields(request: web.Request) -> web.Response:
        subject = await subject_of(request)
        defs = field_defs(await rows.fields_of(request.app[DB], entity))
        items = [_field_json(d, subject.field_access(entity, fid)) for fid, d in defs.items()
                 if subject.field_access(entity, fid) != HIDDEN]
        return json_response({"items": items})

    @route("POST", base, response=CustomField, access=Access.ADMIN, tag="custom fields", body=m.FieldIn, status=201,
           summary=f"Define a {entity} custom field: text, number, select or date (admin)")
    async def create_field(request: web.Request) -> web.Response:
        data: m.FieldIn = await body(request)
        fid = await actions.do_create_field(request.app[DB], actor(request), entity, data.model_dump())
        row = await rows.get_field(request.app[DB], entity, fid)
        return json_response(_field_json(field_defs([row])[fid], 2), status=201)

    @route("PATCH", f"{base}/{{id}}", response=CustomField, access=Access.ADMIN, tag="custom fields",
           body=m.FieldUpdate, summary=f"Rename, reorder or change the options of a {entity} custom field (admin)")
    async def update_field(request: web.Request) -> web.Response:
        fid = int_id(request)
        data: m.FieldUpdate = await body(request)
        await actions.do_update_field(request.app[DB], actor(request), entity, fid, data.model_dump(exclude_unset=True))
        row = await rows.get_field(request.app[DB], entity, fid)
        return json_response(_field_json(field_defs([row])[fid], 2))

    @route("DELETE", f"{base}/{{id}}", access=Access.ADMIN, tag="custom fields", status=204,
           summary=f"Delete a {entity} custom field and its values (admin)")
    async def delete_field(request: web.Request) -> web.Response:
        await actions.do_delete_field(request.app[DB], actor(request), entity, int_id(request))
        return web.Response(status=204)


for _entity in ("leads", "contacts", "companies"):
    _declare_fields(_entity)
