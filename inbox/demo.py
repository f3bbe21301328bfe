"""A demo workspace: a few users, groups, roles and CRM records, with printed logins."""

from __future__ import annotations

from auth.passwords import Hasher

from .actions.context import Actor
from .actions.people import do_create_group, do_create_role, do_create_user
from .config import Config
from .store.db import Database, Tx
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
    now = config.clock()

    async def records(tx: Tx) -> None:
        pid = await tx.insert("INSERT INTO pipelines (name, sort, created_at) VALUES ('Sales', 1, ?)", (now,))
        stages = [await tx.insert("INSERT INTO stages (pipeline_id, name, sort) VALUES (?, ?, ?)", (pid, n, i))
                  for i, n in enumerate(["Incoming", "Qualified", "Proposal", "Won", "Lost"])]
        company = await tx.insert("INSERT INTO companies (name, responsible_user_id, created_at, updated_at)"
                                  " VALUES ('Acme Ltd', ?, ?, ?)", (user_ids[2], now, now))
        for i, (name, owner) in enumerate([("Jane Buyer", user_ids[0]), ("Sam Client", user_ids[1])]):
            await tx.insert("INSERT INTO contacts (name, emails, company_id, responsible_user_id, created_at,"
                            " updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                            (name, f'["{name.split()[0].lower()}@example.com"]', company, owner, now, now))
        for i, owner in enumerate(user_ids * 3):
            lead = await tx.insert(
                "INSERT INTO leads (name, price, pipeline_id, stage_id, responsible_user_id, company_id,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (f"Deal #{i + 1}", 1000 * (i + 1), pid, stages[i % 3], owner, company, now, now))
            await tx.insert("INSERT INTO tasks (text, due_at, responsible_user_id, entity_type, entity_id,"
                            " created_at, updated_at) VALUES (?, ?, ?, 'leads', ?, ?, ?)",
                            (f"Call about deal #{i + 1}", now + 86400, owner, lead, now, now))

    await db.write(records)
    return True
