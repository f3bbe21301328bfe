"""What every benchmark script needs: output, ports, loops, percentiles, CPU accounting, the
server's environment and a clean stop. Each script runs as ``python bench/<name>.py``, so this
directory is on ``sys.path`` and ``import common`` finds this file."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import socket
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def say(msg: str = "", end: str = "\n") -> None:
    print(msg, end=end, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop  # the server's loop (inbox/cli.py), so baselines and clients use it too
        return uvloop.new_event_loop()
    except ImportError:
        return asyncio.new_event_loop()


def pct(values, q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))] if s else float("nan")


def cpu_model() -> str:
    """The CPU's model name, for the machine line of a report."""
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cpus() -> set[int]:
    """The CPUs this process may run on (read it before pinning anything)."""
    try:
        return set(os.sched_getaffinity(0))
    except AttributeError:
        return set(range(os.cpu_count() or 1))


def cpu_seconds(stat_path: str) -> float | None:
    """User + system CPU seconds from a /proc/<pid>[/task/<tid>]/stat file; None if it is gone."""
    try:
        fields = Path(stat_path).read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except (OSError, IndexError, ValueError):
        return None


def schema_hash() -> str:
    """Part of every cached workspace's key: a migration change rebuilds it."""
    h = hashlib.sha256()
    for f in sorted((ROOT / "inbox/store/migrations").glob("*.sql")):
        h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()[:10]


def server_env(password: str, **settings: str) -> dict:
    """The environment of a benchmarked server: its defaults, quiet logs, cheap password hashing (only
    set-up signs in) and whatever the script adds."""
    env = dict(os.environ)
    env.update(INBOX_ARGON2_TIME_COST="1", INBOX_LOG_LEVEL="WARNING", INBOX_ADMIN_PASSWORD=password, **settings)
    return env


class Api:
    """The bench's HTTP client for the server under test: JSON calls with a bearer token, and login.
    Set-up only, never timed; any error status stops the bench with what the server said."""

    def __init__(self, session, base: str, password: str) -> None:
        self.s, self.base, self.password = session, base, password

    async def call(self, method: str, path: str, token: str | None = None, **kw):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.s.request(method, self.base + path, headers=headers, **kw) as r:
            body = await r.json(content_type=None)
            if r.status >= 300:
                raise SystemExit(f"{method} {path} -> {r.status}: {body}")
            return body

    async def login(self, email: str) -> tuple[str, int]:
        b = await self.call("POST", "/api/v1/auth/login", json={"email": email, "password": self.password})
        return b["token"], b["user"]["id"]


def stop(proc: subprocess.Popen) -> None:
    """Graceful stop (SIGINT), then kill after 20 s."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def start(argv: list[str], log: Path, health: str, env: dict, cpus: set[int] | None = None) -> subprocess.Popen:
    """Start a server child process (pinned to ``cpus`` if given) and wait until GET ``health`` is 200."""
    import time
    import urllib.request

    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=out,
                                preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"{argv[:4]} exited with {proc.returncode}; see {log}")
        try:
            with urllib.request.urlopen(health, timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"{argv[:4]} did not start within 30 s; see {log}")
        time.sleep(0.1)


# --- the result protocol (``--json FILE``), read by bench/suite.py ------------------------------

def target_met(target: str, value: float | None) -> bool:
    """``target`` is ``">= 0.8"``, ``"<= 1.3"`` or ``">= 1,000,000/s"``: an operator and a number."""
    import re

    if value is None or value != value:   # None or NaN
        return False
    op, rest = target.split(None, 1)
    number = float(re.match(r"[\d,.]+", rest.strip()).group().replace(",", ""))
    return value >= number if op == ">=" else value <= number


def figure(name: str, ours: float, baseline: float | None, unit: str, target: str, **details) -> dict:
    """One figure: ``ours`` against ``baseline`` measured in the same run. ``target`` applies to the
    ratio ours / baseline; with no baseline (an absolute target) it applies to ``ours``."""
    ratio = ours / baseline if baseline else None
    return {"figure": name, "ours": ours, "baseline": baseline, "unit": unit,
            "ratio": round(ratio, 3) if ratio is not None else None, "target": target,
            "met": target_met(target, ratio if baseline is not None else ours), **details}


def write_json(path: str | None, bench: str, figures: list[dict], *, ok: bool, smoke: bool = False, **extra) -> None:
    """``{"bench", "ok" (every check passed), "smoke", "figures": [...], ...}`` to ``path`` (if given)."""
    if not path:
        return
    import json

    Path(path).write_text(json.dumps({"bench": bench, "ok": ok, "smoke": smoke, "figures": figures, **extra},
                                     indent=1, default=str) + "\n")
    say(f"Figures written to {path}")
