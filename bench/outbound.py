"""Benchmark: agents' replies delivered to a chat provider on loopback, and a live channel's reply
latency while another channel's provider is dead.

What runs, each in its own process:

* ``inbox serve`` on a fresh workspace (``inbox init``), with its defaults (WAL, synchronous=FULL,
  ``INBOX_OUTBOUND_CONCURRENCY`` 4 attempts in flight per channel, ``INBOX_OUTBOUND_TIMEOUT_SECONDS``
  10) and ``INBOX_OUTBOUND_ALLOW_PRIVATE=true`` so that loopback receivers are allowed;
* two receivers (``bench/outbound.py _receiver``, plain aiohttp on uvloop), each playing providers
  on ``/out/{channel}``: read the body, verify the Standard Webhooks signature with the
  ``standardwebhooks`` library (every request, against the channel's secret), count distinct
  ``webhook-id``s and note when each first arrived, answer 200 ``{"id": ...}`` at once. The second
  one also has ``/hang/{channel}``: it reads the request and never answers (sleeps an hour);
* the agents (this process): replies over the REST API, ``POST /api/v1/chats/{id}/messages``.

With two or more usable cores the server is pinned to the first one and the rest (receivers and
agents) to the others; every side's CPU is read from /proc, so the report shows which was the limit.

Part 1, sustained delivery. ``--channels`` channels, ``--conversations`` conversations on each
(opened by a signed inbound message, ``POST /hooks/chat/{channel}``), each channel pointed at the
first receiver. ``--deliveries`` replies are posted, ``--concurrency`` in flight, round-robin over
the conversations; the clock runs from the first request until the receiver has the last one.
Baseline, same run, same server: the same replies (same count, texts and concurrency) on as many
internal conversations (``POST /api/v1/chats {contact_id}`` with the same contacts), which send
nothing: from the first request to the last 201. The ratio is what going out costs (an outbox row,
an attempt, an HTTP POST, the transaction recording it sent); server CPU per delivered reply is
given next to CPU per internal reply.

Part 2, a dead provider next to a live one. Channels A and B, ``--conversations-2`` conversations
each (1,000: a busy channel, where a reply seldom follows another in the same conversation; also
more conversations than the 500 due rows the delivery worker reads per scan). Agents reply on both
at ``--rate`` replies/s per channel, round-robin over its conversations (open loop: every request
starts at its time, whatever the others are doing) for ``--warmup`` + ``--seconds`` per window. The
p99 of B's reply requests is measured with A's provider live, over two windows back to back (the
baseline is both pooled; window 2 / window 1 is printed as the noise between identical windows),
then over two windows with A's outbound URL pointed at ``/hang`` (pooled likewise) (every attempt on A holds a
connection until the server's timeout, 10 s by default, so the window sees attempts time out and be
rescheduled; A's replies pile up in the outbox). Target: p99 with the dead provider at most 1.1 x
with the live one. Also measured: B's 201-to-delivery latency (the 201's arrival at the agent to the
reply's first arrival at the receiver, one monotonic clock; target: at most 2 x with A live) and
whether every B reply was delivered within a grace period after the window (10 s, or 3 x the
slowest live delivery): whether B's deliveries kept flowing while A hung.

Checks (exit 1 when one fails): every reply answered 201 (``queued`` on a channel, ``sent`` on an
internal conversation); every signature verified; the receivers' distinct webhook ids are exactly
the delivered replies', each with the message id and ``webhook_id`` the database has; after part 1
the outbox holds none of its rows and each of its messages is ``sent`` after one attempt; all of
part 2's replies reached the receivers in the live runs. (B's replies not delivered in the dead run
are a result, not a failed check.) Requests that repeat a webhook id the receiver already answered
200 are counted and printed: not a failed check (a provider deduplicates on the id), but nothing in
these runs should cause one.

    .venv/bin/python bench/outbound.py              # ~70 s
    .venv/bin/python bench/outbound.py --quick      # ~25 s
    .venv/bin/python bench/outbound.py --smoke      # a few seconds
    .venv/bin/python bench/outbound.py --help       # --deliveries, --rate, --seconds, --no-pin, ...

Exit status: 0 when the checks pass and every target is met, 2 when they pass and a target is
missed, 1 when a check failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import common
from common import ROOT, cpu_seconds, figure, free_port, new_loop, pct, say, start, stop, usable_cpus, write_json

sys.path.insert(0, str(ROOT))

ADMIN_EMAIL = "admin@bench.example"
PASSWORD = "bench-correct-horse-battery"
TEXTS = [
    "Hi! Yes, the blue one is still available.",
    "Thanks, I have passed it on to the warehouse.",
    "It ships today; you will get the tracking link by email.",
    "ok",
    "We open at 9 on Saturday. Come by whenever suits you, and ask for Maria at the desk.",
    "Could you send me the order number? Then I can look it up right away.",
]
RECEIVER_HANG_SECONDS = 3600.0   # "never answers": far past any timeout the server may use
USABLE = usable_cpus()           # taken before main() pins this process to the other cores


# --- the receiver (a provider) -----------------------------------------------------------------

def run_receiver(port: int) -> int:
    """Providers on ``/out/{channel}`` (200 at once) and ``/hang/{channel}`` (never answers); control
    on ``/_secret`` (register a channel's secret), ``/_stats`` and ``/_arrivals``."""
    from datetime import UTC, datetime

    from aiohttp import web
    from standardwebhooks.webhooks import Webhook

    hooks: dict[int, Webhook] = {}
    seen: set[str] = set()
    hung_ids: set[str] = set()
    arrivals: list[list] = []   # [message id, channel, webhook id, time.monotonic()] at each id's first arrival
    st = {"requests": 0, "verified": 0, "bad_signature": 0, "duplicates": 0, "hung": 0}

    def verified(channel: int, headers, body: bytes) -> bool:
        hook = hooks.get(channel)
        try:
            stamp = int(headers["webhook-timestamp"])
            expected = hook.sign(headers["webhook-id"], datetime.fromtimestamp(stamp, UTC), body)  # type: ignore[union-attr]
        except (KeyError, ValueError, AttributeError):
            return False
        return abs(time.time() - stamp) <= 300 and expected in headers.get("webhook-signature", "").split(" ")

    async def out(request: web.Request) -> web.Response:
        body = await request.read()
        channel = int(request.match_info["channel"])
        wid = request.headers.get("webhook-id", "")
        st["requests"] += 1
        if verified(channel, request.headers, body):
            st["verified"] += 1
        else:
            st["bad_signature"] += 1
        if wid in seen:
            st["duplicates"] += 1
        else:
            seen.add(wid)
            arrivals.append([json.loads(body)["message"]["id"], channel, wid, time.monotonic()])
        return web.Response(body=b'{"id":"prov-%d"}' % st["requests"], content_type="application/json")

    async def hang(request: web.Request) -> web.Response:
        await request.read()
        st["hung"] += 1
        hung_ids.add(request.headers.get("webhook-id", ""))
        await asyncio.sleep(RECEIVER_HANG_SECONDS)
        return web.Response(status=200)

    async def secret(request: web.Request) -> web.Response:
        data = await request.json()
        hooks[int(data["channel"])] = Webhook(data["secret"])
        return web.json_response({"ok": True})

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({**st, "distinct": len(seen), "hung_distinct": len(hung_ids),
                                  "cpu": time.process_time()})

    async def arrived(request: web.Request) -> web.Response:
        return web.json_response(arrivals[int(request.query.get("since", 0)):])

    app = web.Application()
    app.router.add_post("/out/{channel}", out)
    app.router.add_post("/hang/{channel}", hang)
    app.router.add_post("/_secret", secret)
    app.router.add_get("/_stats", stats)
    app.router.add_get("/_arrivals", arrived)
    app.router.add_get("/healthz", stats)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None, loop=new_loop(),
                shutdown_timeout=0.5)
    return 0


# --- processes ---------------------------------------------------------------------------------

def server_env(args) -> dict:
    env = common.server_env(PASSWORD, INBOX_ARGON2_MEMORY_KIB="8192", INBOX_OUTBOUND_ALLOW_PRIVATE="true")
    env.pop("INBOX_SQLITE_SYNCHRONOUS", None)   # the default (FULL) is what is measured
    for name, value in (("INBOX_OUTBOUND_CONCURRENCY", args.outbound_concurrency),
                        ("INBOX_OUTBOUND_TIMEOUT_SECONDS", args.outbound_timeout)):
        env.pop(name, None)                      # the server's defaults unless the command line says
        if value is not None:
            env[name] = str(value)
    return env


class Proc:
    """A child process (the server or a receiver), up once GET /healthz answers 200."""

    def __init__(self, argv: list[str], port: int, log: Path, env: dict, cpus: set[int] | None = None) -> None:
        self.argv, self.port, self.log, self.env, self.cpus = argv, port, log, env, cpus
        self.base = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Proc:
        self.proc = start(self.argv, self.log, self.base + "/healthz", self.env, self.cpus)
        return self

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            stop(self.proc)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cpu(self) -> float:
        return cpu_seconds(f"/proc/{self.pid}/stat") or 0.0


# --- the agents (this process) -----------------------------------------------------------------

class Agents:
    """Replies over the REST API, each timed on the monotonic clock (the receivers use the same one)."""

    def __init__(self, session, base: str, token: str) -> None:
        self.s, self.base = session, base
        self.headers = {"Authorization": f"Bearer {token}"}
        self.n = 0

    async def reply(self, conversation: int) -> dict[str, Any]:
        self.n += 1
        text = f"{TEXTS[self.n % len(TEXTS)]} ({self.n})"
        t0 = time.monotonic()
        async with self.s.post(f"{self.base}/api/v1/chats/{conversation}/messages", json={"text": text},
                               headers=self.headers) as r:
            raw = await r.read()
            status = r.status
        t1 = time.monotonic()
        body = json.loads(raw) if raw else {}
        return {"conversation": conversation, "sent": t0, "done": t1, "code": status, "id": body.get("id"),
                "status": body.get("status"), "error": None if status == 201 else raw[:300].decode(errors="replace")}


class Receiver:
    def __init__(self, session, proc: Proc) -> None:
        self.s, self.proc = session, proc
        self.arrivals: dict[int, list] = {}   # message id -> [message id, channel, webhook id, t]
        self._since = 0

    async def register(self, channel: int, secret: str) -> None:
        async with self.s.post(self.proc.base + "/_secret", json={"channel": channel, "secret": secret}) as r:
            assert r.status == 200, await r.text()

    async def stats(self) -> dict:
        async with self.s.get(self.proc.base + "/_stats") as r:
            return await r.json()

    async def fetch(self) -> dict[int, list]:
        """New first arrivals since the last call, added to ``arrivals``."""
        async with self.s.get(self.proc.base + "/_arrivals", params={"since": str(self._since)}) as r:
            new = await r.json()
        self._since += len(new)
        for a in new:
            self.arrivals[a[0]] = a
        return self.arrivals


async def wait_delivered(receivers: list[Receiver], ids: set[int], timeout: float, label: str = "") -> float | None:
    """Poll until every message id in ``ids`` reached a receiver; the monotonic time of the last
    arrival, or None on timeout (what arrived is in the receivers' ``arrivals``)."""
    deadline = time.monotonic() + timeout
    shown = time.monotonic()
    while True:
        got = 0
        last = 0.0
        for rc in receivers:
            arr = await rc.fetch()
            for i in ids:
                a = arr.get(i)
                if a is not None:
                    got += 1
                    last = max(last, a[3])
        if got >= len(ids):
            return last
        now = time.monotonic()
        if now > deadline:
            return None
        if label and now - shown >= 1.0:
            shown = now
            say(f"  {label}: {got:,}/{len(ids):,} delivered")
        await asyncio.sleep(0.02)


def machine_busy() -> float:
    """CPU seconds the whole machine has spent busy (not idle or waiting on I/O), from /proc/stat."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
        return (user + nice + system + irq + softirq + steal) / common.TICK
    except (OSError, ValueError, IndexError):
        return float("nan")


class Meter:
    """CPU over a span: the server's, the receivers' plus this process's (the agents), and what
    other processes on the machine took meanwhile (the figures of a span that shared its cores
    with them are skewed)."""

    def __init__(self, server: Proc, side: list[Proc]) -> None:
        self.server, self.side = server, side
        self.t0 = time.monotonic()
        self.at0 = self._read()

    def _read(self) -> tuple[float, float, float]:
        return self.server.cpu(), sum(p.cpu() for p in self.side) + time.process_time(), machine_busy()

    def done(self) -> dict:
        span = time.monotonic() - self.t0
        (s0, d0, m0), (s1, d1, m1) = self.at0, self._read()
        return {"span": span, "server_cpu": s1 - s0, "side_cpu": d1 - d0,
                "others_cores": max(0.0, (m1 - m0) - (s1 - s0) - (d1 - d0)) / span if span > 0 else float("nan")}


def outbox_rows(db_path: Path) -> int:
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
    finally:
        conn.close()


async def wait_outbox_empty(db_path: Path, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await asyncio.to_thread(outbox_rows, db_path) == 0:
            return True
        await asyncio.sleep(0.05)
    return False


# --- part 1: a burst of replies, delivered -----------------------------------------------------

async def burst(label: str, agents: Agents, conversations: list[int], n: int, concurrency: int, server: Proc,
                side: list[Proc], receiver: Receiver | None) -> dict:
    """``n`` replies, ``concurrency`` in flight, round-robin over ``conversations``. Without a
    receiver the clock stops at the last 201; with one, when the receiver has the last reply."""
    results: list[dict] = []
    nxt = [0]
    acked = [0]

    async def worker() -> None:
        while nxt[0] < n:
            k = nxt[0]
            nxt[0] += 1
            r = await agents.reply(conversations[k % len(conversations)])
            results.append(r)
            acked[0] += 1

    meter = Meter(server, side)
    t0 = time.monotonic()
    workers = [asyncio.create_task(worker()) for _ in range(min(concurrency, n))]
    shown = t0
    while not all(w.done() for w in workers):
        await asyncio.sleep(0.05)
        if time.monotonic() - shown >= 1.0:
            shown = time.monotonic()
            extra = ""
            if receiver is not None:
                extra = f", {(await receiver.stats())['distinct']:,} delivered so far (all runs)"
            say(f"  {label}: {acked[0]:,}/{n:,} replies acknowledged in {shown - t0:.1f} s{extra}")
    await asyncio.gather(*workers)
    t_acked = max(r["done"] for r in results)
    end = t_acked
    delivered = None
    if receiver is not None:
        ids = {r["id"] for r in results if r["code"] == 201}
        end = await wait_delivered([receiver], ids, timeout=120.0, label=label)
        delivered = sum(1 for i in ids if i in receiver.arrivals)
        if end is None:
            end = time.monotonic()
    cpu = meter.done()
    first = min(r["sent"] for r in results)
    elapsed = end - first
    lat = [(r["done"] - r["sent"]) * 1000 for r in results]
    res = {"label": label, "n": n, "results": results, "elapsed": elapsed, "rate": n / elapsed,
           "ack_seconds": t_acked - first, "ack_rate": n / (t_acked - first), "delivered": delivered,
           "server_cpu": cpu["server_cpu"], "side_cpu": cpu["side_cpu"], "others_cores": cpu["others_cores"],
           "p50": pct(lat, 0.5), "p99": pct(lat, 0.99)}
    res["cpu_per_op_us"] = res["server_cpu"] / n * 1e6
    say(f"  {label}: {n:,} replies in {elapsed:.2f} s = {res['rate']:,.0f}/s"
        + (f" (all acknowledged after {res['ack_seconds']:.2f} s: {res['ack_rate']:,.0f}/s)" if receiver else "")
        + f"; server CPU {res['server_cpu'] / elapsed:.0%} of a core, {res['cpu_per_op_us']:,.0f} us per reply;"
        f" receivers + agents {res['side_cpu'] / elapsed:.0%}; reply p50 {res['p50']:.1f} ms, p99 {res['p99']:.1f} ms;"
        f" other processes {res['others_cores']:.0%}")
    return res


# --- part 2: steady replies on two channels ----------------------------------------------------

async def steady(label: str, agents: Agents, channels: dict[str, list[int]], rate: float, warmup: float,
                 seconds: float, server: Proc, side: list[Proc]) -> dict:
    """Each channel's replies at ``rate``/s, evenly spaced (channels offset from each other), each
    request started at its time as its own task (open loop). Latencies of requests started within
    the window after the warm-up."""
    loop = asyncio.get_running_loop()
    names = list(channels)
    interval = 1.0 / rate
    total = int((warmup + seconds) * rate)
    tasks: dict[str, list[asyncio.Task]] = {name: [] for name in names}
    t_start = time.monotonic() + 0.05
    win0, win1 = t_start + warmup, t_start + warmup + seconds
    meter: Meter | None = None
    shown = t_start
    for k in range(total):
        for j, name in enumerate(names):
            at = t_start + (k + j / len(names)) * interval
            delay = at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if meter is None and time.monotonic() >= win0:
                meter = Meter(server, side)
            convs = channels[name]
            tasks[name].append(loop.create_task(agents.reply(convs[k % len(convs)])))
        if time.monotonic() - shown >= 1.0:
            shown = time.monotonic()
            say(f"  {label}: {shown - t_start:4.1f}/{warmup + seconds:g} s, {(k + 1) * len(names):,} replies sent")
    cpu = (meter or Meter(server, side)).done()
    out: dict[str, Any] = {"label": label, "window": (win0, win1)}
    for name in names:
        results = await asyncio.gather(*tasks[name])
        window = [r for r in results if win0 <= r["sent"] < win1]
        lat = [(r["done"] - r["sent"]) * 1000 for r in window]
        out[name] = {"results": results, "window": window, "p50": pct(lat, 0.5), "p99": pct(lat, 0.99),
                     "max": max(lat) if lat else float("nan"), "n": len(window)}
    span = cpu["span"]
    out["server_cores"] = cpu["server_cpu"] / span if span > 0 else float("nan")
    out["others_cores"] = cpu["others_cores"]
    return out


def delivery_lags(replies: list[dict], arrivals: dict[int, list], now: float) -> dict:
    """201 to first arrival at the receiver, per reply; a reply not (yet) arrived counts as ``now``."""
    lags = [((arrivals[r["id"]][3] if r["id"] in arrivals else now) - r["done"]) * 1000 for r in replies]
    missing = sum(1 for r in replies if r["id"] not in arrivals)
    return {"p50": pct(lags, 0.5), "p99": pct(lags, 0.99), "max": max(lags) if lags else float("nan"),
            "missing": missing, "n": len(replies)}


def merged(runs: list[dict], arrivals: dict[str, dict[int, list]], now: float) -> dict:
    """Several ``steady`` runs as one: each channel's window latencies pooled, its 201-to-delivery
    lags, how many of its window's replies arrived within their own window, and CPU shares averaged."""
    out: dict[str, Any] = {"runs": runs, "server_cores": sum(r["server_cores"] for r in runs) / len(runs),
                           "others_cores": sum(r["others_cores"] for r in runs) / len(runs)}
    for name in ("A", "B"):
        window = [r for run_ in runs for r in run_[name]["window"]]
        lat = [(r["done"] - r["sent"]) * 1000 for r in window]
        arr = arrivals[name]
        in_window = sum(1 for run_ in runs for r in run_[name]["window"]
                        if r["id"] in arr and run_["window"][0] <= arr[r["id"]][3] < run_["window"][1])
        out[name] = {"window": window, "n": len(window), "p50": pct(lat, 0.5), "p99": pct(lat, 0.99),
                     "max": max(lat) if lat else float("nan"), "delivered_in_window": in_window,
                     "delivery": delivery_lags(window, arr, now)}
    return out


# --- set-up ------------------------------------------------------------------------------------

async def make_channel(api: common.Api, token: str, pipeline: int, name: str, conversations: int,
                       tag: str) -> dict:
    """A channel with ``conversations`` customers, each opened by a signed inbound message."""
    from auth.signing import sign

    ch = await api.call("POST", "/api/v1/channels", token, json={"name": name, "pipeline_id": pipeline})
    sem = asyncio.Semaphore(16)

    async def customer(i: int) -> dict:
        body = json.dumps({"id": f"in-{tag}-{i}", "from": {"handle": f"+3160{tag}{i:05d}", "name": f"Customer {tag}{i}"},
                           "text": "Hello, is my order on its way?"}).encode()
        stamp = str(int(time.time()))
        async with sem, api.s.post(f"{api.base}/hooks/chat/{ch['id']}", data=body,
                                   headers={"Content-Type": "application/json", "X-Inbox-Timestamp": stamp,
                                            "X-Inbox-Signature": sign(ch["secret"], stamp, body)}) as r:
            b = await r.json(content_type=None)
            if r.status != 201:
                raise SystemExit(f"POST /hooks/chat/{ch['id']} -> {r.status}: {b}")
            return b

    opened = await asyncio.gather(*(customer(i) for i in range(conversations)))
    return {"id": ch["id"], "secret": ch["secret"], "conversations": [b["conversation_id"] for b in opened],
            "contacts": [b["contact_id"] for b in opened]}


async def point(api: common.Api, token: str, channel: dict, receiver: Receiver, path: str) -> None:
    await receiver.register(channel["id"], channel["secret"])
    url = f"{receiver.proc.base}/{path}/{channel['id']}"
    await api.call("PATCH", f"/api/v1/channels/{channel['id']}", token, json={"outbound_url": url})


# --- the run -----------------------------------------------------------------------------------

async def run(args, server: Proc, live: Proc, other: Proc, db_path: Path) -> tuple[list[dict], bool, dict]:
    import aiohttp

    checks: list[tuple[str, bool, str]] = []
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn) as s:
        api = common.Api(s, server.base, PASSWORD)
        token, _ = await api.login(ADMIN_EMAIL)
        agents = Agents(s, server.base, token)
        r1, r2 = Receiver(s, live), Receiver(s, other)
        pipeline = (await api.call("POST", "/api/v1/pipelines", token,
                                   json={"name": "Chats", "stages": ["New", "Talking"]}))["id"]

        # ---- part 1 -------------------------------------------------------------------------
        t = time.monotonic()
        chans = [await make_channel(api, token, pipeline, f"Provider {c + 1}", args.conversations, f"{c}")
                 for c in range(args.channels)]
        for ch in chans:
            await point(api, token, ch, r1, "out")
        out_convs = [cv for ch in chans for cv in ch["conversations"]]
        internal = [(await api.call("POST", "/api/v1/chats", token, json={"contact_id": contact}))["id"]
                    for ch in chans for contact in ch["contacts"]]
        say(f"Part 1: {args.channels} channels x {args.conversations} conversations (each opened by a signed inbound"
            f" message) and {len(internal)} internal conversations on the same contacts, set up in"
            f" {time.monotonic() - t:.1f} s")
        # Warm-up, untimed: a reply on every conversation, delivered (connections open, caches warm).
        warm = await asyncio.gather(*(agents.reply(cv) for cv in out_convs + internal))
        warm_ids = {r["id"] for r in warm[:len(out_convs)] if r["code"] == 201}
        if await wait_delivered([r1], warm_ids, 30.0) is None:
            raise SystemExit("the warm-up replies were not delivered within 30 s; see server.log")
        side = [live, other]

        async def dups() -> int:
            return (await r1.stats())["duplicates"] + (await r2.stats())["duplicates"]
        say(f"Internal conversations (baseline: the same replies, nothing sent): {args.deliveries:,} replies,"
            f" {args.concurrency} in flight")
        base = await burst("internal", agents, internal, args.deliveries, args.concurrency, server, side, None)
        say(f"Channel conversations: {args.deliveries:,} replies, {args.concurrency} in flight, until the receiver"
            " has every one")
        d0 = await dups()
        ours = await burst("outbound", agents, out_convs, args.deliveries, args.concurrency, server, side, r1)
        drained = await wait_outbox_empty(db_path, 30.0)
        ours["duplicates"] = await dups() - d0

        bad = [r for r in base["results"] if r["code"] != 201 or r["status"] != "sent"]
        checks.append(("every internal reply answered 201, status sent", not bad, f"{len(bad)} did not"))
        bad = [r for r in ours["results"] + warm[:len(out_convs)] if r["code"] != 201 or r["status"] != "queued"]
        checks.append(("every channel reply answered 201, status queued", not bad,
                       f"{len(bad)} did not, e.g. {[r['error'] for r in bad[:2]]}"))
        checks.append(("every channel reply reached the receiver", ours["delivered"] == args.deliveries,
                       f"{ours['delivered']:,} of {args.deliveries:,}"))
        checks.append(("the outbox drained after part 1", drained, "rows left after 30 s"))
        part1_ids = {r["id"] for r in ours["results"]} | warm_ids

        # ---- part 2 -------------------------------------------------------------------------
        t = time.monotonic()
        a = await make_channel(api, token, pipeline, "Provider A", args.conversations_2, "a")
        b = await make_channel(api, token, pipeline, "Provider B", args.conversations_2, "b")
        await point(api, token, a, r2, "out")
        await point(api, token, b, r1, "out")
        warm = await asyncio.gather(*(agents.reply(cv) for cv in a["conversations"][:16] + b["conversations"][:16]))
        if await wait_delivered([r1, r2], {r["id"] for r in warm}, 30.0) is None:
            raise SystemExit("part 2's warm-up replies were not delivered within 30 s; see server.log")
        say(f"Part 2: channels A and B, {args.conversations_2} conversations each, set up in"
            f" {time.monotonic() - t:.1f} s; {args.rate:g} replies/s on each, {args.warmup:g} s warm-up +"
            f" {args.seconds:g} s window")
        # Let the server settle after the set-up's writes (its checkpointer, the garbage collector) so
        # that they do not land in the baseline's window only.
        await asyncio.sleep(args.settle)
        d0 = await dups()
        two = {"A": a["conversations"], "B": b["conversations"]}
        lives = []
        for k in (1, 2):
            say(f"A's provider live (baseline, window {k} of 2)")
            lives.append(await steady(f"A live {k}", agents, two, args.rate, args.warmup, args.seconds, server, side))
        ids = {r["id"] for run_ in lives for name in ("A", "B") for r in run_[name]["results"]}
        t_end = await wait_delivered([r1, r2], ids, 60.0, label="A live, delivering")
        drained2 = await wait_outbox_empty(db_path, 30.0)
        checks.append(("part 2, live: every reply on A and B reached its receiver, the outbox drained",
                       t_end is not None and drained2, f"delivered: {t_end is not None}, drained: {drained2}"))
        now = time.monotonic()
        live_run = merged(lives, {"A": r2.arrivals, "B": r1.arrivals}, now)
        live_run["windows"] = [merged([run_], {"A": r2.arrivals, "B": r1.arrivals}, now) for run_ in lives]
        live_run["duplicates"] = await dups() - d0

        await point(api, token, a, r2, "hang")
        hung0 = (await r2.stats())["hung"]
        d0 = await dups()
        deads = []
        for k in (1, 2):  # as many windows as the baseline: one window's p99 is too noisy alone
            say(f"A's provider dead (accepts, never answers), window {k} of 2")
            deads.append(await steady(f"A dead {k}", agents, two, args.rate, args.warmup, args.seconds, server,
                                      side))
        b_ids = {r["id"] for run_ in deads for r in run_["B"]["results"]}
        grace = max(10.0, 3 * live_run["B"]["delivery"]["max"] / 1000)
        await wait_delivered([r1], b_ids, grace, label="A dead, B delivering")
        now = time.monotonic()
        dead_run = merged(deads, {"A": r2.arrivals, "B": r1.arrivals}, now)
        dead_run["B_all"] = delivery_lags([r for run_ in deads for r in run_["B"]["results"]], r1.arrivals, now)
        dead_run["A_hung"] = (await r2.stats())["hung"] - hung0
        dead_run["duplicates"] = await dups() - d0
        dead_run["A_queued"] = await asyncio.to_thread(outbox_rows, db_path)
        dead_run["B_flowing"] = dead_run["B_all"]["missing"] == 0
        dead_run["grace"] = grace
        a_dead_ids = {r["id"] for run_ in deads for r in run_["A"]["results"]}
        bad = [r for run_ in lives + deads for name in ("A", "B") for r in run_[name]["results"]
               if r["code"] != 201 or r["status"] != "queued"]
        checks.append(("every part 2 reply answered 201, status queued", not bad,
                       f"{len(bad)} did not, e.g. {[r['error'] for r in bad[:2]]}"))

        stats = [await r1.stats(), await r2.stats()]
    # ---- checks against the database (the server still runs; read-only) ------------------------
    arrivals = {**r2.arrivals, **r1.arrivals}
    verified = sum(st["verified"] for st in stats)
    bad_sig = sum(st["bad_signature"] for st in stats)
    dups = sum(st["duplicates"] for st in stats)
    checks.append(("every request the receivers answered carried a valid Standard Webhooks signature",
                   bad_sig == 0 and verified > 0, f"{verified:,} verified, {bad_sig:,} bad"))
    conn2 = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    try:
        rows = {mid: (wid, status, attempts) for mid, wid, status, attempts in conn2.execute(
            "SELECT id, webhook_id, status, attempts FROM messages WHERE author_type = 'agent' AND webhook_id IS NOT NULL")}
    finally:
        conn2.close()
    wrong = [m for m, a_ in arrivals.items() if m not in rows or rows[m][0] != a_[2]]
    checks.append(("each distinct webhook id received is a stored reply's, with its message id",
                   not wrong and len(arrivals) == len({a_[2] for a_ in arrivals.values()}),
                   f"{len(wrong)} unknown or mismatched"))
    unsent = [m for m in part1_ids if rows.get(m, (None, None, None))[1:] != ("sent", 1)]
    checks.append(("part 1's replies are all sent, after one attempt each", not unsent,
                   f"{len(unsent)} not, e.g. {[rows.get(m) for m in unsent[:3]]}"))
    stray = [m for m in arrivals if m in a_dead_ids]
    checks.append(("no reply on the dead channel reached a live receiver", not stray, f"{len(stray)} did"))
    info = {"base": base, "ours": ours, "live": live_run, "dead": dead_run, "verified": verified, "duplicates": dups}
    ok = True
    say("")
    say("Checks:")
    for what, good, detail in checks:
        ok &= good
        say(f"  [{'ok' if good else 'FAIL'}] {what}" + ("" if good else f": {detail}"))
    return checks, ok, info


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--deliveries", type=int, default=6000, help="replies in each part-1 run (default 6000)")
    ap.add_argument("--channels", type=int, default=4, help="part 1's channels (default 4)")
    ap.add_argument("--conversations", type=int, default=8, help="conversations per channel in part 1 (default 8)")
    ap.add_argument("--concurrency", type=int, default=32, help="part 1's replies in flight (default 32)")
    ap.add_argument("--conversations-2", type=int, default=1000,
                    help="conversations per channel in part 2 (default 1000: a busy channel; more than the 500 due"
                         " rows the delivery worker looks at per scan)")
    ap.add_argument("--rate", type=float, default=100.0, help="part 2's replies per second on each channel (100)")
    ap.add_argument("--seconds", type=float, default=15.0,
                    help="part 2's timed window (default 15: the server's default 10 s attempt timeout falls in it)")
    ap.add_argument("--warmup", type=float, default=3.0, help="part 2's untimed seconds before each window (3)")
    ap.add_argument("--settle", type=float, default=2.0, help="idle seconds before part 2's first run (2)")
    ap.add_argument("--outbound-concurrency", type=int, help="INBOX_OUTBOUND_CONCURRENCY (default: the server's, 4)")
    ap.add_argument("--outbound-timeout", type=float, help="INBOX_OUTBOUND_TIMEOUT_SECONDS (default: the server's, 10)")
    ap.add_argument("--no-pin", action="store_true", help="do not give the server a core of its own")
    ap.add_argument("--keep", action="store_true", help="keep the data directory")
    ap.add_argument("--data-dir", help="where to build the workspace (default: a new temporary directory)")
    ap.add_argument("--quick", action="store_true", help="1,500 deliveries, 5 s windows: ~25 s")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, 0.6 s windows: a run of seconds")
    ap.add_argument("--json", metavar="FILE", help="write the figures as JSON to FILE (see bench/README.md)")
    args = ap.parse_args()
    if args.quick:
        args.deliveries = min(args.deliveries, 1500)
        args.seconds, args.warmup, args.settle = min(args.seconds, 5.0), min(args.warmup, 1.0), min(args.settle, 1.0)
    if args.smoke:
        args.deliveries = min(args.deliveries, 80)
        args.channels, args.conversations, args.conversations_2 = 2, 2, 2
        args.concurrency = min(args.concurrency, 8)
        args.rate, args.seconds, args.warmup = min(args.rate, 40.0), min(args.seconds, 0.6), min(args.warmup, 0.2)
        args.settle = min(args.settle, 0.1)
    say(f"outbound bench: {len(USABLE)} cores usable ({os.cpu_count()} online), {platform.machine()}, "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}"
        + (" (smoke run: the figures mean nothing)" if args.smoke else ""))
    server_cpus = None
    if not args.no_pin and len(USABLE) >= 2 and hasattr(os, "sched_setaffinity"):
        server_cpus = {min(USABLE)}
        os.sched_setaffinity(0, USABLE - server_cpus)   # inherited by the receivers
    t_all = time.monotonic()
    work = Path(args.data_dir) if args.data_dir else Path(tempfile.mkdtemp(prefix="inbox-outbound-"))
    work.mkdir(parents=True, exist_ok=True)
    data_dir = work / "data"
    if data_dir.exists():
        shutil.rmtree(data_dir)
    env = server_env(args)
    try:
        rc = subprocess.run([sys.executable, "-m", "inbox", "init", "--data-dir", str(data_dir), "--email", ADMIN_EMAIL,
                             "--name", "Admin", "--workspace", "Bench"], cwd=ROOT, env=env, capture_output=True,
                            text=True)
        if rc.returncode:
            raise SystemExit(f"inbox init failed: {rc.stderr}")
        rport, oport, port = free_port(), free_port(), free_port()
        with Proc([sys.executable, __file__, "_receiver", str(rport)], rport, work / "receiver-live.log", env) as live, \
                Proc([sys.executable, __file__, "_receiver", str(oport)], oport, work / "receiver-a.log", env) as other, \
                Proc([sys.executable, "-m", "inbox", "serve", "--data-dir", str(data_dir), "--port", str(port)], port,
                     work / "server.log", env, server_cpus) as server:
            loop = new_loop()
            asyncio.set_event_loop(loop)
            try:
                checks, ok, info = loop.run_until_complete(run(args, server, live, other, data_dir / "inbox.sqlite3"))
            finally:
                loop.close()
    finally:
        if not args.keep and not args.data_dir:
            shutil.rmtree(work, ignore_errors=True)

    base, ours, lrun, drun = info["base"], info["ours"], info["live"], info["dead"]
    timeout = args.outbound_timeout or 10.0
    say("")
    say(f"Machine: {len(USABLE)} cores usable, Python {platform.python_version()}, SQLite {sqlite3.sqlite_version};"
        + (f" server pinned to CPU {min(server_cpus)}, receivers and agents on the others." if server_cpus
           else " not pinned: server, receivers and agents share every core."))
    say(f"Server settings: WAL, synchronous=FULL; INBOX_OUTBOUND_CONCURRENCY={args.outbound_concurrency or 4},"
        f" INBOX_OUTBOUND_TIMEOUT_SECONDS={timeout:g}" + (" (defaults)" if not (args.outbound_concurrency
                                                                                 or args.outbound_timeout) else ""))
    say("")
    say("Part 1: sustained delivery to a local provider")
    say("| run | replies | replies/s | server CPU | server CPU per reply | receivers + agents CPU | reply p50 | reply p99 |"
        " other processes |")
    say("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for title, r in (("internal conversations (nothing sent): first request to last 201", base),
                     (f"{args.channels} channels: first request to the receiver's last arrival", ours)):
        say(f"| {title} | {r['n']:,} | {r['rate']:,.0f} | {r['server_cpu'] / r['elapsed']:.0%} |"
            f" {r['cpu_per_op_us']:,.0f} us | {r['side_cpu'] / r['elapsed']:.0%} | {r['p50']:.1f} ms | {r['p99']:.1f} ms |"
            f" {r['others_cores']:.0%} |")
    ratio1 = ours["rate"] / base["rate"]
    say(f"Delivered {ours['rate']:,.0f} replies/s vs {base['rate']:,.0f} internal replies/s: ratio {ratio1:.2f}"
        f" (target >= 0.5); going out costs {ours['cpu_per_op_us'] - base['cpu_per_op_us']:,.0f} us of server CPU"
        f" per reply on top of {base['cpu_per_op_us']:,.0f} us. The agents had every channel reply acknowledged at"
        f" {ours['ack_rate']:,.0f}/s.")
    say("")
    say(f"Part 2: {args.rate:g} replies/s on each of channels A and B ({args.conversations_2:,} conversations each),"
        f" {args.seconds:g} s windows after {args.warmup:g} s of warm-up each")
    say("| A's provider | B reply p50 | B reply p99 | B reply max | A reply p99 | B 201-to-delivery p50 / p99 / max |"
        " B delivered in its window | server CPU | other processes |")
    say("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    (w1, w2) = lrun["windows"]
    for title, r in (("live, window 1", w1), ("live, window 2", w2), ("**live, both windows (baseline)**", lrun),
                     ("**dead, both windows** (never answers)", drun)):
        d = r["B"]["delivery"]
        say(f"| {title} | {r['B']['p50']:.1f} ms | {r['B']['p99']:.1f} ms | {r['B']['max']:.1f} ms |"
            f" {r['A']['p99']:.1f} ms | {d['p50']:,.1f} / {d['p99']:,.1f} / {d['max']:,.1f} ms |"
            f" {r['B']['delivered_in_window']:,} of {r['B']['n']:,} | {r['server_cores']:.0%} | {r['others_cores']:.0%} |")
    ratio2 = drun["B"]["p99"] / lrun["B"]["p99"]
    same = w2["B"]["p99"] / w1["B"]["p99"]
    say(f"B's reply p99 with A dead / with A live: {ratio2:.2f} (target <= 1.1); the same load twice with A live gave"
        f" {same:.2f} (window 2 / window 1: the noise between two identical windows).")
    say(f"While A hung, A took {drun['A_hung']:,} attempts that never got an answer and had {drun['A_queued']:,} replies"
        f" waiting in the outbox at the end; B's deliveries {'kept flowing' if drun['B_flowing'] else 'STALLED'}:"
        f" {drun['B_all']['n'] - drun['B_all']['missing']:,} of {drun['B_all']['n']:,} delivered"
        + (f" ({drun['B_all']['missing']:,} still waiting {drun['grace']:.0f} s after the window)"
           if drun["B_all"]["missing"] else "") + ", 201-to-delivery p99"
        f" {drun['B']['delivery']['p99']:,.1f} ms vs {lrun['B']['delivery']['p99']:,.1f} ms with A live.")
    say(f"Receivers: {info['verified']:,} signatures verified with the standardwebhooks library; {info['duplicates']:,}"
        f" requests repeated a webhook id already answered 200 (part 1: {ours['duplicates']:,}; part 2, A live:"
        f" {lrun['duplicates']:,}, A dead: {drun['duplicates']:,}). Total time {time.monotonic() - t_all:.1f} s")

    figures = [
        figure(f"outbound replies delivered/s to a local provider ({args.channels} channels)", round(ours["rate"]),
               round(base["rate"]), "replies/s", ">= 0.5", baseline_name="same replies, internal chats",
               deliveries=args.deliveries, concurrency=args.concurrency, ack_rate=round(ours["ack_rate"]),
               server_cpu_share=round(ours["server_cpu"] / ours["elapsed"], 3),
               repeated_webhook_ids=ours["duplicates"]),
        figure("server CPU per outbound reply delivered", round(ours["cpu_per_op_us"], 1),
               round(base["cpu_per_op_us"], 1), "us", "<= 2.0", baseline_name="per internal reply"),
        figure("reply p99 on a live channel with a dead provider on another", round(drun["B"]["p99"], 2),
               round(lrun["B"]["p99"], 2), "ms", "<= 1.1", baseline_name="both providers live",
               rate_per_channel=args.rate, window_seconds=args.seconds, samples=drun["B"]["n"],
               live_window_ratio=round(same, 3), p50_dead_ms=round(drun["B"]["p50"], 2),
               p50_live_ms=round(lrun["B"]["p50"], 2), dead_attempts_hung=drun["A_hung"],
               live_channel_kept_flowing=drun["B_flowing"]),
        figure("live channel's 201-to-delivery p99 with a dead provider on another",
               round(drun["B"]["delivery"]["p99"], 2), round(lrun["B"]["delivery"]["p99"], 2), "ms", "<= 2.0",
               baseline_name="both providers live", undelivered=drun["B_all"]["missing"],
               delivered_in_window=drun["B"]["delivered_in_window"], window_replies=drun["B"]["n"]),
    ]
    write_json(args.json, "outbound", figures, ok=ok, smoke=args.smoke)
    if not ok:
        return 1
    return 0 if all(f["met"] for f in figures) else 2


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_receiver":
        sys.exit(run_receiver(int(sys.argv[2])))
    sys.exit(main())
