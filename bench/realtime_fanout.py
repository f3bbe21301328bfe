"""Benchmark: real-time fan-out of chat messages to 1,000 agents with mixed rights, next to a raw
aiohttp broadcast (no permission work) measured the same way in the same run.

What runs, each in its own process:
- the server (``python -m inbox serve``) on a copy of a cached workspace: 1,000 agents in groups
  of 10 with six roles (contacts and leads visible M, G or A, files access on or off), a contact and
  a lead per agent, conversations on them, and a few conversations on leads in a "Shared queue"
  stage that every role may view (a stage right), so those messages reach every agent;
- the load generators: ``--clients`` processes (default 2) holding the agents' websockets between
  them. They speak the websocket protocol on a bare ``asyncio.Protocol`` (server frames are
  unmasked, so a frame costs a few microseconds to parse, kernel included);
- the publisher (this process): it logs the agents in, posts agent replies over HTTP
  (``POST /api/v1/chats/{id}/messages``) and tallies what the clients report;
- then the raw baseline (this file with ``--_raw-server``): an aiohttp app, same websocket settings
  and event loop as the server, that takes ``POST /broadcast {to, text}`` and sends one frame of
  the same shape to each listed socket with ``ws.send_str``: no database, no rights, no redaction.
  The same client processes and the same message sequence (same recipients per message) measure it.

With two or more usable cores the server is pinned to the first one and everything else to the
rest, so the server has a core to itself; the report gives each side's CPU per phase (from /proc),
which shows whether the server or the load generators were the limit, and warns when other
processes on the machine took CPU during a phase.

Every message text carries its phase and ``time.time()`` at the send; a client takes the clock when
a frame arrives, so publish-to-receive latency is measured on one machine clock. Each agent's count
of messages per phase is checked against the recipients computed here from the rights (independently
of the server's permission core): nobody misses a message they may see or gets one they may not.

Phases, per server: ``all`` (every message reaches every agent) and ``mixed`` (10% shared queue,
45% an agent's own contact, 45% a lead of one agent with another agent's contact; ~200 recipients on
average), each at saturation (the publisher keeps at most ``--window`` deliveries outstanding) and at a
fixed offered load (``--rate`` deliveries per second, default 10,000).

    .venv/bin/python bench/realtime_fanout.py                  # 1,000 agents, ~100 s (+ ~15 s build once)
    .venv/bin/python bench/realtime_fanout.py --quick          # 50 agents, a smoke run of ~40 s
    .venv/bin/python bench/realtime_fanout.py --report out.md  # also write the tables as Markdown
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import math
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import common
from common import ROOT, cpu_seconds, free_port, new_loop, say, schema_hash, start, stop, usable_cpus
from common import TICK as CLK_TCK

sys.path.insert(0, str(ROOT))

BUILD_VERSION = 1            # bump when the generated workspace changes shape
ADMIN_EMAIL = "admin@bench.example"
PASSWORD = "bench-correct-horse-battery"
GROUP_SIZE = 10
SHARED_CONVERSATIONS = 10
MARK = b"~~"                 # message text: "~~<phase>|<time.time()>~~ ..."
TEXT_TAIL = "Thanks for your message, we will get back to you about the order today."


USABLE_CORES = len(usable_cpus())   # taken before main() pins this process to the load-generator cores


def cores() -> int:
    return USABLE_CORES


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) of a process so far."""
    return cpu_seconds(f"/proc/{pid}/stat") or 0.0


def proc_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# =============================================================================================
# The workspace: who each agent is, and who may see each conversation
# =============================================================================================

def agent_kind(i: int) -> tuple[str, bool]:
    """(level for contacts and leads, files_access) of agent i. In each group of 10: one A
    (a supervisor), three G (team leads), six M (agents); files access on for even positions."""
    k = i % GROUP_SIZE
    level = "A" if k == 0 else "G" if k <= 3 else "M"
    return level, k % 2 == 0


def partner(i: int, n: int) -> int:
    """Whose contact is on agent i's lead: someone in another group."""
    return (i + 7 * GROUP_SIZE + 3) % n


def role_rights(level: str, files: bool, support: int, shared_stage: int) -> dict:
    def lv(view: str) -> dict:
        return {"add": "A", "view": view, "edit": view, "delete": "M", "export": "D"}
    return {"leads": lv(level), "contacts": lv(level), "companies": lv(level),
            "tasks": {"edit": "M", "delete": "M"}, "files_access": files, "mail_access": True,
            # Every role sees the shared support queue, whoever is responsible for its leads.
            "stage_rights": [{"pipeline_id": support, "stage_id": shared_stage, "view": "A", "edit": "M",
                              "delete": "D"}]}


def recipients_by_conversation(meta: dict) -> dict[int, list[int]]:
    """Agent indexes that may see each conversation, from the rights above written out by hand
    (SPEC 2 rules 2, 4, 5, 6: a view right on the lead, or on the contact; a stage right A on the
    shared queue): not via auth.policy, so the bench checks the server."""
    n = meta["agents"]
    groups = [i // GROUP_SIZE for i in range(n)]
    level = [agent_kind(i)[0] for i in range(n)]
    a_users = {i for i in range(n) if level[i] == "A"}
    g_by_group: dict[int, set[int]] = {}
    for i in range(n):
        if level[i] == "G":
            g_by_group.setdefault(groups[i], set()).add(i)

    def viewers(owner: int | None) -> set[int]:   # owner None: the admin, in no group
        if owner is None:
            return set(a_users)
        out = a_users | g_by_group.get(groups[owner], set())
        out.add(owner)  # M, G and A all cover one's own records
        return out

    everyone = list(range(n))
    out = {}
    for c in meta["conversations"]:
        if c["kind"] == "shared":
            out[c["id"]] = everyone
        else:
            seen = viewers(c["contact_owner"])
            if c.get("lead_owner") is not None:
                seen |= viewers(c["lead_owner"])
            out[c["id"]] = sorted(seen)
    return out


def server_env() -> dict:
    # The bench creates and signs in 1,000 users: cheap hashing, throttling raised. Everything else
    # is the server's defaults (synchronous=FULL, buffers).
    return common.server_env(PASSWORD, INBOX_ARGON2_MEMORY_KIB="1024", INBOX_LOGIN_ACCOUNT_LIMIT="100000",
                             INBOX_LOGIN_IP_LIMIT="1000000")


class Proc:
    """A server child process, ready when GET <health> answers 200."""

    def __init__(self, cmd: list[str], log: Path, health: str, env: dict | None = None,
                 cpus: set[int] | None = None) -> None:
        self.cmd, self.log, self.health, self.env, self.cpus = cmd, log, health, env, cpus
        self.proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def __aenter__(self) -> Proc:
        self.proc = start(self.cmd, self.log, self.health, self.env, self.cpus)
        return self

    async def __aexit__(self, *exc) -> None:
        assert self.proc is not None
        if self.proc.poll() is None:
            stop(self.proc)


def inbox_server(data_dir: Path, port: int, cpus: set[int] | None = None) -> Proc:
    return Proc([sys.executable, "-m", "inbox", "serve", "--data-dir", str(data_dir), "--port", str(port)],
                data_dir / "server.log", f"http://127.0.0.1:{port}/healthz", server_env(), cpus)


async def gather_limited(coros, limit: int, label: str = "") -> list:
    sem = asyncio.Semaphore(limit)
    done = [0]
    coros = list(coros)

    async def one(c):
        async with sem:
            r = await c
        done[0] += 1
        if label and (done[0] % 100 == 0 or done[0] == len(coros)):
            say(f"\r  {label} {done[0]}/{len(coros)}", end="")
        return r

    out = await asyncio.gather(*(one(c) for c in coros))
    if label:
        say("")
    return out


async def build_workspace(data_dir: Path, n: int) -> dict:
    import aiohttp
    rc = subprocess.run([sys.executable, "-m", "inbox", "init", "--data-dir", str(data_dir), "--email", ADMIN_EMAIL,
                         "--name", "Admin", "--workspace", "Bench"], cwd=ROOT, env=server_env(),
                        capture_output=True, text=True)
    if rc.returncode:
        raise SystemExit(f"inbox init failed: {rc.stderr}")
    async with inbox_server(data_dir, free_port()) as srv, aiohttp.ClientSession() as s:
        api = common.Api(s, srv.health.rsplit("/", 1)[0], PASSWORD)
        token, admin_id = await api.login(ADMIN_EMAIL)
        sales = await api.call("POST", "/api/v1/pipelines", token,
                               json={"name": "Sales", "sort": 0, "stages": ["New", "Qualified", "Won"]})
        support = await api.call("POST", "/api/v1/pipelines", token,
                                 json={"name": "Support", "sort": 1, "stages": ["Shared queue", "Closed"]})
        new_stage, shared_stage = sales["stages"][0]["id"], support["stages"][0]["id"]
        roles = {}
        for level in "MGA":
            for files in (True, False):
                rights = role_rights(level, files, support["id"], shared_stage)
                name = f"Level {level}, files {'on' if files else 'off'}"
                roles[(level, files)] = (await api.call("POST", "/api/v1/roles", token,
                                                        json={"name": name, "rights": rights}))["id"]

        async def user(i: int) -> int:
            level, files = agent_kind(i)
            b = await api.call("POST", "/api/v1/users", token, json={
                "email": f"a{i:05d}@bench.example", "name": f"Agent {i}", "password": PASSWORD,
                "role_id": roles[(level, files)]})
            return b["id"]
        uids = await gather_limited((user(i) for i in range(n)), 8, "users")
        for g in range(math.ceil(n / GROUP_SIZE)):
            await api.call("POST", "/api/v1/groups", token, json={
                "name": f"Team {g + 1}", "user_ids": uids[g * GROUP_SIZE:(g + 1) * GROUP_SIZE]})

        async def contact(i: int) -> int:
            return (await api.call("POST", "/api/v1/contacts", token, json={
                "name": f"Customer {i}", "responsible_user_id": uids[i], "emails": [f"customer{i}@client.example"],
                "phones": [f"+1 555 {i:07d}"], "avatar": f"https://cdn.client.example/avatars/{i}.png"}))["id"]
        contacts = await gather_limited((contact(i) for i in range(n)), 8, "contacts")

        async def lead(i: int) -> int:
            return (await api.call("POST", "/api/v1/leads", token, json={
                "name": f"Deal {i}", "price": 1000 + i, "pipeline_id": sales["id"], "stage_id": new_stage,
                "responsible_user_id": uids[i], "contact_ids": [contacts[partner(i, n)]]}))["id"]
        leads = await gather_limited((lead(i) for i in range(n)), 8, "leads")
        shared_owner = [s * n // SHARED_CONVERSATIONS for s in range(SHARED_CONVERSATIONS)]
        shared_leads = []
        for s, owner in enumerate(shared_owner):
            shared_leads.append((await api.call("POST", "/api/v1/leads", token, json={
                "name": f"Support ticket {s}", "pipeline_id": support["id"], "stage_id": shared_stage,
                "contact_ids": [contacts[owner]]}))["id"])  # responsible: the admin

        async def chat(contact_id: int, lead_id: int | None) -> int:
            return (await api.call("POST", "/api/v1/chats", token,
                                   json={"contact_id": contact_id, "lead_id": lead_id}))["id"]
        conversations = []
        ids = await gather_limited((chat(contacts[i], None) for i in range(n)), 8, "contact chats")
        conversations += [{"id": c, "kind": "contact", "contact_owner": i} for i, c in enumerate(ids)]
        ids = await gather_limited((chat(contacts[partner(i, n)], leads[i]) for i in range(n)), 8, "lead chats")
        conversations += [{"id": c, "kind": "lead", "contact_owner": partner(i, n), "lead_owner": i}
                          for i, c in enumerate(ids)]
        for s, owner in enumerate(shared_owner):
            conversations.append({"id": await chat(contacts[owner], shared_leads[s]), "kind": "shared",
                                  "contact_owner": owner})
    return {"agents": n, "admin_id": admin_id, "uids": uids, "conversations": conversations}


async def ensure_workspace(args) -> tuple[Path, dict]:
    key = f"fanout-{args.agents}-g{GROUP_SIZE}-v{BUILD_VERSION}-{schema_hash()}"
    data_dir = Path(args.cache_dir) / key
    ready = data_dir / "bench.json"
    if ready.exists() and not args.rebuild:
        say(f"Using the cached workspace {data_dir}")
        return data_dir, json.loads(ready.read_text())
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    say(f"Building a workspace of {args.agents:,} agents in {data_dir}")
    t = time.perf_counter()
    meta = await build_workspace(data_dir, args.agents)
    import sqlite3
    conn = sqlite3.connect(data_dir / "inbox.sqlite3")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    (data_dir / "server.log").unlink(missing_ok=True)
    say(f"  built in {time.perf_counter() - t:.1f} s")
    ready.write_text(json.dumps(meta))
    return data_dir, meta


# =============================================================================================
# Load generator: a client process holding many websockets (hidden mode --_client)
# =============================================================================================

class ClientStats:
    def __init__(self) -> None:
        self.frames: dict[int, int] = {}          # phase -> marked frames received
        self.bytes: dict[int, int] = {}
        self.hist: dict[int, dict[int, int]] = {}  # phase -> log-bucket -> count
        self.timeline: dict[int, int] = {}         # int(time * 10) -> marked frames
        self.total = 0
        self.other = 0                             # frames without a marker after "ready"
        self.closed: dict[str, int] = {}


HIST_SCALE = 200.0   # log buckets 0.5% wide


class WsConn(asyncio.Protocol):
    """One agent's websocket, on a bare protocol: handshake, the auth frame, then count frames."""

    def __init__(self, uid: int, auth: bytes, host: str, port: int, path: str, stats: ClientStats) -> None:
        self.uid, self.auth, self.stats = uid, auth, stats
        self.request = (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                        f"Connection: Upgrade\r\nSec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
                        f"Sec-WebSocket-Version: 13\r\n\r\n").encode()
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.upgraded = False
        self.ready = asyncio.get_running_loop().create_future()
        self.per_phase: dict[int, int] = {}
        self.gone = False

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(self.request)

    def send(self, opcode: int, payload: bytes) -> None:
        """A masked client frame (RFC 6455 5.3)."""
        key = os.urandom(4)
        n = len(payload)
        head = bytes([0x80 | opcode]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big"))
        mask = (key * (n // 4 + 1))[:n]
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes(mask, "big")).to_bytes(n, "big") if n else b""
        self.transport.write(head + key + masked)

    def data_received(self, data: bytes) -> None:
        if not self.upgraded:
            self.buf += data
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = self.buf[:self.buf.find(b"\r\n")]
            if b" 101 " not in status + b" ":
                self._fail(f"handshake: {status!r}")
                return
            self.upgraded = True
            data, self.buf = self.buf[end + 4:], b""
            self.send(1, self.auth)
            if not data:
                return
        buf = self.buf + data if self.buf else data
        n = len(buf)
        i = 0
        now = time.time()
        marked = 0
        stats = self.stats
        while n - i >= 2:
            b1 = buf[i + 1] & 0x7F
            if b1 < 126:
                h = 2
                ln = b1
            elif b1 == 126:
                if n - i < 4:
                    break
                h, ln = 4, int.from_bytes(buf[i + 2:i + 4], "big")
            else:
                if n - i < 10:
                    break
                h, ln = 10, int.from_bytes(buf[i + 2:i + 10], "big")
            end = i + h + ln
            if end > n:
                break
            op = buf[i] & 0x0F
            if op == 1:
                j = buf.find(MARK, i + h, end)
                if j >= 0:
                    bar = buf.find(b"|", j, end)
                    k = buf.find(MARK, bar, end)
                    phase = int(buf[j + 2:bar])
                    lat = now - float(buf[bar + 1:k])
                    bucket = int(math.log(lat if lat > 1e-6 else 1e-6) * HIST_SCALE)
                    hist = stats.hist.get(phase)
                    if hist is None:
                        hist = stats.hist[phase] = {}
                        stats.frames[phase] = stats.bytes[phase] = 0
                    hist[bucket] = hist.get(bucket, 0) + 1
                    stats.frames[phase] += 1
                    stats.bytes[phase] += ln
                    self.per_phase[phase] = self.per_phase.get(phase, 0) + 1
                    marked += 1
                elif not self.ready.done() and buf.find(b'"ready"', i + h, end) >= 0:
                    self.ready.set_result(True)
                else:
                    stats.other += 1
            elif op == 9:          # ping: answer with the same payload
                self.send(10, bytes(buf[i + h:end]))
            elif op == 8:          # close
                code = int.from_bytes(buf[i + h:i + h + 2], "big") if ln >= 2 else 1005
                self._fail(f"closed {code}")
                return
            i = end
        self.buf = buf[i:] if i < n else b""
        if marked:
            stats.total += marked
            slot = int(now * 10)
            stats.timeline[slot] = stats.timeline.get(slot, 0) + marked

    def _fail(self, why: str) -> None:
        if not self.gone:
            self.gone = True
            self.stats.closed[why] = self.stats.closed.get(why, 0) + 1
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(why))
        if self.transport:
            self.transport.close()

    def connection_lost(self, exc) -> None:
        if not self.gone:
            self._fail("connection lost")


async def client_main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    loop = asyncio.get_running_loop()
    stats = ClientStats()
    conns: list[WsConn] = []
    out = sys.stdout

    def emit(obj: dict) -> None:
        out.write(json.dumps(obj) + "\n")
        out.flush()

    t = time.perf_counter()
    sem = asyncio.Semaphore(50)   # under the server's listen backlog

    async def connect(agent: dict) -> None:
        auth = json.dumps({"type": "auth", "token": agent["token"], "last_event_id": None,
                           "user_id": agent["uid"]}).encode()
        async with sem:
            _, conn = await loop.create_connection(
                lambda: WsConn(agent["uid"], auth, spec["host"], spec["port"], spec["path"], stats),
                spec["host"], spec["port"])
            conns.append(conn)
            await asyncio.wait_for(conn.ready, 30)

    await asyncio.gather(*(connect(a) for a in spec["agents"]))
    emit({"connected": len(conns), "seconds": round(time.perf_counter() - t, 2)})

    async def report_counts() -> None:
        last = -1
        while True:
            await asyncio.sleep(0.02)
            if stats.total != last:
                last = stats.total
                emit({"n": last})

    ticker = asyncio.create_task(report_counts())
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = (await reader.readline()).decode().strip()
        if line == "report":
            ru = os.times()
            emit({"report": {
                "frames": stats.frames, "bytes": stats.bytes,
                "hist": {p: list(h.items()) for p, h in stats.hist.items()},
                "timeline": list(stats.timeline.items()), "other": stats.other, "closed": stats.closed,
                "per_user": {c.uid: c.per_phase for c in conns}, "cpu": ru.user + ru.system}})
        elif line in ("quit", ""):
            break
    ticker.cancel()
    for c in conns:
        if c.transport and not c.transport.is_closing():
            c.gone = True
            c.send(8, (1000).to_bytes(2, "big"))
            c.transport.close()
    await asyncio.sleep(0.1)


# =============================================================================================
# The raw baseline server (hidden mode --_raw-server PORT)
# =============================================================================================

def raw_main(port: int) -> None:
    import orjson
    from aiohttp import WSMsgType, web

    sockets: dict[int, web.WebSocketResponse] = {}
    seq = [0]
    # The shape of the server's message.created frame as most agents get it: the contact shown as
    # name and avatar only (rule 6). Frame sizes are in the report.
    contact = {"name": "Customer 100", "avatar": "https://cdn.client.example/avatars/100.png", "restricted": True}

    async def ws_handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=30, max_msg_size=64 * 1024, timeout=2.0, compress=False)
        await ws.prepare(request)
        first = orjson.loads((await ws.receive(timeout=10)).data)
        uid = int(first["user_id"])
        sockets[uid] = ws
        await ws.send_str(orjson.dumps({"type": "ready", "user_id": uid, "last_event_id": 0}).decode())
        try:
            async for msg in ws:
                if msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                    break
        finally:
            if sockets.get(uid) is ws:
                del sockets[uid]
        return ws

    async def broadcast(request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        seq[0] += 1
        now = time.time()
        at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"
        frame = orjson.dumps({"type": "event", "id": seq[0], "event": "message.created", "at": at, "data": {
            "message": {"id": seq[0], "conversation_id": body["cid"], "author_type": "agent", "author_user_id": 1,
                        "text": body["text"], "attachments": [], "status": "sent", "created_at": at},
            "conversation": {"id": body["cid"], "lead_id": None}, "contact": contact}}).decode()
        targets = sockets.values() if body["to"] == "all" else [sockets[u] for u in body["to"] if u in sockets]
        sent = 0
        for ws in list(targets):
            try:
                await ws.send_str(frame)
                sent += 1
            except (ConnectionError, RuntimeError):
                pass
        return web.json_response({"id": seq[0], "sent": sent}, status=201)

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/ws", ws_handler)
    app.router.add_post("/broadcast", broadcast)
    app.router.add_get("/healthz", health)
    web.run_app(app, host="127.0.0.1", port=port, loop=new_loop(), print=None, access_log=None,
                shutdown_timeout=2)


# =============================================================================================
# The publisher and the measurement (the main process)
# =============================================================================================

@dataclass
class Phase:
    tag: int
    scenario: str          # "all" | "mixed"
    load: str              # "saturation" | "fixed"
    start: float = 0.0     # the measured window, wall clock
    end: float = 0.0
    posted: int = 0
    expected: dict[int, int] = field(default_factory=dict)   # uid -> messages due
    cpu: dict[str, float] = field(default_factory=dict)      # role -> CPU seconds in the window
    post_errors: int = 0
    post_ms: list[float] = field(default_factory=list)       # publisher's request round trips


class Publisher:
    """Posts messages to one target (ours or raw) and tracks what the clients have received."""

    def __init__(self, target: str, base: str, session, token: str | None, recipients: dict[int, list[int]],
                 uid_of: list[int], n_agents: int) -> None:
        self.target, self.base, self.s, self.token = target, base, session, token
        self.recipients, self.uid_of, self.n = recipients, uid_of, n_agents
        self.due = 0                       # deliveries owed by every post so far
        self.received: dict[int, int] = {}  # client index -> its latest total
        self.progress = asyncio.Event()
        self.inflight = 0
        self.errors = 0

    def got(self) -> int:
        return sum(self.received.values())

    async def post(self, cid: int, tag: int, phase: Phase | None) -> None:
        who = self.recipients[cid]
        self.due += len(who)
        if phase is not None:
            phase.posted += 1
            for a in who:
                u = self.uid_of[a]
                phase.expected[u] = phase.expected.get(u, 0) + 1
        self.inflight += 1
        sent = time.time()
        text = f"~~{tag}|{sent:.6f}~~ {TEXT_TAIL}"
        try:
            if self.target == "ours":
                url = f"{self.base}/api/v1/chats/{cid}/messages"
                kw = {"json": {"text": text}, "headers": {"Authorization": f"Bearer {self.token}"}}
            else:
                to = "all" if len(who) == self.n else [self.uid_of[a] for a in who]
                url, kw = f"{self.base}/broadcast", {"json": {"cid": cid, "to": to, "text": text}}
            async with self.s.post(url, **kw) as r:
                await r.read()
                if phase is not None:
                    phase.post_ms.append((time.time() - sent) * 1000)
                if r.status != 201:
                    self.errors += 1
                    if phase is not None:
                        phase.post_errors += 1
        finally:
            self.inflight -= 1
            self.progress.set()


def pick(rng: random.Random, scenario: str, convs: dict[str, list[int]], p_shared: float) -> int:
    if scenario == "all" or rng.random() < p_shared:
        return rng.choice(convs["shared"])
    return rng.choice(convs["contact"] if rng.random() < 0.5 else convs["lead"])


def mean_fanout(scenario: str, convs: dict[str, list[int]], rec: dict[int, list[int]], p_shared: float) -> float:
    def avg(ids: list[int]) -> float:
        return sum(len(rec[c]) for c in ids) / len(ids)

    if scenario == "all":
        return avg(convs["shared"])
    return p_shared * avg(convs["shared"]) + (1 - p_shared) * (avg(convs["contact"]) + avg(convs["lead"])) / 2


class Clients:
    """The load-generator processes and their count reports."""

    def __init__(self) -> None:
        self.procs: list[asyncio.subprocess.Process] = []
        self.readers: list[asyncio.Task] = []
        self.reports: list[asyncio.Future] = []

    async def start(self, n_proc: int, agents: list[dict], host: str, port: int, path: str, run_dir: Path,
                    pub: Publisher) -> float:
        connected = []
        for k in range(n_proc):
            spec = run_dir / f"client{k}.json"
            spec.write_text(json.dumps({"host": host, "port": port, "path": path, "agents": agents[k::n_proc]}))
            p = await asyncio.create_subprocess_exec(
                sys.executable, __file__, "--_client", str(spec), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                limit=2 ** 28)
            self.procs.append(p)
            fut = asyncio.get_running_loop().create_future()
            connected.append(fut)
            self.readers.append(asyncio.create_task(self._read(k, p, fut, pub)))
        t = time.perf_counter()
        res = await asyncio.wait_for(asyncio.gather(*connected), 120)
        if sum(r["connected"] for r in res) != len(agents):
            raise SystemExit(f"only {sum(r['connected'] for r in res)} of {len(agents)} websockets connected")
        return time.perf_counter() - t

    async def _read(self, k: int, p, connected: asyncio.Future, pub: Publisher) -> None:
        while True:
            line = await p.stdout.readline()
            if not line:
                if not connected.done():
                    connected.set_exception(SystemExit(f"client {k} exited with {await p.wait()}"))
                return
            msg = json.loads(line)
            if "n" in msg:
                pub.received[k] = msg["n"]
                pub.progress.set()
            elif "connected" in msg:
                connected.set_result(msg)
            elif "report" in msg:
                self.reports[k].set_result(msg["report"])

    async def report(self) -> list[dict]:
        loop = asyncio.get_running_loop()
        self.reports = [loop.create_future() for _ in self.procs]
        for p in self.procs:
            p.stdin.write(b"report\n")
            await p.stdin.drain()
        return await asyncio.wait_for(asyncio.gather(*self.reports), 60)

    async def stop(self) -> None:
        for p in self.procs:
            if p.returncode is None:
                try:
                    p.stdin.write(b"quit\n")
                    await p.stdin.drain()
                except (ConnectionError, RuntimeError):
                    pass
        for p in self.procs:
            try:
                await asyncio.wait_for(p.wait(), 10)
            except TimeoutError:
                p.kill()
        for t in self.readers:
            t.cancel()

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]


def machine_busy() -> float:
    """CPU seconds spent by all cores so far, anything but idle and iowait (from /proc/stat)."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    return (sum(ticks[:8]) - ticks[3] - ticks[4]) / CLK_TCK


def cpu_snapshot(server_pid: int, client_pids: list[int]) -> dict[str, float]:
    me = os.times()
    snap = {"server": proc_cpu(server_pid), "clients": sum(proc_cpu(p) for p in client_pids),
            "publisher": me.user + me.system, "machine": machine_busy()}
    # The rest of the machine: other processes, and interrupt work charged to no process.
    snap["others"] = snap["machine"] - snap["server"] - snap["clients"] - snap["publisher"]
    return snap


async def run_phase(pub: Publisher, phase: Phase, args, convs, rec, rng: random.Random, server_pid: int,
                    client_pids: list[int]) -> None:
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task] = set()

    def launch(cid: int, tag: int, ph: Phase | None) -> None:
        t = loop.create_task(pub.post(cid, tag, ph))
        tasks.add(t)
        t.add_done_callback(tasks.discard)

    warm_end = time.time() + args.warmup
    end = warm_end + (args.seconds if phase.load == "saturation" else args.fixed_seconds)
    cpu0 = None
    if phase.load == "saturation":
        # Closed loop on delivery: keep at most --window deliveries owed (posted, not yet received)
        # and at most --concurrency posts in flight, so the server is always busy but never far behind.
        while True:
            now = time.time()
            if now >= end:
                break
            if cpu0 is None and now >= warm_end:
                cpu0, phase.start = cpu_snapshot(server_pid, client_pids), now
            if pub.due - pub.got() < args.window and pub.inflight < args.concurrency:
                measured = now >= warm_end
                launch(pick(rng, phase.scenario, convs, args.p_shared), phase.tag if measured else 0,
                       phase if measured else None)
                await asyncio.sleep(0)
            else:
                pub.progress.clear()
                try:
                    await asyncio.wait_for(pub.progress.wait(), 0.05)
                except TimeoutError:
                    pass
    else:
        rate = args.rate / mean_fanout(phase.scenario, convs, rec, args.p_shared)   # messages per second
        t0 = time.time()
        k = 0
        while True:
            due_at = t0 + k / rate
            if due_at >= end:
                break
            delay = due_at - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if cpu0 is None and due_at >= warm_end:
                cpu0, phase.start = cpu_snapshot(server_pid, client_pids), time.time()
            measured = due_at >= warm_end
            launch(pick(rng, phase.scenario, convs, args.p_shared), phase.tag if measured else 0,
                   phase if measured else None)
            k += 1
    phase.end = time.time()
    cpu1 = cpu_snapshot(server_pid, client_pids)
    phase.cpu = {k: cpu1[k] - cpu0[k] for k in cpu1}
    # Drain: every post answered and every owed delivery received, before the next phase.
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)
    deadline = time.time() + 30
    while pub.got() < pub.due and time.time() < deadline:
        pub.progress.clear()
        try:
            await asyncio.wait_for(pub.progress.wait(), 0.2)
        except TimeoutError:
            pass


PHASES = [("all", "saturation"), ("mixed", "saturation"), ("all", "fixed"), ("mixed", "fixed")]


def percentile(hist: dict[int, int], q: float) -> float:
    """From 0.5%-wide log buckets; the bucket's geometric middle, in ms."""
    total = sum(hist.values())
    if not total:
        return float("nan")
    rank = q * total
    acc = 0
    for b in sorted(hist):
        acc += hist[b]
        if acc >= rank:
            return math.exp((b + 0.5) / HIST_SCALE) * 1000
    return float("nan")


def quantiles(values: list[float]) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    v = sorted(values)
    return v[len(v) // 2], v[min(len(v) - 1, int(0.99 * len(v)))]


@dataclass
class Result:
    target: str
    scenario: str
    load: str
    delivered_per_s: float
    messages_per_s: float
    fanout: float
    p50: float
    p99: float
    frame_bytes: float
    cpu: dict[str, float]
    window: float
    deliveries: int
    check_ok: bool
    check_note: str
    post_p50: float = float("nan")
    post_p99: float = float("nan")


def analyse(target: str, phases: list[Phase], reports: list[dict]) -> list[Result]:
    timeline: dict[int, int] = {}
    for r in reports:
        for slot, n in r["timeline"]:
            timeline[int(slot)] = timeline.get(int(slot), 0) + n
    out = []
    for ph in phases:
        key = str(ph.tag)
        hist: dict[int, int] = {}
        frames = sum(r["frames"].get(key, 0) for r in reports)
        nbytes = sum(r["bytes"].get(key, 0) for r in reports)
        for r in reports:
            for b, n in r["hist"].get(key, []):
                hist[int(b)] = hist.get(int(b), 0) + n
        # delivered/s: marked frames received inside the measured window, in whole 100 ms slots
        lo, hi = math.ceil(ph.start * 10), math.floor(ph.end * 10)
        in_window = sum(timeline.get(s, 0) for s in range(lo, hi))
        window = (hi - lo) / 10
        got = {}
        for r in reports:
            for uid, per in r["per_user"].items():
                got[int(uid)] = per.get(key, 0)
        wrong = [(u, got.get(u, 0), n) for u, n in ph.expected.items() if got.get(u, 0) != n]
        extra = [u for u, n in got.items() if n and u not in ph.expected]
        expected_total = sum(ph.expected.values())
        ok = not wrong and not extra and frames == expected_total and ph.post_errors == 0
        note = (f"{frames:,}/{expected_total:,} frames" + (f", {len(wrong)} agents off" if wrong else "")
                + (f", {len(extra)} unexpected" if extra else "")
                + (f", {ph.post_errors} failed posts" if ph.post_errors else ""))
        wall = ph.end - ph.start
        out.append(Result(target, ph.scenario, ph.load, in_window / window if window else 0.0,
                          ph.posted / wall if wall else 0.0, expected_total / ph.posted if ph.posted else 0.0,
                          percentile(hist, 0.5), percentile(hist, 0.99), nbytes / frames if frames else 0.0,
                          {k: v / wall for k, v in ph.cpu.items()}, window, frames, ok, note,
                          *quantiles(ph.post_ms)))
    return out


async def measure(target: str, args, meta: dict, rec: dict[int, list[int]], run_dir: Path) -> dict:
    """Start one server (ours or raw), connect every agent, run the phases, return the figures."""
    import aiohttp

    n = meta["agents"]
    uids = meta["uids"]
    convs: dict[str, list[int]] = {"shared": [], "contact": [], "lead": []}
    for c in meta["conversations"]:
        convs[c["kind"]].append(c["id"])
    port = free_port()
    if target == "ours":
        srv = inbox_server(run_dir, port, args.server_cpus)
        path = "/api/v1/ws"
    else:
        srv = Proc([sys.executable, __file__, "--_raw-server", str(port)], run_dir / "raw.log",
                   f"http://127.0.0.1:{port}/healthz", None, args.server_cpus)
        path = "/ws"
    base = f"http://127.0.0.1:{port}"
    say(f"[{target}] starting {'python -m inbox serve' if target == 'ours' else 'the raw aiohttp broadcast server'}")
    async with srv, aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as s:
        api = common.Api(s, base, PASSWORD)
        token = None
        if target == "ours":
            t = time.perf_counter()
            token, _ = await api.login(ADMIN_EMAIL)
            tokens = await gather_limited((api.login(f"a{i:05d}@bench.example") for i in range(n)), 16,
                                          f"[{target}] logins")
            say(f"[{target}] {n:,} agents signed in in {time.perf_counter() - t:.1f} s")
            agents = [{"uid": u, "token": tok} for u, (tok, _) in zip(uids, tokens)]
        else:
            agents = [{"uid": u, "token": ""} for u in uids]
        # One post first, so the publish path's first-use allocations are not counted per socket.
        pub = Publisher(target, base, s, token, rec, uids, n)
        await pub.post(convs["shared"][0], 0, None)
        await asyncio.sleep(0.5)
        rss0 = proc_rss_kib(srv.pid)
        clients = Clients()
        try:
            secs = await clients.start(args.clients, agents, "127.0.0.1", port, path, run_dir, pub)
            await asyncio.sleep(1.0)
            rss1 = proc_rss_kib(srv.pid)
            say(f"[{target}] {n:,} websockets authenticated in {secs:.1f} s; server RSS {rss0 / 1024:.1f} -> "
                f"{rss1 / 1024:.1f} MiB ({(rss1 - rss0) / n:.1f} KiB per socket)")
            pub.due = pub.got()   # the warm-up message went out before anyone listened
            phases = []
            spy = start_py_spy(args, target, srv.pid)
            try:
                for tag, (scenario, load) in enumerate(PHASES, start=1):
                    if args.phases and f"{scenario}-{load}" not in args.phases:
                        continue
                    ph = Phase(tag, scenario, load)
                    rng = random.Random(args.seed * 1000 + tag)   # each phase: the same sequence for both servers
                    say(f"[{target}] {scenario:<5} {load:<10} ", end="")
                    await run_phase(pub, ph, args, convs, rec, rng, srv.pid, clients.pids)
                    phases.append(ph)
                    other = ph.cpu["others"] / (ph.end - ph.start)
                    say(f"{ph.posted:,} messages in {ph.end - ph.start:.1f} s"
                        + (f"  (warning: the rest of the machine used {other:.0%} of a core)" if other > 0.25 else ""))
            finally:
                stop_py_spy(spy)
            reports = await clients.report()
        finally:
            await clients.stop()
    results = analyse(target, phases, reports)
    closed = {}
    for r in reports:
        for k, v in r["closed"].items():
            closed[k] = closed.get(k, 0) + v
    return {"results": results, "rss_per_ws_kib": (rss1 - rss0) / n, "rss0": rss0, "rss1": rss1,
            "closed": closed, "other": sum(r["other"] for r in reports)}


def start_py_spy(args, target: str, pid: int) -> subprocess.Popen | None:
    if not args.py_spy:
        return None
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(exe).exists():
        say("(py-spy not installed: .venv/bin/pip install py-spy)")
        return None
    out = Path(args.py_spy)
    out.mkdir(parents=True, exist_ok=True)
    # Collapsed stacks (one line per stack with its sample count), and no pausing of the server.
    return subprocess.Popen([exe, "record", "--pid", str(pid), "--rate", "200", "--nonblocking", "--threads",
                             "--format", "raw", "-o", str(out / f"{target}.txt")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_py_spy(spy: subprocess.Popen | None) -> None:
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        try:
            spy.wait(timeout=30)
        except subprocess.TimeoutExpired:
            spy.kill()


def fmt_ms(x: float) -> str:
    return f"{x:.1f} ms" if x >= 10 else f"{x:.2f} ms"


def render(ours: dict, raw: dict, meta: dict, args, rec) -> str:
    lines = []
    add = lines.append
    n = meta["agents"]
    convs: dict[str, list[int]] = {"shared": [], "contact": [], "lead": []}
    for c in meta["conversations"]:
        convs[c["kind"]].append(c["id"])
    mix = mean_fanout("mixed", convs, rec, args.p_shared)
    add(f"Machine: {cores()} cores usable ({os.cpu_count()} online), {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}; uvloop in every process.")
    add(f"Agents: {n:,} websockets over {args.clients} client processes; roles M/G/A x files on/off in groups of "
        f"{GROUP_SIZE}; `all` = every message to every agent, `mixed` = {args.p_shared:.0%} shared queue, "
        f"the rest an agent's contact or lead (mean {mix:.0f} recipients). Saturation: at most {args.window:,} "
        f"deliveries owed and {args.concurrency} posts in flight; fixed: {args.rate:,} deliveries/s offered. "
        f"{args.seconds:g} s measured per saturation phase and {args.fixed_seconds:g} s per fixed phase, "
        f"after {args.warmup:g} s warm-up.")
    add("")
    add("| scenario | load | server | delivered/s | messages/s | recipients/msg | p50 | p99 | POST p50 / p99 "
        "| frame | server CPU | server CPU per delivery | clients + publisher CPU | rest of machine | checked |")
    add("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    pairs = []
    for a, b in zip(ours["results"], raw["results"]):
        pairs.append((a, b))
        for r in (a, b):
            per = r.cpu["server"] / r.delivered_per_s * 1e6 if r.delivered_per_s else float("nan")
            add(f"| {r.scenario} | {r.load} | {r.target} | {r.delivered_per_s:,.0f} | {r.messages_per_s:,.1f} | "
                f"{r.fanout:,.0f} | {fmt_ms(r.p50)} | {fmt_ms(r.p99)} | {r.post_p50:.1f} / {r.post_p99:.1f} ms | "
                f"{r.frame_bytes:,.0f} B | "
                f"{r.cpu['server']:.0%} | {per:.1f} µs | {r.cpu['clients'] + r.cpu['publisher']:.0%} | "
                f"{max(0.0, r.cpu['others']):.0%} | {'ok' if r.check_ok else 'NO'}: {r.check_note} |")
    add("")
    add("p50/p99: publish (the publisher's clock before the POST) to receipt, over every delivery. POST: the "
        "publisher's request round trip (ours: commit included; raw: every send included). CPU columns are shares "
        "of one core over the measured window (`/proc`); `rest of machine` is every other process plus interrupt "
        "work charged to none.")
    add("")
    add("Ratios, ours / raw (issue 7 targets: delivered/s >= 0.8 at saturation; p99 <= 1.3 at 10,000 deliveries/s):")
    add("")
    add("| scenario | load | delivered/s | p50 | p99 | server CPU per delivery |")
    add("|---|---|---:|---:|---:|---:|")
    for a, b in pairs:
        pa = a.cpu["server"] / a.delivered_per_s if a.delivered_per_s else float("nan")
        pb = b.cpu["server"] / b.delivered_per_s if b.delivered_per_s else float("nan")
        add(f"| {a.scenario} | {a.load} | {a.delivered_per_s / b.delivered_per_s:.2f} | {a.p50 / b.p50:.2f} | "
            f"{a.p99 / b.p99:.2f} | {pa / pb if pb else float('nan'):.2f} |")
    add("")
    add(f"Memory per idle authenticated websocket (server RSS after connecting all {n:,}, minus before): "
        f"ours {ours['rss_per_ws_kib']:.1f} KiB, raw aiohttp {raw['rss_per_ws_kib']:.1f} KiB, ratio "
        f"{ours['rss_per_ws_kib'] / raw['rss_per_ws_kib']:.2f} (issue 7 target: <= 1.5).")
    for name, d in (("ours", ours), ("raw", raw)):
        if d["closed"] or d["other"]:
            add(f"Note ({name}): closed sockets {d['closed'] or 0}, unmarked frames {d['other']}.")
    return "\n".join(lines)


def json_figures(ours: dict, raw: dict, args) -> list[dict]:
    """Issue 7's figures for ``--json`` (see bench/README.md), from the results above."""
    by = {(r.target, r.scenario, r.load): r for r in ours["results"] + raw["results"]}
    out = []
    for scenario in ("mixed", "all"):
        a, b = by["ours", scenario, "saturation"], by["raw", scenario, "saturation"]
        out.append(common.figure(f"chat messages delivered/s to {args.agents:,} agents, {scenario}", round(a.delivered_per_s),
                                 round(b.delivered_per_s), "deliveries/s", ">= 0.8", baseline_name="raw aiohttp broadcast",
                                 recipients_per_message=round(a.fanout, 1), checked=a.check_ok and b.check_ok))
    for scenario in ("mixed", "all"):
        a, b = by["ours", scenario, "fixed"], by["raw", scenario, "fixed"]
        out.append(common.figure(f"publish-to-receive p99 at {args.rate:,} deliveries/s, {scenario}", round(a.p99, 2),
                                 round(b.p99, 2), "ms", "<= 1.3", baseline_name="raw aiohttp broadcast",
                                 p50_ms=round(a.p50, 2), raw_p50_ms=round(b.p50, 2), checked=a.check_ok and b.check_ok))
    out.append(common.figure("memory per idle authenticated websocket", round(ours["rss_per_ws_kib"], 1),
                             round(raw["rss_per_ws_kib"], 1), "KiB", "<= 1.5", baseline_name="bare aiohttp websocket"))
    return out


def quiet_check() -> float:
    """Cores' worth of CPU that other processes use over one second (0.0 on a quiet machine)."""
    a = machine_busy() - sum(os.times()[:2])
    time.sleep(1.0)
    return machine_busy() - sum(os.times()[:2]) - a


async def coordinator(args) -> int:
    say(f"realtime_fanout bench: {args.agents:,} agents, {args.clients} client processes, {cores()} cores"
        + (f"; server pinned to CPU {min(args.server_cpus)}, load generators on the others" if args.server_cpus
           else ""))
    busy = quiet_check() if not args.smoke else 0.0
    if busy > 0.15:
        say(f"warning: other processes use {busy:.0%} of a core right now; the figures will be skewed")
    t_all = time.perf_counter()
    cache_dir, meta = await ensure_workspace(args)
    rec = recipients_by_conversation(meta)
    run_dir = Path(tempfile.mkdtemp(prefix="inbox-fanout-"))
    try:
        shutil.copytree(cache_dir, run_dir, dirs_exist_ok=True)
        ours = await measure("ours", args, meta, rec, run_dir) if args.only != "raw" else None
        raw = await measure("raw", args, meta, rec, run_dir) if args.only != "ours" else None
    finally:
        if args.keep:
            say(f"Run directory kept: {run_dir}")
        else:
            shutil.rmtree(run_dir, ignore_errors=True)
    if ours is None or raw is None:
        for r in (ours or raw)["results"]:
            say(f"{r.target} {r.scenario:<5} {r.load:<10} {r.delivered_per_s:>9,.0f}/s  p50 {fmt_ms(r.p50)}  "
                f"p99 {fmt_ms(r.p99)}  POST {r.post_p50:.1f}/{r.post_p99:.1f} ms  "
                + "  ".join(f"{k} {v:.0%}" for k, v in r.cpu.items()) + f"  {r.check_note}")
        return 0
    table = render(ours, raw, meta, args, rec)
    say("")
    say(table)
    if args.report:
        Path(args.report).write_text(table + "\n")
        say(f"Report written to {args.report}")
    ok = all(r.check_ok for r in ours["results"] + raw["results"])
    say("")
    say("Every agent received exactly the messages it may see: " + ("yes" if ok else "NO"))
    common.write_json(args.json, "realtime_fanout", json_figures(ours, raw, args), ok=ok, smoke=args.smoke)
    say(f"Total time {time.perf_counter() - t_all:.1f} s")
    return 0 if ok else 1


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--_client":
        loop = new_loop()
        asyncio.set_event_loop(loop)
        loop.run_until_complete(client_main(sys.argv[2]))
        return 0
    if len(sys.argv) == 3 and sys.argv[1] == "--_raw-server":
        raw_main(int(sys.argv[2]))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--agents", type=int, default=1000, help="agents (websockets), default 1000")
    ap.add_argument("--seconds", type=float, default=10.0, help="measured seconds per phase (default 10)")
    ap.add_argument("--warmup", type=float, default=1.5, help="seconds before each phase's window (default 1.5)")
    ap.add_argument("--fixed-seconds", type=float, default=30.0,
                    help="measured seconds per fixed-load phase (default 30: 300 messages to all, so the p99 "
                         "is not one slow message)")
    ap.add_argument("--rate", type=int, default=10_000, help="offered deliveries/s in the fixed phases")
    ap.add_argument("--clients", type=int, default=2, help="load-generator processes (default 2)")
    ap.add_argument("--window", type=int, default=8000, help="saturation: most deliveries owed at once")
    ap.add_argument("--concurrency", type=int, default=16, help="saturation: most posts in flight")
    ap.add_argument("--p-shared", type=float, default=0.1, help="mixed: share of messages to the shared queue")
    ap.add_argument("--quick", action="store_true", help="50 agents, 3 s phases, 2,000 deliveries/s: a smoke run")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cache-dir", default=str(Path(tempfile.gettempdir()) / "inbox-bench"))
    ap.add_argument("--rebuild", action="store_true", help="ignore the cached workspace")
    ap.add_argument("--keep", action="store_true", help="keep the run directory (server logs)")
    ap.add_argument("--no-pin", action="store_true", help="do not give the server a core of its own")
    ap.add_argument("--py-spy", metavar="DIR", help="profile each server with py-spy (if installed) into DIR")
    ap.add_argument("--only", choices=("ours", "raw"), help="measure one server only (no ratios)")
    ap.add_argument("--phases", nargs="+", choices=[f"{s}-{load}" for s, load in PHASES],
                    help="run only these phases (for profiling; no ratios, no JSON figures)")
    ap.add_argument("--report", help="also write the tables as Markdown to this file")
    ap.add_argument("--smoke", action="store_true", help="20 agents, 0.5 s phases, 500 deliveries/s: seconds")
    ap.add_argument("--json", metavar="FILE", help="write issue 7's figures as JSON to FILE (see bench/README.md)")
    args = ap.parse_args()
    if args.smoke:
        for name, value in (("agents", GROUP_SIZE * 2), ("seconds", 0.5), ("fixed_seconds", 0.5), ("rate", 500),
                            ("window", 200)):
            if getattr(args, name) == ap.get_default(name):
                setattr(args, name, value)
        args.quick, args.warmup = True, min(args.warmup, 0.3)
    if args.quick:
        for name, value in (("agents", 50), ("seconds", 3.0), ("fixed_seconds", 3.0), ("rate", 2000),
                            ("window", 1000)):
            if getattr(args, name) == ap.get_default(name):
                setattr(args, name, value)
        args.warmup = min(args.warmup, 1.0)
    if args.agents < GROUP_SIZE * 2:
        ap.error(f"--agents must be at least {GROUP_SIZE * 2}")
    # The server gets the first usable core to itself; clients and publisher share the others.
    usable = sorted(os.sched_getaffinity(0))
    args.server_cpus = None
    if not args.no_pin and len(usable) >= 2:
        args.server_cpus = {usable[0]}
        os.sched_setaffinity(0, set(usable[1:]))   # inherited by the client processes
    loop = new_loop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(coordinator(args))
    finally:
        loop.close()


if __name__ == "__main__":
    sys.exit(main())
