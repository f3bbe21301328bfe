"""A demo workspace: a few users, groups, roles and CRM records, with printed logins."""

from __future__ import annotations

from auth.passwords import Hasher

from .actions.access import load_subject
from .actions.catalog import do_create_field, do_create_pipeline
from .actions.context import Actor
from .actions.people import do_create_group, do_create_role, do_create_user
from .actions.records import do_create_lead, do_create_party, do_create_task
from .config import Config
from .store.catalog import stages_of
from .store.db import Database
from .workspace import init_workspace, workspace_exists

ADMIN = ("admin@demo.inbox", "Ada Admin", "demo-admin-pass")
USERS = [
    # email, name, password, role
    ("maria@demo.inbox", "Maria Sales", "demo-maria-pass", "Sales agent"),
    ("tom@demo.inbox", "Tom Sales", "demo-tom-pass", "Sales agent"),
    ("lena@demo.inbox", "Lena Support", "demo-lena-pass", "Team lead"),
]
ROLES = {
    "Sales agent": {
        "leads": {"add": "A", "view": "M", "edit": "M", "delete": "D", "export": "D"},
        "contacts": {"add": "A", "view": "G", "edit": "M", "delete": "D", "export": "D"},
        "companies": {"add": "A", "view": "G", "edit": "M", "delete": "D", "export": "D"},
        "tasks": {"edit": "M", "delete": "M"}, "mail_access": True, "files_access": True,
    },
    "Team lead": {
        "leads": {"add": "A", "view": "G", "edit": "G", "delete": "G", "export": "G"},
        "contacts": {"add": "A", "view": "A", "edit": "G", "delete": "D", "export": "G"},
        "companies": {"add": "A", "view": "A", "edit": "G", "delete": "D", "export": "G"},
        "tasks": {"edit": "G", "delete": "G"}, "mail_access": True, "files_access": True,
    },
}


def logins() -> list[tuple[str, str, str]]:
    return [(ADMIN[0], ADMIN[2], "administrator")] + [(e, p, r) for e, _, p, r in USERS]


async def load_demo(db: Database, hasher: Hasher, config: Config) -> bool:
    """Create the demo workspace unless one exists. Returns True when it was created now."""
    if await workspace_exists(db):
        return False
    admin_id = await init_workspace(db, hasher, config, name="Demo workspace", email=ADMIN[0],
                                    admin_name=ADMIN[1], password=ADMIN[2])
    actor = Actor(admin_id, "cli", config.clock())
    role_ids = {name: await do_create_role(db, actor, name=name, rights=rights) for name, rights in ROLES.items()}
    user_ids = []
    for email, name, password, role in USERS:
        user_ids.append(await do_create_user(db, actor, email=email, name=name, role_id=role_ids[role],
                                             password_hash=await hasher.hash(password)))
    await do_create_group(db, actor, name="Sales team", role_id=None, user_ids=user_ids[:2] + [user_ids[2]])
    await do_create_group(db, actor, name="Support", role_id=None, user_ids=[user_ids[2]])
    await _records(db, actor, user_ids)
    return True


async def _records(db: Database, actor: Actor, user_ids: list[int]) -> None:
    """CRM records, written through the same actions as the API so they are checked and logged."""
    admin = await load_subject(db, actor.user_id, is_admin=True)
    pipeline = await do_create_pipeline(db, actor, name="Sales", sort=1,
                                         stages=["Incoming", "Qualified", "Proposal", "Won", "Lost"])
    stages = [s["id"] for s in await stages_of(db, [pipeline])]
    budget = await do_create_field(db, actor, "leads", {"name": "Budget", "type": "number"})
    await do_create_field(db, actor, "leads", {"name": "Source", "type": "select", "options": ["web", "call", "chat"]})
    company = await do_create_party(db, actor, admin, "companies", {"name": "Acme Ltd", "responsible_user_id": user_ids[2]})
    contacts = [await do_create_party(db, actor, admin, "contacts", {
        "name": name, "emails": [f"{name.split()[0].lower()}@example.com"], "company_id": company,
        "responsible_user_id": owner}) for name, owner in [("Jane Buyer", user_ids[0]), ("Sam Client", user_ids[1])]]
    for i, owner in enumerate(user_ids * 3):
        lead = await do_create_lead(db, actor, admin, {
            "name": f"Deal #{i + 1}", "price": 1000 * (i + 1), "stage_id": stages[i % 3], "responsible_user_id": owner,
            "company_id": company, "contact_ids": [contacts[i % 2]], "custom_fields": {str(budget): 500 * (i + 1)}})
        await do_create_task(db, actor, admin, {"text": f"Call about deal #{i + 1}", "due_at": actor.now + 86400,
                                                "responsible_user_id": owner, "entity_type": "leads",
                                                "entity_id": lead})
