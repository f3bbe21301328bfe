"""Benchmark: signed chat webhooks committed durably per second, next to a no-op aiohttp POST handler.

Two servers, each its own process, are driven by the same load generator (also its own process):

* a no-op aiohttp app (``bench/webhooks.py _noop``, uvloop like ``inbox serve``) that reads the
  body and answers 200 -- the ceiling for "an aiohttp POST handler" on this machine;
* ``inbox serve`` on a fresh workspace with its default SQLite settings (WAL, synchronous=FULL):
  every 2xx is sent after the delivery's transaction committed. It runs through a thin wrapper
  (``_inbox``) that calls ``inbox.cli.main(["serve", ...])`` unchanged and only counts the writer's
  batches (jobs per COMMIT), so group commit can be observed from outside.

The generator keeps ``--concurrency`` requests in flight on as many keep-alive connections, split
over ``--generators`` processes (raw HTTP/1.1 over asyncio protocols on uvloop, 22-37 us of CPU per
request, about half of what the no-op server spends; the run checks that it is not the bottleneck by
driving the no-op app with one and with two generator processes, and prints every process's CPU).
With two or more usable cores each server is pinned to the first core (its threads included) and
the generators to the others (``--no-pin`` to share all cores). Each request is signed like
``auth.signing.sign`` (checked against it at start) with a fresh provider id. The mix:
``--new-share`` (10%) of deliveries come from new senders (a contact, a lead, a conversation), the
rest from ``--senders`` known senders (seeded first, untimed) continuing their conversations; no
attachments. A second timed run adds one small distinct PNG to every delivery.

At the end the server is stopped and the database is checked: stored messages = 2xx answers with
distinct provider ids, the stored provider ids are exactly those, and contacts/leads/media grew by
what the generators counted.

    .venv/bin/python bench/webhooks.py                 # ~65 s
    .venv/bin/python bench/webhooks.py --quick         # 3 s windows, ~25 s
    .venv/bin/python bench/webhooks.py --concurrency 128 --seconds 15 --no-attachments

Exit status: 0 when the database matches the answers and the ratio is at least 0.5 (issue 7's
target), 2 when it matches but the ratio is under 0.5, 1 when the check found a mismatch.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import base64
import hashlib
import hmac
import json
import os
import platform
import random
import shutil
import socket
import sqlite3
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path
from typing import Any

import common
from common import ROOT, cpu_seconds, figure, free_port, new_loop, pct, say, start, stop, usable_cpus, write_json

sys.path.insert(0, str(ROOT))

ADMIN_EMAIL = "admin@bench.example"
PASSWORD = "bench-correct-horse-battery"
TEXTS = [
    "Hi! Is the blue one still available?",
    "Thanks, that works for me.",
    "Can you send me the price list for next month, including delivery to Rotterdam?",
    "ok",
    "What time do you open on Saturday? I would like to come by with my colleague and look at the samples.",
    "Order #48213 has not arrived yet, the tracking page says it left the warehouse on Monday.",
    "Great, see you tomorrow 👍",
    "Could you call me back after 3pm? My number is the one I'm writing from.",
]


TEXTS_JSON = [json.dumps(t) for t in TEXTS]


USABLE = usable_cpus()   # taken before main() pins this process (and so the generators) to the other cores


def cores() -> int:
    return len(USABLE)


# --- the no-op server ------------------------------------------------------------------------

def run_noop(port: int) -> int:
    """The reference: an aiohttp app whose POST handler reads the body and answers 200."""
    from aiohttp import web

    async def hook(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=b'{"ok":true}', content_type="application/json")

    app = web.Application()
    app.router.add_post("/hooks/chat/{channel}", hook)
    app.router.add_get("/healthz", lambda r: hook(r))
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None, loop=new_loop())
    return 0


# --- the inbox server, with the writer's batches counted ------------------------------------

def run_inbox(data_dir: str, port: int, stats_path: str) -> int:
    """``inbox serve`` unchanged, plus a counter of the writer's batches written to a file every 50 ms."""
    from inbox.cli import main
    from inbox.store import db as dbmod

    stats: dict[str, Any] = {"commits": 0, "jobs": 0, "batches": 0, "hist": {}}
    original = dbmod.Database._run_batch

    async def counted(self, conn, batch):
        await original(self, conn, batch)
        stats["batches"] += 1
        stats["jobs"] += len(batch)
        stats["commits"] = self.commits
        stats["hist"][len(batch)] = stats["hist"].get(len(batch), 0) + 1

    dbmod.Database._run_batch = counted

    def dump() -> None:
        tmp = stats_path + ".tmp"
        while True:
            snapshot = {**stats, "hist": dict(stats["hist"])}
            with open(tmp, "w") as f:
                json.dump(snapshot, f)
            os.replace(tmp, stats_path)
            time.sleep(0.05)

    threading.Thread(target=dump, daemon=True).start()
    return main(["serve", "--data-dir", data_dir, "--port", str(port)])


# --- the load generator ----------------------------------------------------------------------

def tiny_png(n: int) -> bytes:
    """A valid 8x8 RGB PNG whose pixels depend on ``n`` (distinct files: no content-address dedupe)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    pixels = b"".join(hashlib.sha256(f"{n}.{i}".encode()).digest() for i in range(6))  # 192 bytes = 8x8 RGB
    raw = b"".join(b"\x00" + pixels[24 * y:24 * (y + 1)] for y in range(8))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


class _Conn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection with at most one request in flight."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.waiter: asyncio.Future | None = None
        self.transport: asyncio.Transport | None = None
        self.closed = False

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        w = self.waiter
        if w is None or w.done():
            return
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buf[:end]).lower()
        i = head.find(b"\r\ncontent-length:")
        if i < 0:
            w.set_exception(ConnectionError("response without Content-Length"))
            return
        j = head.find(b"\r\n", i + 2)
        length = int(head[i + 17:j if j > 0 else None])
        total = end + 4 + length
        if len(self.buf) < total:
            return
        status = int(head[9:12])
        body = bytes(self.buf[end + 4:total])
        del self.buf[:total]
        w.set_result((status, body))

    def connection_lost(self, exc) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection lost"))


class Generator:
    def __init__(self, spec: dict) -> None:
        self.spec = spec
        self.host, self.port, self.path = spec["host"], spec["port"], spec["path"]
        self.secret = spec["secret"].encode()
        self.rng = random.Random(spec["seed"])
        self.n = 0
        self.new = 0
        self.lat = array.array("d")
        self.in_window = 0
        self.statuses: dict[int, int] = {}
        self.acked: list[str] = []
        self.new_acked = 0
        self.attach_acked = 0
        self.errors = 0
        self.samples: list[str] = []
        self.cpu: list[float] = []
        self.mac = hmac.new(self.secret, digestmod=hashlib.sha256)
        self.stamp_at, self.stamp = 0, b""
        self._check_signature()

    def _check_signature(self) -> None:
        """The fast path in build() must sign exactly like auth.signing.sign (what the server checks)."""
        from auth.signing import sign

        saved = (self.n, self.new, self.rng.getstate())
        _, _, request = self.build()
        self.n, self.new = saved[0], saved[1]
        self.rng.setstate(saved[2])
        head, raw = request.split(b"\r\n\r\n", 1)
        headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n")[1:])
        json.loads(raw)
        if headers["X-Inbox-Signature"] != sign(self.spec["secret"], headers["X-Inbox-Timestamp"], raw):
            raise SystemExit("the generator's signature differs from auth.signing.sign")

    def build(self) -> tuple[str, bool, bytes] | None:
        """The next signed request. Cheap on purpose (~5 us): the generator must not be the bottleneck."""
        sp = self.spec
        n = self.n
        if sp["mode"] == "seed":
            if n >= len(sp["handles"]):
                return None
            handle, is_new = sp["handles"][n], True
        elif self.rng.random() < sp["new_share"]:
            handle, is_new = f"+447{sp['run']}{sp['gen']}{self.new:07d}", True
            self.new += 1
        else:
            handle, is_new = f"+4470{self.rng.randrange(sp['senders']):07d}", False
        self.n += 1
        pid = f"{sp['prefix']}-{n}"
        attachment = ""
        if sp["attach"]:
            data = base64.b64encode(tiny_png(n * 1_000_003 + sp["run"] * 7919 + sp["gen"])).decode()
            attachment = f',"attachments":[{{"name":"photo-{pid}.png","data":"{data}"}}]'
        # Handles, ids and names are plain ASCII; the texts are JSON-encoded once (TEXTS_JSON).
        raw = (f'{{"id":"{pid}","from":{{"handle":"{handle}","name":"Customer {handle[-7:]}"}},'
               f'"text":{TEXTS_JSON[n % len(TEXTS_JSON)]}{attachment}}}').encode()
        now = int(time.time())
        if now != self.stamp_at:
            self.stamp_at, self.stamp = now, str(now).encode()
        mac = self.mac.copy()
        mac.update(self.stamp + b"." + raw)
        head = (f"POST {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(raw)}\r\nX-Inbox-Timestamp: {now}\r\n"
                f"X-Inbox-Signature: sha256={mac.hexdigest()}\r\n\r\n").encode()
        return pid, is_new, head + raw

    async def connect(self) -> _Conn:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(_Conn, self.host, self.port)
        conn.transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    async def worker(self) -> None:
        loop = asyncio.get_running_loop()
        clock = time.perf_counter
        conn = await self.connect()
        try:
            while clock() < self.stop_at:
                item = self.build()
                if item is None:
                    return
                pid, is_new, request = item
                fut = loop.create_future()
                conn.waiter = fut
                t0 = clock()
                conn.transport.write(request)
                try:
                    status, body = await fut
                except ConnectionError as exc:
                    self.errors += 1
                    if len(self.samples) < 5:
                        self.samples.append(f"{pid}: {exc}")
                    conn = await self.connect()
                    continue
                t1 = clock()
                self.statuses[status] = self.statuses.get(status, 0) + 1
                if status in (200, 201):
                    self.acked.append(pid)
                    if status == 201:
                        self.new_acked += is_new
                        self.attach_acked += bool(self.spec["attach"])
                elif len(self.samples) < 5:
                    self.samples.append(f"{pid}: HTTP {status} {body[:300]!r}")
                if self.win_start <= t1 < self.win_end:
                    self.in_window += 1
                    self.lat.append((t1 - t0) * 1000)
                if conn.closed:
                    conn = await self.connect()
        finally:
            if conn.transport is not None:
                conn.transport.close()

    async def run(self) -> dict:
        sp = self.spec
        loop = asyncio.get_running_loop()
        # The parent gives wall-clock instants so that several generators share one window.
        offset = time.perf_counter() - time.time()
        start = sp["start_at"] + offset
        self.win_start = start + sp["warmup"]
        self.win_end = self.win_start + sp["seconds"]
        self.stop_at = self.win_end if sp["mode"] != "seed" else float("inf")
        await asyncio.sleep(max(0.0, start - time.perf_counter()))
        loop.call_at(loop.time() + (self.win_start - time.perf_counter()), lambda: self.cpu.append(time.process_time()))
        loop.call_at(loop.time() + (self.win_end - time.perf_counter()), lambda: self.cpu.append(time.process_time()))
        t = time.perf_counter()
        await asyncio.gather(*(self.worker() for _ in range(sp["concurrency"])))
        elapsed = time.perf_counter() - t
        Path(sp["out"] + ".lat").write_bytes(self.lat.tobytes())
        Path(sp["out"] + ".ids").write_text("\n".join(self.acked))
        return {"in_window": self.in_window, "sent": self.n, "elapsed": elapsed, "statuses": self.statuses,
                "errors": self.errors, "samples": self.samples, "acked": len(self.acked),
                "new_acked": self.new_acked, "attach_acked": self.attach_acked,
                "cpu_window": (self.cpu[1] - self.cpu[0]) if len(self.cpu) == 2 else None,
                "cpu_total": time.process_time()}


def run_generator(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    loop = new_loop()
    asyncio.set_event_loop(loop)
    result = loop.run_until_complete(Generator(spec).run())
    Path(spec["out"] + ".json").write_text(json.dumps(result))
    return 0


# --- process CPU from /proc ------------------------------------------------------------------



def cpu_of(pid: int) -> tuple[float | None, float | None]:
    """(whole process, main thread) CPU seconds; the main thread is the event loop's."""
    return cpu_seconds(f"/proc/{pid}/stat"), cpu_seconds(f"/proc/{pid}/task/{pid}/stat")


# --- orchestration ---------------------------------------------------------------------------

def server_env() -> dict:
    env = common.server_env(PASSWORD, INBOX_ARGON2_MEMORY_KIB="8192")
    env.pop("INBOX_SQLITE_SYNCHRONOUS", None)  # the default (FULL) is what is measured
    return env


class Proc:
    """A server child process (the no-op app or inbox) that is up once /healthz answers."""

    def __init__(self, argv: list[str], port: int, log: Path, cpus: set[int] | None = None) -> None:
        self.argv, self.port, self.log, self.cpus = argv, port, log, cpus
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Proc:
        self.proc = start(self.argv, self.log, f"http://127.0.0.1:{self.port}/healthz", server_env(), self.cpus)
        return self

    def __exit__(self, *exc) -> None:
        assert self.proc is not None
        stop(self.proc)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


def read_stats(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def load(label: str, server: Proc, *, path: str, secret: str, gens: int, concurrency: int, warmup: float,
         seconds: float, work: Path, mode: str = "mix", handles: list[str] | None = None, senders: int = 0,
         new_share: float = 0.0, attach: bool = False, stats: Path | None = None, run: int = 9) -> dict:
    """Run ``gens`` generator processes against ``server``; return the merged figures."""
    start_at = time.time() + 1.0  # time for the generators to start and connect
    procs, outs = [], []
    for g in range(gens):
        out = work / f"{label}-g{g}"
        spec = {"host": "127.0.0.1", "port": server.port, "path": path, "secret": secret, "gen": g, "run": run,
                "prefix": f"{label}-g{g}", "seed": zlib.crc32(f"{label}-{g}".encode()), "mode": mode,
                "concurrency": max(1, concurrency // gens), "start_at": start_at, "warmup": warmup,
                "seconds": seconds, "senders": senders, "new_share": new_share, "attach": attach,
                "handles": (handles or [])[g::gens], "out": str(out)}
        (work / f"{label}-g{g}.spec").write_text(json.dumps(spec))
        procs.append(subprocess.Popen([sys.executable, __file__, "_gen", str(work / f"{label}-g{g}.spec")], cwd=ROOT))
        outs.append(out)
    snap: dict[str, Any] = {}
    if mode != "seed":
        win_start, win_end = start_at + warmup, start_at + warmup + seconds
        time.sleep(max(0.0, win_start - time.time()))
        snap["cpu0"] = cpu_of(server.pid)
        snap["stats0"] = read_stats(stats) if stats else None
        while time.time() < win_end:
            time.sleep(min(1.0, max(0.0, win_end - time.time())))
            s = read_stats(stats) if stats else None
            s0 = snap["stats0"]
            progress = (f", {s['jobs'] - s0['jobs']:,} jobs in {s['commits'] - s0['commits']:,} commits"
                        if s and s0 else "")
            say(f"\r  {label}: {min(seconds, time.time() - win_start):4.1f}/{seconds:g} s{progress}   ", end="")
        snap["cpu1"] = cpu_of(server.pid)
        snap["stats1"] = read_stats(stats) if stats else None
        say("")
    for p in procs:
        if p.wait(timeout=120):
            raise SystemExit(f"generator for {label} failed with {p.returncode}")
    results = [json.loads(Path(str(o) + ".json").read_text()) for o in outs]
    lat = array.array("d")
    ids: list[str] = []
    for o in outs:
        lat.frombytes(Path(str(o) + ".lat").read_bytes())
        text = Path(str(o) + ".ids").read_text()
        ids += text.split("\n") if text else []
    statuses: dict[str, int] = {}
    for r in results:
        for k, v in r["statuses"].items():
            statuses[k] = statuses.get(k, 0) + v
    res = {"label": label, "gens": gens, "concurrency": concurrency, "seconds": seconds, "statuses": statuses,
           "errors": sum(r["errors"] for r in results), "samples": [s for r in results for s in r["samples"]],
           "acked_ids": ids, "new_acked": sum(r["new_acked"] for r in results),
           "attach_acked": sum(r["attach_acked"] for r in results), "sent": sum(r["sent"] for r in results),
           "elapsed": max(r["elapsed"] for r in results)}
    if mode != "seed":
        n = sum(r["in_window"] for r in results)
        res.update(rps=n / seconds, n=n, p50=pct(lat, 0.5), p99=pct(lat, 0.99),
                   mean=statistics.fmean(lat) if lat else 0)
        (c0, m0), (c1, m1) = snap["cpu0"], snap["cpu1"]
        res["server_cpu"] = (c1 - c0) / seconds if c0 is not None and c1 is not None else None
        res["loop_cpu"] = (m1 - m0) / seconds if m0 is not None and m1 is not None else None
        res["gen_cpu"] = [(r["cpu_window"] or 0) / seconds for r in results]
        s0, s1 = snap["stats0"], snap["stats1"]
        if s0 and s1:
            commits = s1["commits"] - s0["commits"]
            jobs = s1["jobs"] - s0["jobs"]
            hist = {int(k): v - s0["hist"].get(k, 0) for k, v in s1["hist"].items()}
            sizes = sorted((k for k, v in hist.items() for _ in range(v)))
            res.update(commits=commits, commits_per_s=commits / seconds,
                       jobs_per_commit=jobs / commits if commits else 0,
                       batch_p50=pct(sizes, 0.5) if sizes else 0, batch_max=max(sizes) if sizes else 0)
    bad = {k: v for k, v in statuses.items() if k not in ("200", "201")}
    if bad or res["errors"]:
        say(f"  {label}: non-2xx {bad}, connection errors {res['errors']}; e.g. {res['samples'][:3]}")
    return res


def fsync_baseline(directory: Path, seconds: float) -> float:
    """Sequential one-row transactions with the server's settings (WAL, synchronous=FULL): the disk's
    commit rate without any batching. Group commit is what lets the server go past it."""
    path = directory / "fsync.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    n, t = 0, time.perf_counter()
    while time.perf_counter() - t < seconds:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t (v) VALUES (?)", ("x" * 100,))
        conn.execute("COMMIT")
        n += 1
    rate = n / (time.perf_counter() - t)
    conn.close()
    return rate


def cpu_capacity(seconds: float) -> float:
    """How many cores two busy processes get together (a VM's vCPUs may share less than that)."""
    code = (f"import time\nt=time.perf_counter()\nwhile time.perf_counter()-t<{seconds!r}: pass\n"
            "print(time.process_time())")
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                              preexec_fn=lambda: os.sched_setaffinity(0, USABLE)) for _ in range(2)]
    used = sum(float(p.communicate()[0]) for p in procs)
    return used / seconds


def api(base: str, method: str, path: str, token: str | None = None, body: Any = None) -> Any:
    import urllib.request

    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, method=method, data=data,
                                 headers={"Content-Type": "application/json",
                                          **({"Authorization": f"Bearer {token}"} if token else {})})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def counts(db_path: Path) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                for t in ("messages", "inbound_ids", "contacts", "leads", "conversations", "media", "events")}
    finally:
        conn.close()


def row(r: dict, ref: float | None) -> str:
    ratio = f"{r['rps'] / ref:.2f}" if ref else "1.00"
    commits = (f"{r['commits_per_s']:,.0f}/s, {r['jobs_per_commit']:.1f} jobs/commit (p50 {r['batch_p50']},"
               f" max {r['batch_max']})" if "commits" in r else "-")
    gen = " + ".join(f"{c:.0%}" for c in r["gen_cpu"])
    srv = (f"{r['server_cpu']:.0%} ({r['loop_cpu']:.0%} loop), {r['server_cpu'] / r['rps'] * 1e6:,.0f} us/req"
           if r.get("server_cpu") is not None and r.get("loop_cpu") is not None and r["rps"] else "?")
    return (f"| {r['title']} | {r['gens']} | {r['concurrency']} | {r['rps']:,.0f} | {r['p50']:.2f} ms | "
            f"{r['p99']:.2f} ms | {ratio} | {srv} | {gen} | {commits} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="timed window of each run (default 10)")
    ap.add_argument("--warmup", type=float, default=2.0, help="untimed seconds before each window (default 2)")
    ap.add_argument("--concurrency", type=int, default=64, help="requests in flight (default 64)")
    ap.add_argument("--generators", type=int, default=2,
                    help="generator processes for the timed runs (default 2); the no-op is also driven by 1")
    ap.add_argument("--senders", type=int, default=2000, help="known senders seeded before timing (default 2000)")
    ap.add_argument("--new-share", type=float, default=0.1, help="share of deliveries from new senders (0.1)")
    ap.add_argument("--no-attachments", action="store_true", help="skip the run with a small PNG per delivery")
    ap.add_argument("--quick", action="store_true", help="3 s windows, 300 senders: a smoke run")
    ap.add_argument("--no-pin", action="store_true", help="do not give the server a core of its own")
    ap.add_argument("--keep", action="store_true", help="keep the data directory")
    ap.add_argument("--data-dir", help="where to build the workspace (default: a new temporary directory)")
    ap.add_argument("--smoke", action="store_true", help="0.5 s windows, 30 senders: a run of seconds")
    ap.add_argument("--json", metavar="FILE", help="write issue 7's figure as JSON to FILE (see bench/README.md)")
    args = ap.parse_args()
    probe = 0.2 if args.smoke else 1.0   # seconds of the disk and CPU probes
    if args.smoke:
        args.seconds, args.warmup = min(args.seconds, 0.5), min(args.warmup, 0.2)
        if args.senders == ap.get_default("senders"):
            args.senders = 30
    if args.quick:
        args.seconds, args.warmup = min(args.seconds, 3.0), min(args.warmup, 1.0)
        if args.senders == ap.get_default("senders"):
            args.senders = 300
    say(f"webhooks bench: {cores()} cores usable ({os.cpu_count()} online), {platform.machine()}, "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}; {args.concurrency} in flight, "
        f"{args.seconds:g} s windows after {args.warmup:g} s warm-up")
    server_cpus = None
    if not args.no_pin and len(USABLE) >= 2 and hasattr(os, "sched_setaffinity"):
        server_cpus = {min(USABLE)}
        os.sched_setaffinity(0, USABLE - server_cpus)   # inherited by the generator processes
    t_all = time.perf_counter()
    work = Path(args.data_dir) if args.data_dir else Path(tempfile.mkdtemp(prefix="inbox-webhooks-"))
    work.mkdir(parents=True, exist_ok=True)
    data_dir = work / "data"
    if data_dir.exists():
        shutil.rmtree(data_dir)
    runs: list[dict] = []
    common = {"concurrency": args.concurrency, "warmup": args.warmup, "seconds": args.seconds, "work": work}
    try:
        disk = fsync_baseline(work, probe)
        say(f"Disk: {disk:,.0f} sequential one-row commits/s (WAL, synchronous=FULL) in {work}")
        capacity = cpu_capacity(probe)
        say(f"CPU: two busy processes get {capacity:.2f} cores together (a shared VM gives less than its core count)")

        noop_port = free_port()
        say("No-op aiohttp POST handler")
        with Proc([sys.executable, __file__, "_noop", str(noop_port)], noop_port, work / "noop.log",
                  server_cpus) as noop:
            for gens in (1, max(2, args.generators)):
                r = load(f"noop{gens}", noop, path="/hooks/chat/1", secret="whsec_noop", gens=gens,
                         senders=args.senders, new_share=args.new_share, **common)
                r["title"] = "no-op aiohttp POST"
                runs.append(r)
        ref = max(r["rps"] for r in runs)

        rc = subprocess.run([sys.executable, "-m", "inbox", "init", "--data-dir", str(data_dir), "--email", ADMIN_EMAIL,
                             "--name", "Admin", "--workspace", "Bench"], cwd=ROOT, env=server_env(),
                            capture_output=True, text=True)
        if rc.returncode:
            raise SystemExit(f"inbox init failed: {rc.stderr}")
        port = free_port()
        stats = work / "writer-stats.json"
        say("inbox serve (WAL, synchronous=FULL; 2xx after COMMIT)")
        with Proc([sys.executable, __file__, "_inbox", str(data_dir), str(port), str(stats)], port,
                  work / "inbox.log", server_cpus) as srv:
            base = f"http://127.0.0.1:{port}"
            token = api(base, "POST", "/api/v1/auth/login", body={"email": ADMIN_EMAIL, "password": PASSWORD})["token"]
            pipeline = api(base, "POST", "/api/v1/pipelines", token, {"name": "Chats", "stages": ["New", "Talking"]})
            channel = api(base, "POST", "/api/v1/channels", token, {"name": "WhatsApp", "pipeline_id": pipeline["id"]})
            hook = f"/hooks/chat/{channel['id']}"
            before = counts(data_dir / "inbox.sqlite3")
            t = time.perf_counter()
            seed = load("seed", srv, path=hook, secret=channel["secret"], gens=1, mode="seed",
                        handles=[f"+4470{i:07d}" for i in range(args.senders)], **common)
            say(f"  seeded {len(seed['acked_ids']):,} known senders (contact, lead, conversation each) in "
                f"{time.perf_counter() - t:.1f} s")
            timed = [("inbox", "inbox, text only", False)]
            if not args.no_attachments:
                timed.append(("attach", "inbox, + 1 small PNG", True))
            inbox_runs = [seed]
            for k, (label, title, attach) in enumerate(timed):
                # New senders' handles are +447<run><generator><n>: distinct from the known +4470... ones.
                r = load(label, srv, path=hook, secret=channel["secret"], gens=args.generators, senders=args.senders,
                         new_share=args.new_share, attach=attach, stats=stats, run=k + 1, **common)
                r["title"] = title
                runs.append(r)
                inbox_runs.append(r)
        # The server is stopped: check what it acknowledged against what it stored.
        after = counts(data_dir / "inbox.sqlite3")
        acked = [i for r in inbox_runs for i in r["acked_ids"]]
        created = sum(r["statuses"].get("201", 0) for r in inbox_runs)
        conn = sqlite3.connect(f"file:{data_dir / 'inbox.sqlite3'}?mode=ro", uri=True)
        stored = {p for (p,) in conn.execute("SELECT provider_id FROM inbound_ids WHERE channel_id = ?",
                                             (channel["id"],))}
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        conn.close()
        new_contacts = sum(r["new_acked"] for r in inbox_runs)
        checks = [
            ("stored messages = 2xx answers with distinct provider ids",
             after["messages"] - before["messages"], len(set(acked))),
            ("every answer was 201 (no id was sent twice)", created, len(acked)),
            ("stored provider ids = acknowledged ids", len(stored ^ set(acked)), 0),
            ("new contacts = 201s from new senders", after["contacts"] - before["contacts"], new_contacts),
            ("new leads = new contacts", after["leads"] - before["leads"], new_contacts),
            ("media rows = 201s with an attachment", after["media"] - before["media"],
             sum(r["attach_acked"] for r in inbox_runs)),
        ]
        capacity_after = cpu_capacity(probe)
    finally:
        if not args.keep and not args.data_dir:
            shutil.rmtree(work, ignore_errors=True)

    say("")
    say(f"Machine: {cores()} cores usable, Python {platform.python_version()}, SQLite {sqlite3.sqlite_version},"
        f" {platform.system()} {platform.release()}; journal_mode={mode}, synchronous=FULL (the default);"
        f" disk: {disk:,.0f} one-row commits/s; two busy processes get {capacity:.2f} cores.")
    say(f"Each server pinned to CPU {min(server_cpus)} (its SQLite and thread-pool threads too); generators on the"
        " others." if server_cpus else "Not pinned (--no-pin): servers and generators share every core.")
    say(f"Load: {args.concurrency} requests in flight on keep-alive connections, signed, {args.seconds:g} s window"
        f" after {args.warmup:g} s warm-up; {args.new_share:.0%} new senders, the rest from {args.senders:,} known.")
    say("")
    say("| server | generators | in flight | requests/s | p50 | p99 | ratio to no-op | server CPU (event loop), per"
        " request | generator CPU | commits |")
    say("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in runs:
        say(row(r, ref if r["title"] != "no-op aiohttp POST" else None))
    say("")
    n1, n2 = runs[0]["rps"], runs[1]["rps"]
    say(f"Generator check: no-op driven by {runs[1]['gens']} generator processes {n2:,.0f}/s vs 1: {n1:,.0f}/s"
        f" ({n2 / n1 - 1:+.0%}); one generator used {runs[0]['gen_cpu'][0]:.0%} of a core for {n1:,.0f}/s"
        f" ({runs[0]['gen_cpu'][0] / n1 * 1e6:.0f} us/request). Reference = the higher no-op figure.")
    say(f"CPU available: two busy processes got {capacity:.2f} cores before the runs and {capacity_after:.2f} after"
        " (a shared VM: figures move with its neighbours).")
    main_ratio = runs[2]["rps"] / ref
    say(f"Ratio, signed durable webhooks (text) / no-op: {main_ratio:.2f}  (issue 7 target: >= 0.5)")
    say("")
    ok = True
    say("Verification (server stopped, database read directly):")
    for what, got, want in checks:
        good = got == want
        ok &= good
        say(f"  [{'ok' if good else 'FAIL'}] {what}: {got:,} vs {want:,}")
    errors = sum(r["errors"] for r in runs + inbox_runs)
    if errors:
        say(f"  [FAIL] {errors} requests without an answer")
        ok = False
    say(f"Total time {time.perf_counter() - t_all:.1f} s")
    text = runs[2]
    extra = {"attachments_rps": round(runs[3]["rps"])} if len(runs) > 3 else {}
    write_json(args.json, "webhooks", [figure(
        "signed chat webhooks committed durably/s", round(text["rps"]), round(ref), "requests/s", ">= 0.5",
        baseline_name="no-op aiohttp POST", p50_ms=round(text["p50"], 2), p99_ms=round(text["p99"], 2),
        concurrency=args.concurrency, **extra)], ok=ok, smoke=args.smoke)
    return 1 if not ok else 0 if main_ratio >= 0.5 else 2


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_noop":
        sys.exit(run_noop(int(sys.argv[2])))
    if len(sys.argv) > 1 and sys.argv[1] == "_inbox":
        sys.exit(run_inbox(sys.argv[2], int(sys.argv[3]), sys.argv[4]))
    if len(sys.argv) > 1 and sys.argv[1] == "_gen":
        sys.exit(run_generator(sys.argv[2]))
    sys.exit(main())
