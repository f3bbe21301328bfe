"""The websocket hub with real clients (the `websockets` library) against the real server."""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import json
import random
import socket
import subprocess
import sys

import pytest
import websockets

from conftest import FAST_HASHING

from inbox.actions import chats
from inbox.actions.access import load_subject
from inbox.actions.context import Actor
from inbox.keys import HUB
from inbox.store import events as event_rows

N_EVENTS = 5000
AGENT = {"leads": {"add": "A", "view": "M", "edit": "M", "delete": "M", "export": "D"},
         "contacts": {"add": "A", "view": "M", "edit": "M"}, "files_access": True}
TEAM = {"leads": {"add": "A", "view": "G", "edit": "G"}, "contacts": {"add": "A", "view": "G"}, "files_access": False}


@pytest.fixture
def config_overrides() -> dict:
    return FAST_HASHING


OPEN: list = []


@pytest.fixture(autouse=True)
async def close_clients():
    yield
    while OPEN:
        ws = OPEN.pop()
        ws.transport.abort()  # no closing handshake to wait for: the server copes with a dropped peer
        await ws.wait_closed()


def ws_url(api) -> str:
    return str(api.client.make_url("/api/v1/ws")).replace("http://", "ws://")


class Client:
    def __init__(self, ws, ready: dict) -> None:
        self.ws = ws
        self.ready = ready
        self.last_event_id = ready.get("last_event_id")

    async def frame(self, timeout: float = 3.0) -> dict:
        frame = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
        if frame.get("type") == "event":
            self.last_event_id = frame["id"]
        return frame

    async def until(self, predicate, timeout: float = 3.0) -> list[dict]:
        """Frames up to and including the first that satisfies ``predicate``."""
        seen = []
        while True:
            frame = await self.frame(timeout)
            seen.append(frame)
            if predicate(frame):
                return seen


async def connect(api, who, last_event_id=None, **kw) -> Client:
    ws = await websockets.connect(ws_url(api), **kw)
    OPEN.append(ws)
    token = who if isinstance(who, str) else who.token
    await ws.send(json.dumps({"type": "auth", "token": token, "last_event_id": last_event_id}))
    frames = []
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), 3))
        frames.append(frame)
        if frame["type"] == "ready":
            return Client(ws, frame)


async def setup(api, admin):
    async def created(path, body) -> dict:
        r = await api.post(path, body, who=admin)
        assert r.status == 201, (path, r.status, r.body)
        return r.body

    pipeline = await created("/api/v1/pipelines", {"name": "Sales", "stages": ["In", "Won"]})
    stages = [s["id"] for s in pipeline["stages"]]
    field = (await created("/api/v1/leads/custom_fields", {"name": "Budget", "type": "number"}))["id"]
    agent = (await created("/api/v1/roles", {"name": "Agent", "rights": AGENT}))["id"]
    team = (await created("/api/v1/roles", {"name": "Team", "rights": TEAM}))["id"]
    maria = await api.add_user(admin, "Maria", role_id=agent)
    tom = await api.add_user(admin, "Tom", role_id=agent)
    gina = await api.add_user(admin, "Gina", role_id=team)
    await created("/api/v1/groups", {"name": "Team", "user_ids": [tom.user_id, gina.user_id]})
    return stages, field, maria, tom, gina


async def make_lead(api, admin, owner, stage, field, **extra) -> int:
    r = await api.post("/api/v1/leads", {"name": f"lead of {owner.name}", "stage_id": stage,
                                         "responsible_user_id": owner.user_id,
                                         "custom_fields": {str(field): 42}, **extra}, who=admin)
    assert r.status == 201, r.body
    return r.body["id"]


async def sentinel(api, admin, lead_id, *users) -> None:
    """Subscribing a user notifies them: the last frame each of them must see."""
    for user in users:
        await api.post(f"/api/v1/leads/{lead_id}/subscribers", {"user_id": user.user_id}, who=admin)


def is_sentinel(frame) -> bool:
    return frame.get("event") == "notification.created" and frame["data"]["notification"]["type"] == "lead.subscribed"


async def test_each_agent_receives_exactly_the_events_they_may_see(api, admin):
    stages, field, maria, tom, gina = await setup(api, admin)
    clients = {name: await connect(api, who) for name, who in
               (("maria", maria), ("tom", tom), ("gina", gina), ("admin", admin))}
    leads = {"maria": await make_lead(api, admin, maria, stages[0], field),
             "tom": await make_lead(api, admin, tom, stages[0], field),
             "gina": await make_lead(api, admin, gina, stages[1], field)}
    await api.patch(f"/api/v1/leads/{leads['tom']}", {"price": 10}, who=admin)
    end = await make_lead(api, admin, admin, stages[0], field)
    await sentinel(api, admin, end, maria, tom, gina)
    expected = {  # (event, lead) pairs each one may see: M its own, G its team's
        "maria": [("lead.created", leads["maria"])],
        "tom": [("lead.created", leads["tom"]), ("lead.updated", leads["tom"])],
        "gina": [("lead.created", leads["tom"]), ("lead.created", leads["gina"]), ("lead.updated", leads["tom"])],
    }
    for name, want in expected.items():
        frames = await clients[name].until(is_sentinel)
        got = [(f["event"], f["data"]["lead"]["id"]) for f in frames if f.get("event", "").startswith("lead.")]
        assert got == want, name
        ids = [f["id"] for f in frames if f["type"] == "event"]
        assert ids == sorted(set(ids))
    admin_frames = await clients["admin"].until(lambda f: f.get("event") == "lead.created"
                                                and f["data"]["lead"]["id"] == end)
    assert len([f for f in admin_frames if f.get("event") == "lead.created"]) == 4
    for client in clients.values():
        await client.ws.close()


async def test_fields_media_and_contacts_are_redacted_in_events(api, admin):
    stages, field, maria, tom, gina = await setup(api, admin)
    hidden = await api.post("/api/v1/roles", {"name": "Hidden budget", "rights": {
        **TEAM, "field_rights": [{"entity": "leads", "field_id": field, "access": "hidden"}]}}, who=admin)
    await api.patch(f"/api/v1/users/{gina.user_id}", {"role_id": hidden.body["id"]}, who=admin)
    contact = (await api.post("/api/v1/contacts", {"name": "Jane", "emails": ["jane@x.io"],
                                                   "responsible_user_id": maria.user_id}, who=admin)).body["id"]
    g, t = await connect(api, gina), await connect(api, tom)
    lead_id = await make_lead(api, admin, tom, stages[0], field, contact_ids=[contact])
    frame_g = (await g.until(lambda f: f.get("event") == "lead.created"))[-1]
    frame_t = (await t.until(lambda f: f.get("event") == "lead.created"))[-1]
    assert frame_t["data"]["lead"]["custom_fields"] == {str(field): 42}
    assert frame_g["data"]["lead"]["custom_fields"] == {}          # hidden field: absent
    assert frame_g["data"]["lead"]["contacts"] == [{"name": "Jane", "avatar": None, "restricted": True}]
    assert "jane@x.io" not in json.dumps(frame_g)
    # A message with a file of tom's: tom has files_access, gina has not (rule 9).
    await api.db.write(lambda tx: tx.execute(
        "INSERT INTO media (id, sha256, type, name, size, created_by, created_at)"
        " VALUES (7, 'ab', 'image/png', 'plan.png', 99, ?, 0)", (tom.user_id,)))
    chat = (await api.post("/api/v1/chats", {"contact_id": contact, "lead_id": lead_id}, who=tom)).body["id"]
    r = await api.post(f"/api/v1/chats/{chat}/messages", {"text": "see file", "attachments": [7]}, who=tom)
    assert r.status == 201
    msg_t = (await t.until(lambda f: f.get("event") == "message.created"))[-1]
    msg_g = (await g.until(lambda f: f.get("event") == "message.created"))[-1]
    assert msg_t["data"]["message"]["attachments"] == [{"media_id": 7, "type": "image/png", "name": "plan.png",
                                                        "size": 99}]
    assert msg_g["data"]["message"]["attachments"] == [{"type": "image/png", "hidden": True}]
    assert "plan.png" not in json.dumps(msg_g)
    listed = await api.get(f"/api/v1/chats/{chat}/messages", who=gina)
    assert listed.body["items"][0]["attachments"] == [{"type": "image/png", "hidden": True}]
    # Without files access one cannot attach either.
    assert (await api.post(f"/api/v1/chats/{chat}/messages", {"attachments": [7]}, who=gina)).status == 403


async def test_subscriber_without_stage_access_gets_chat_messages_but_no_custom_fields(api, admin):
    stages, field, maria, tom, gina = await setup(api, admin)
    contact = (await api.post("/api/v1/contacts", {"name": "Sam", "responsible_user_id": tom.user_id},
                              who=admin)).body["id"]
    lead_id = await make_lead(api, admin, tom, stages[0], field, contact_ids=[contact])
    chat = (await api.post("/api/v1/chats", {"contact_id": contact, "lead_id": lead_id}, who=tom)).body["id"]
    assert (await api.get(f"/api/v1/chats/{chat}/messages", who=maria)).status == 404
    m = await connect(api, maria)
    await api.post(f"/api/v1/leads/{lead_id}/subscribers", {"user_id": maria.user_id}, who=admin)
    await api.post(f"/api/v1/chats/{chat}/messages", {"text": "hello from tom"}, who=tom)
    frame = (await m.until(lambda f: f.get("event") == "message.created"))[-1]
    assert frame["data"]["message"]["text"] == "hello from tom"
    assert frame["data"]["contact"] == {"name": "Sam", "avatar": None, "restricted": True}
    await api.patch(f"/api/v1/leads/{lead_id}", {"price": 5}, who=admin)
    update = (await m.until(lambda f: f.get("event") == "lead.updated"))[-1]
    assert update["data"]["lead"]["access"] == "subscription" and "custom_fields" not in update["data"]["lead"]
    # She may read and write the chat over REST too.
    assert (await api.get(f"/api/v1/chats/{chat}/messages", who=maria)).status == 200
    assert (await api.post(f"/api/v1/chats/{chat}/messages", {"text": "hi"}, who=maria)).status == 201
    listed = await api.get("/api/v1/chats", who=maria)
    assert [c["id"] for c in listed.body["items"]] == [chat]
    last = listed_msgs = await api.get(f"/api/v1/chats/{chat}/messages", who=maria)
    assert (await api.post(f"/api/v1/chats/{chat}/read", {"message_id": last.body["items"][0]["id"]},
                           who=maria)).status == 204
    assert (await api.get("/api/v1/chats", who=maria)).body["items"][0]["last_read_id"] == \
        listed_msgs.body["items"][0]["id"]


async def test_rights_changed_while_connected_apply_to_the_next_event(api, admin):
    stages, field, maria, tom, gina = await setup(api, admin)
    m = await connect(api, maria)
    first = await make_lead(api, admin, tom, stages[0], field)
    wide = await api.post("/api/v1/roles", {"name": "Wide", "rights": {"leads": {"view": "A"}}}, who=admin)
    await api.patch(f"/api/v1/users/{maria.user_id}", {"role_id": wide.body["id"]}, who=admin)
    second = await make_lead(api, admin, tom, stages[0], field)
    frames = await m.until(lambda f: f.get("event") == "lead.created")
    assert [f["data"]["lead"]["id"] for f in frames if f.get("event") == "lead.created"] == [second]
    assert any(f["type"] == "access_changed" for f in frames)
    assert first not in [f.get("data", {}).get("lead", {}).get("id") for f in frames]


async def test_a_new_team_mate_widens_g_from_the_next_event(api, admin):
    """Creating a user inside a group changes what G covers for everyone in it: the team lead's open
    socket must show the newcomer's leads at once, as a GET would."""
    stages, field, maria, tom, gina = await setup(api, admin)
    g = await connect(api, gina)
    team = (await api.get("/api/v1/groups", who=admin)).body
    team_id = next(t["id"] for t in (team["items"] if isinstance(team, dict) else team) if t["name"] == "Team")
    nina = await api.add_user(admin, "Nina", group_ids=[team_id])
    lead = await make_lead(api, admin, nina, stages[0], field)
    frames = await g.until(lambda f: f.get("event") == "lead.created")
    assert frames[-1]["data"]["lead"]["id"] == lead


async def test_losing_access_sends_access_revoked(api, admin):
    stages, field, maria, tom, gina = await setup(api, admin)
    lead_id = await make_lead(api, admin, maria, stages[0], field)
    m = await connect(api, maria)
    await api.patch(f"/api/v1/leads/{lead_id}", {"responsible_user_id": tom.user_id}, who=admin)
    frames = await m.until(lambda f: f["type"] == "access_revoked")
    assert frames[-1]["lead_id"] == lead_id
    assert not any(f.get("event") == "lead.updated" for f in frames)
    # Unsubscribing likewise.
    await api.post(f"/api/v1/leads/{lead_id}/subscribers", {"user_id": maria.user_id}, who=admin)
    await api.delete(f"/api/v1/leads/{lead_id}/subscribers/{maria.user_id}", who=admin)
    frames = await m.until(lambda f: f["type"] == "access_revoked")
    assert frames[-1]["lead_id"] == lead_id
    # Checklist 22: a message for a chat she can no longer reach is refused, and nothing more arrives.
    contact = (await api.post("/api/v1/contacts", {"name": "Q", "responsible_user_id": tom.user_id},
                              who=admin)).body["id"]
    chat = (await api.post("/api/v1/chats", {"contact_id": contact, "lead_id": lead_id}, who=admin)).body["id"]
    assert (await api.post(f"/api/v1/chats/{chat}/messages", {"text": "x"}, who=maria)).status == 404
    await api.post(f"/api/v1/chats/{chat}/messages", {"text": "private"}, who=tom)
    await sentinel(api, admin, await make_lead(api, admin, admin, stages[0], field), maria)
    frames = await m.until(is_sentinel)
    assert not any(f.get("event") == "message.created" for f in frames)


@pytest.mark.parametrize("how", ["logout", "disable", "admin_ends_sessions"])
async def test_ending_a_session_closes_its_socket_within_a_second(api, admin, how):
    stages, field, maria, tom, gina = await setup(api, admin)
    m = await connect(api, maria)
    if how == "logout":
        r = await api.post("/api/v1/auth/logout", who=maria)
        assert r.status == 204, r.body
    elif how == "disable":
        r = await api.patch(f"/api/v1/users/{maria.user_id}", {"is_active": False}, who=admin)
        assert r.status == 200, r.body
    else:
        r = await api.delete(f"/api/v1/users/{maria.user_id}/sessions", who=admin)
        assert r.status == 200, r.body
    with pytest.raises(websockets.ConnectionClosed) as closed:
        while True:
            await asyncio.wait_for(m.ws.recv(), 1.0)
    assert closed.value.rcvd.code == 4001


async def test_handshake_refusals(api, admin):
    with pytest.raises(websockets.InvalidStatus) as bad_origin:
        await websockets.connect(ws_url(api), origin="https://evil.example")
    assert bad_origin.value.response.status_code == 403
    for first, code in (("not json", 4000), (json.dumps({"type": "hello"}), 4000),
                        (json.dumps({"type": "auth", "token": "nope"}), 4001),
                        (json.dumps({"type": "auth", "token": admin.token, "last_event_id": "x"}), 4000)):
        async with websockets.connect(ws_url(api)) as ws:
            await ws.send(first)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 3)
            assert closed.value.rcvd.code == code, first


async def test_resume_after_random_drops_gets_every_permitted_event_once_in_order(api, admin):
    """5,000 messages in two conversations, one visible to maria; she drops and resumes at random."""
    stages, field, maria, tom, gina = await setup(api, admin)
    mine_contact = (await api.post("/api/v1/contacts", {"name": "A", "responsible_user_id": maria.user_id},
                                   who=admin)).body["id"]
    other_contact = (await api.post("/api/v1/contacts", {"name": "B", "responsible_user_id": tom.user_id},
                                    who=admin)).body["id"]
    mine = (await api.post("/api/v1/chats", {"contact_id": mine_contact}, who=admin)).body["id"]
    other = (await api.post("/api/v1/chats", {"contact_id": other_contact}, who=admin)).body["id"]
    rng = random.Random(7)
    plan = [rng.random() < 0.5 for _ in range(N_EVENTS)]
    subject = await load_subject(api.db, admin.user_id, is_admin=True)
    client = await connect(api, maria)
    start = client.last_event_id
    expected: list[int] = []

    async def produce() -> None:
        for i in range(0, len(plan), 100):
            ids = await asyncio.gather(*(chats.do_reply(api.db, Actor(admin.user_id, "test", api.clock.now), subject,
                                                        mine if to_mine else other, f"m{i + j}", [])
                                         for j, to_mine in enumerate(plan[i:i + 100])))
            expected.extend(m["id"] for m, to_mine in zip(ids, plan[i:i + 100]) if to_mine)
            await asyncio.sleep(0)

    got: list[int] = []
    event_ids: list[int] = []
    producer = asyncio.create_task(produce())
    cursor = start
    while True:
        budget = rng.randint(1, 400)
        client = await connect(api, maria, last_event_id=cursor)
        try:
            while budget:
                frame = await client.frame(timeout=2.0)
                if frame["type"] == "event":
                    got.append(frame["data"]["message"]["id"])
                    event_ids.append(frame["id"])
                    cursor = frame["id"]
                    budget -= 1
        except TimeoutError:
            if producer.done():
                break
        finally:
            # Drop the connection the way a network does, mid-stream, without a closing handshake.
            client.ws.transport.abort()
    await producer
    assert len(expected) == plan.count(True)
    assert got == expected                      # every permitted message, once, in order
    assert event_ids == sorted(set(event_ids))  # and the cursor only moves forward


async def test_a_slow_consumer_is_cut_off_without_slowing_others(api, admin):
    stages, field, maria, tom, gina = await setup(api, admin)
    contact = (await api.post("/api/v1/contacts", {"name": "C", "responsible_user_id": maria.user_id},
                              who=admin)).body["id"]
    chat = (await api.post("/api/v1/chats", {"contact_id": contact}, who=admin)).body["id"]
    api.app[HUB].buffer_bytes = 256 * 1024
    # The slow client: a tiny receive buffer (no autotuning) and a library that stops reading after
    # one queued frame, so TCP pushes back on the server almost at once.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    sock.connect((api.client.host, api.client.port))
    sock.setblocking(False)
    slow = await connect(api, maria, max_queue=1, sock=sock)
    fast = await connect(api, admin)
    subject = await load_subject(api.db, admin.user_id, is_admin=True)
    text = "x" * 20_000

    async def read_fast() -> int:
        received = 0
        while received < 600:
            frame = await fast.frame(timeout=5)
            if frame.get("event") == "message.created":
                received += 1
        return received

    reader = asyncio.create_task(read_fast())
    for i in range(0, 600, 50):
        await asyncio.gather(*(chats.do_reply(api.db, Actor(admin.user_id, "t", api.clock.now), subject, chat,
                                              f"{i + j} {text}", []) for j in range(50)))
    assert await reader == 600  # the fast reader got everything although the slow one never read
    with pytest.raises(websockets.ConnectionClosed) as closed:
        while True:
            await asyncio.wait_for(slow.ws.recv(), 5)
    assert closed.value.rcvd.code == 4008
    # It resumes by cursor: reconnecting after the last event it saw brings the rest.
    again = await connect(api, maria, last_event_id=slow.last_event_id)
    rest = []
    while len(rest) + 0 < 600:
        frame = await again.frame(timeout=5)
        if frame.get("event") == "message.created":
            rest.append(int(frame["data"]["message"]["text"].split()[0]))
            if rest[-1] == 599:
                break
    assert rest == list(range(rest[0], 600))


async def test_resume_from_before_the_retained_log_gets_resync(api, admin):
    stages, field, maria, tom, gina = await setup(api, admin)
    await make_lead(api, admin, maria, stages[0], field)
    await api.db.write(lambda tx: tx.execute("DELETE FROM events"))
    await make_lead(api, admin, maria, stages[0], field)
    client = await connect(api, maria, last_event_id=1)
    assert client.ready["type"] == "ready"
    # resync came before ready
    ws = await websockets.connect(ws_url(api))
    OPEN.append(ws)
    await ws.send(json.dumps({"type": "auth", "token": maria.token, "last_event_id": 1}))
    assert json.loads(await asyncio.wait_for(ws.recv(), 3))["type"] == "resync"
    await ws.close()


async def test_listen_command_prints_live_events(api, admin):
    stages, field, maria, tom, gina = await setup(api, admin)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "inbox", "listen", "--url", ws_url(api), "--token", maria.token,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        ready = json.loads(await asyncio.wait_for(proc.stdout.readline(), 10))
        assert ready["type"] == "ready" and ready["user_id"] == maria.user_id
        lead_id = await make_lead(api, admin, maria, stages[0], field)
        line = json.loads(await asyncio.wait_for(proc.stdout.readline(), 5))
        assert line["event"] == "lead.created" and line["data"]["lead"]["id"] == lead_id
    finally:
        proc.terminate()
        await proc.wait()


@pytest.mark.parametrize("config_overrides", [{**FAST_HASHING,
                                               "trusted_proxies": (ipaddress.ip_network("127.0.0.0/8"),)}])
async def test_ip_blocking_refuses_and_closes_websockets(api, admin):
    """Issue 4 / SPEC 3: with API blocking on, sockets from outside the whitelist are refused at the
    handshake, and open ones from a newly excluded address are closed."""
    office = {"X-Forwarded-For": "203.0.113.5"}
    outside = await connect(api, admin, additional_headers={"X-Forwarded-For": "192.0.2.9"})
    inside = await connect(api, admin, additional_headers=office)
    r = await api.patch("/api/v1/account/security", {"ip_whitelist": [{"cidr": "203.0.113.0/24"}],
                                                     "block_untrusted_api": True}, who=admin, headers=office)
    assert r.status == 200
    with pytest.raises(websockets.ConnectionClosed) as closed:
        while True:
            await asyncio.wait_for(outside.ws.recv(), 2)
    assert closed.value.rcvd.code == 4003
    async with websockets.connect(ws_url(api), additional_headers={"X-Forwarded-For": "192.0.2.9"}) as ws:
        await ws.send(json.dumps({"type": "auth", "token": admin.token}))
        with pytest.raises(websockets.ConnectionClosed) as refused:
            await asyncio.wait_for(ws.recv(), 2)
        assert refused.value.rcvd.code == 4003
    await api.post("/api/v1/pipelines", {"name": "P", "stages": ["S"]}, who=admin, headers=office)
    # The socket inside the list stays open and keeps receiving.
    contact = (await api.post("/api/v1/contacts", {"name": "Z"}, who=admin, headers=office)).body["id"]
    frame = (await inside.until(lambda f: f.get("event") == "contact.created"))[-1]
    assert frame["data"]["contact"]["id"] == contact


async def test_old_events_are_pruned_and_a_stale_cursor_gets_resync(api, admin):
    stages, field, maria, tom, gina = await setup(api, admin)
    await make_lead(api, admin, maria, stages[0], field)
    # Everything up to now falls out of the window (the hub runs this hourly with its retention).
    removed = await api.db.write(lambda tx: event_rows.prune(tx, api.clock.now + 1))
    assert removed > 0
    ws = await websockets.connect(ws_url(api))
    OPEN.append(ws)
    await ws.send(json.dumps({"type": "auth", "token": maria.token, "last_event_id": 0}))
    assert json.loads(await asyncio.wait_for(ws.recv(), 3))["type"] == "resync"


async def test_tasks_reach_exactly_who_may_see_them_and_a_reassigned_task_is_withdrawn(api, admin):
    """Rule 10 live: a task reaches its responsible user, users whose task level covers it, and users
    who can view the record it is attached to; nobody else. Reassigning it away tells the old
    reader it is hidden, without its text; a resumed socket gets the same as a live one."""
    stages, field, maria, tom, gina = await setup(api, admin)   # task rights: none beyond their own
    clients = {name: await connect(api, who) for name, who in (("maria", maria), ("tom", tom), ("gina", gina))}
    start = clients["maria"].ready["last_event_id"]
    toms_lead = await make_lead(api, admin, tom, stages[0], field)
    own = (await api.post("/api/v1/tasks", {"text": "call maria's client", "responsible_user_id": maria.user_id},
                          who=admin)).body["id"]
    on_lead = (await api.post("/api/v1/tasks", {"text": "quote for tom's lead", "responsible_user_id": admin.user_id,
                                                "entity_type": "leads", "entity_id": toms_lead}, who=admin)).body["id"]
    assert (await api.patch(f"/api/v1/tasks/{own}", {"responsible_user_id": tom.user_id}, who=admin)).status == 200
    assert (await api.delete(f"/api/v1/tasks/{on_lead}", who=admin)).status == 204
    end = await make_lead(api, admin, admin, stages[0], field)
    await sentinel(api, admin, end, maria, tom, gina)

    def tasks_of(frames):
        out = []
        for f in frames:
            if f.get("event", "").startswith("task."):
                d = f["data"]
                out.append((f["event"], d["task"]["id"] if "task" in d else d["task_id"], d.get("hidden", False)))
        return out

    expected = {
        "maria": [("task.created", own, False), ("task.updated", own, True)],
        "tom": [("task.created", on_lead, False), ("task.updated", own, False), ("task.deleted", on_lead, False)],
        "gina": [("task.created", on_lead, False), ("task.deleted", on_lead, False)],  # G: tom's team
    }
    for name, want in expected.items():
        frames = await clients[name].until(is_sentinel)
        assert tasks_of(frames) == want, name
        if name == "maria":
            hidden = [f for f in frames if f.get("event") == "task.updated"][0]
            assert hidden["data"] == {"task_id": own, "hidden": True}   # not a word of the task itself
        if name == "tom":
            shown = [f for f in frames if f.get("event") == "task.updated"][0]["data"]["task"]
            assert shown["text"] == "call maria's client" and shown["responsible_user_id"] == tom.user_id
    resumed = await connect(api, maria, last_event_id=start)
    assert tasks_of(await resumed.until(is_sentinel)) == expected["maria"]


async def test_a_closed_websocket_is_freed_without_the_cyclic_collector(api, admin):
    """A websocket that ends must not leave its server objects in a reference cycle: only a full
    collection frees those, and a full collection stops the loop for every open socket (35 ms with
    1,000 in the fan-out bench). aiohttp keeps the heartbeat callback on the connection's protocol;
    the handler drops it."""
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for _ in range(5):
            client = await connect(api, admin)
            await client.ws.close()
        await asyncio.sleep(0.1)
        gc.collect()
        kinds = {type(o).__qualname__ for o in gc.garbage}
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert not kinds & {"RequestHandler", "WebSocketResponse", "Request", "Connection"}, kinds
