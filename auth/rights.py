"""Rights objects: their shape, the interrelation rule, and effective rights.

Policy (SPEC section 2):
- Levels nest, weakest first: D < M < G < A. ``add`` is A or D only.
- Interrelation (rule 1): edit <= view, delete <= edit, export <= edit; a save is stored clamped.
- Effective rights (rule 2): per-action maximum over the user's own rights (or role) and the roles of
  their groups; flags and pipeline access combine by "any source allows"; a missing pipeline is allowed
  and a missing field is ``edit``. Where sources disagree, that path is a conflict. A user with no
  source at all has no rights, not even the ``edit`` a source gives its unlisted fields.

Everything here is pure: no I/O, no clock. The JSON shape is validated in ``auth.rights_schema``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Iterable, Mapping

LEVEL_CODES = ("D", "M", "G", "A")
D, M, G, A = range(4)
LEVEL = {code: i for i, code in enumerate(LEVEL_CODES)}

ENTITIES = ("leads", "contacts", "companies")
ENTITY_ACTIONS = ("add", "view", "edit", "delete", "export")
TASK_ACTIONS = ("edit", "delete")
STAGE_ACTIONS = ("view", "edit", "delete")
FIELD_ACCESS = ("hidden", "read", "edit")
HIDDEN, READ, EDIT = range(3)


def _clamp_chain(view: int, edit: int, delete: int, export: int | None = None) -> tuple[int, ...]:
    """Rule 1. edit is clamped first, so delete and export follow the clamped edit."""
    edit = min(edit, view)
    delete = min(delete, edit)
    if export is None:
        return view, edit, delete
    return view, edit, delete, min(export, edit)


@dataclass(frozen=True, slots=True)
class EntityRights:
    add: int = D
    view: int = D
    edit: int = D
    delete: int = D
    export: int = D

    def clamped(self) -> EntityRights:
        view, edit, delete, export = _clamp_chain(self.view, self.edit, self.delete, self.export)
        return EntityRights(A if self.add == A else D, view, edit, delete, export)

    def level(self, action: str) -> int:
        level: int = getattr(self, action)
        return level


@dataclass(frozen=True, slots=True)
class TaskRights:
    edit: int = D
    delete: int = D

    def clamped(self) -> TaskRights:
        return TaskRights(self.edit, min(self.delete, self.edit))


@dataclass(frozen=True, slots=True)
class StageRight:
    view: int = D
    edit: int = D
    delete: int = D

    def clamped(self) -> StageRight:
        return StageRight(*_clamp_chain(self.view, self.edit, self.delete))


def _frozen(mapping: Mapping[Any, Any]) -> Mapping[Any, Any]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True, slots=True)
class Rights:
    leads: EntityRights = EntityRights()
    contacts: EntityRights = EntityRights()
    companies: EntityRights = EntityRights()
    tasks: TaskRights = TaskRights()
    mail_access: bool = False
    files_access: bool = False
    # (pipeline_id, stage_id) -> StageRight
    stage_rights: Mapping[tuple[int, int], StageRight] = field(default_factory=lambda: _frozen({}))
    # pipeline_id -> allowed; a pipeline missing here is allowed
    pipeline_access: Mapping[int, bool] = field(default_factory=lambda: _frozen({}))
    # (entity, field_id) -> HIDDEN | READ | EDIT; a field missing here is ``field_default``
    field_rights: Mapping[tuple[str, int], int] = field(default_factory=lambda: _frozen({}))
    # EDIT in every rights object a role or user holds (SPEC: a missing field is edit); HIDDEN only in
    # the effective rights of a user with no source at all, who must not see a field no source lists.
    # Not part of the JSON shape, which cannot say it: ``Effective.to_json`` shows it beside.
    field_default: int = EDIT

    def entity(self, name: str) -> EntityRights:
        rights: EntityRights = getattr(self, name)
        return rights

    def pipeline_allowed(self, pipeline_id: int) -> bool:
        return self.pipeline_access.get(pipeline_id, True)

    def field_access(self, entity: str, field_id: int) -> int:
        return self.field_rights.get((entity, field_id), self.field_default)

    def clamped(self) -> Rights:
        return Rights(
            leads=self.leads.clamped(),
            contacts=self.contacts.clamped(),
            companies=self.companies.clamped(),
            tasks=self.tasks.clamped(),
            mail_access=self.mail_access,
            files_access=self.files_access,
            stage_rights=_frozen({k: v.clamped() for k, v in self.stage_rights.items()}),
            pipeline_access=self.pipeline_access,
            field_rights=self.field_rights,
            field_default=self.field_default,
        )

    def without(self, *, pipeline_id: int | None = None, stage_id: int | None = None,
                field: tuple[str, int] | None = None) -> Rights:
        """These rights with no entry naming that pipeline (its access and its stages' rights), stage
        or custom field: what a rights object keeps once the thing it names is deleted."""
        return replace(
            self,
            stage_rights=_frozen({(p, s): r for (p, s), r in self.stage_rights.items()
                                  if p != pipeline_id and s != stage_id}),
            pipeline_access=_frozen({p: ok for p, ok in self.pipeline_access.items() if p != pipeline_id}),
            field_rights=_frozen({key: acc for key, acc in self.field_rights.items() if key != field}),
        )

    # --- JSON shape (SPEC section 2), the same for users, roles and responses ---

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in ENTITIES:
            ent = self.entity(name)
            out[name] = {a: LEVEL_CODES[ent.level(a)] for a in ENTITY_ACTIONS}
        out["tasks"] = {a: LEVEL_CODES[getattr(self.tasks, a)] for a in TASK_ACTIONS}
        out["mail_access"] = self.mail_access
        out["files_access"] = self.files_access
        out["stage_rights"] = [
            {"pipeline_id": p, "stage_id": s, **{a: LEVEL_CODES[getattr(r, a)] for a in STAGE_ACTIONS}}
            for (p, s), r in sorted(self.stage_rights.items())
        ]
        out["pipeline_access"] = {str(p): ok for p, ok in sorted(self.pipeline_access.items())}
        out["field_rights"] = [
            {"entity": e, "field_id": f, "access": FIELD_ACCESS[acc]}
            for (e, f), acc in sorted(self.field_rights.items())
        ]
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Rights:
        """Build from an already-validated JSON object (see ``auth.rights_schema``).

        Missing keys mean "denied" (levels D, flags false); this is the deny-by-default rule.
        """

        def entity(raw: Mapping[str, str] | None) -> EntityRights:
            raw = raw or {}
            return EntityRights(*(LEVEL[raw.get(a, "D")] for a in ENTITY_ACTIONS))

        tasks = data.get("tasks") or {}
        return cls(
            leads=entity(data.get("leads")),
            contacts=entity(data.get("contacts")),
            companies=entity(data.get("companies")),
            tasks=TaskRights(*(LEVEL[tasks.get(a, "D")] for a in TASK_ACTIONS)),
            mail_access=bool(data.get("mail_access", False)),
            files_access=bool(data.get("files_access", False)),
            stage_rights=_frozen(
                {
                    (int(sr["pipeline_id"]), int(sr["stage_id"])): StageRight(
                        *(LEVEL[sr.get(a, "D")] for a in STAGE_ACTIONS)
                    )
                    for sr in data.get("stage_rights") or ()
                }
            ),
            pipeline_access=_frozen({int(k): bool(v) for k, v in (data.get("pipeline_access") or {}).items()}),
            field_rights=_frozen(
                {
                    (fr["entity"], int(fr["field_id"])): FIELD_ACCESS.index(fr["access"])
                    for fr in data.get("field_rights") or ()
                }
            ),
        )


NO_RIGHTS = Rights()
# The effective rights of a user with no source (rule 2): NO_RIGHTS is an empty rights object, which as a
# source still leaves every unlisted field editable; having no source at all shows no field.
NO_SOURCE = Rights(field_default=HIDDEN)


def full_rights() -> Rights:
    """What an administrator effectively holds (admins see and do everything)."""
    every = EntityRights(A, A, A, A, A)
    return Rights(every, every, every, TaskRights(A, A), True, True)


@dataclass(frozen=True, slots=True)
class Source:
    """One place a user's rights come from: own rights, their role, or a group's role.

    Names are what an admin reads (explain, conflicts); the ids are what stays true after a rename.
    """

    kind: str  # "own" | "role" | "group_role" | "admin" (only in what an administrator is shown)
    rights: Rights
    role_id: int | None = None
    group_id: int | None = None
    role_name: str | None = None
    group_name: str | None = None

    @property
    def label(self) -> str:
        if self.kind == "own":
            return "own rights"
        if self.kind == "admin":
            return "administrator"
        role = f"role {_named(self.role_name, self.role_id)}"
        if self.kind == "role":
            return role
        return f"{role} via group {_named(self.group_name, self.group_id)}"

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "role_id": self.role_id, "role": self.role_name, "group_id": self.group_id,
                "group": self.group_name, "label": self.label}


def _named(name: str | None, row_id: int | None) -> str:
    return f"{name} (#{row_id})" if name is not None else f"#{row_id}"


def _flat(rights: Rights, stage_keys: Iterable[tuple[int, int]], pipelines: Iterable[int],
          fields: Iterable[tuple[str, int]]) -> dict[str, Any]:
    """Every comparable path of a rights object, with missing entries filled by their defaults.

    A stage without its own entry in this source is decided by the source's lead levels, so that is
    the value compared against other sources.
    """
    flat: dict[str, Any] = {}
    for name in ENTITIES:
        ent = rights.entity(name)
        for a in ENTITY_ACTIONS:
            flat[f"{name}.{a}"] = ent.level(a)
    for a in TASK_ACTIONS:
        flat[f"tasks.{a}"] = getattr(rights.tasks, a)
    flat["mail_access"] = rights.mail_access
    flat["files_access"] = rights.files_access
    for p in pipelines:
        flat[f"pipeline_access.{p}"] = rights.pipeline_allowed(p)
    for p, s in stage_keys:
        sr = rights.stage_rights.get((p, s))
        for a in STAGE_ACTIONS:
            flat[f"stage_rights.{p}.{s}.{a}"] = getattr(sr, a) if sr else rights.leads.level(a)
    for e, f in fields:
        flat[f"field_rights.{e}.{f}"] = rights.field_access(e, f)
    return flat


def _show(path: str, value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if path.startswith("field_rights."):
        return FIELD_ACCESS[value]
    return LEVEL_CODES[value]


@dataclass(frozen=True, slots=True)
class Effective:
    rights: Rights
    sources: tuple[Source, ...]
    conflicts: tuple[dict[str, Any], ...]
    # The permission core's level tables for these sources (by is_admin), filled on first use and
    # shared by every Subject built from this object.
    tables: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False, hash=False)

    @property
    def field_default(self) -> str:
        """What a field no source lists is: "edit", or "hidden" for a user with no source. The rights
        shape cannot say it, so responses show it beside the rights object."""
        return FIELD_ACCESS[self.rights.field_default]

    def to_json(self) -> dict[str, Any]:
        return {
            "rights": self.rights.to_json(),
            "field_default": self.field_default,
            "sources": [s.to_json() for s in self.sources],
            "conflicts": list(self.conflicts),
        }


def effective(sources: Iterable[Source]) -> Effective:
    """Rule 2: the per-action maximum over all sources, with every disagreement listed.

    For leads this merged object is a summary: the permission core decides a lead source by source
    (pipeline access first, then stage right or lead level) and takes the most permissive answer.
    """
    sources = tuple(sources)
    if not sources:
        return Effective(NO_SOURCE, (), ())
    stage_keys = sorted({k for s in sources for k in s.rights.stage_rights})
    pipelines = sorted({p for s in sources for p in s.rights.pipeline_access})
    fields = sorted({k for s in sources for k in s.rights.field_rights})
    flats = [_flat(s.rights, stage_keys, pipelines, fields) for s in sources]
    merged = {path: max(f[path] for f in flats) for path in flats[0]}
    conflicts = []
    if len(sources) > 1:
        for path, best in merged.items():
            values = [f[path] for f in flats]
            if len(set(values)) > 1:
                conflicts.append({
                    "path": path,
                    "effective": _show(path, best),
                    "values": [{"source": s.label, "value": _show(path, v)} for s, v in zip(sources, values)],
                })

    def ent(name: str) -> EntityRights:
        return EntityRights(*(merged[f"{name}.{a}"] for a in ENTITY_ACTIONS))

    rights = Rights(
        leads=ent("leads"),
        contacts=ent("contacts"),
        companies=ent("companies"),
        tasks=TaskRights(*(merged[f"tasks.{a}"] for a in TASK_ACTIONS)),
        mail_access=merged["mail_access"],
        files_access=merged["files_access"],
        stage_rights=_frozen({
            (p, s): StageRight(*(merged[f"stage_rights.{p}.{s}.{a}"] for a in STAGE_ACTIONS))
            for p, s in stage_keys
        }),
        pipeline_access=_frozen({p: merged[f"pipeline_access.{p}"] for p in pipelines}),
        field_rights=_frozen({(e, f): merged[f"field_rights.{e}.{f}"] for e, f in fields}),
        field_default=max(s.rights.field_default for s in sources),
    )
    return Effective(rights, sources, tuple(conflicts))


def admin_effective() -> Effective:
    """What an administrator is shown as their effective rights: everything, from being an administrator.
    Their role, own rights and groups' roles stay stored but decide nothing while they are one."""
    full = full_rights()
    return Effective(full, (Source("admin", full),), ())
