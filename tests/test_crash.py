"""A burst of signed webhooks while the server is killed with SIGKILL: every delivery that got a 2xx
is stored after the restart, and sending all of them again creates no duplicate (SPEC section 5)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import sys
import time

import aiohttp
import pytest

from test_cli import free_port, run

from auth.signing import sign

PASSWORD = "crash-admin-pass-1"
ENV = {"INBOX_ADMIN_PASSWORD": PASSWORD, "INBOX_ARGON2_TIME_COST": "1", "INBOX_ARGON2_MEMORY_KIB": "1024"}
N = 300


async def start(data_dir, port, env: dict | None = None) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "inbox", "serve", "--data-dir", str(data_dir), "--port", str(port),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, env={**os.environ, **ENV, **(env or {})})
    async with aiohttp.ClientSession() as http:
        for _ in range(200):
            try:
                async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                    if r.status == 200:
                        return proc
            except aiohttp.ClientError:
                await asyncio.sleep(0.05)
    raise AssertionError("the server did not start")


async def post(http, url, secret, i):
    body = json.dumps({"id": f"msg-{i}", "from": {"handle": f"+1555{i % 7:04d}"}, "text": f"hello {i}"}).encode()
    stamp = str(int(time.time()))
    try:
        async with http.post(url, data=body, headers={"X-Inbox-Timestamp": stamp,
                                                      "X-Inbox-Signature": sign(secret, stamp, body)}) as r:
            await r.read()
            return i, r.status
    except (TimeoutError, aiohttp.ClientError):
        return i, None  # no answer: the sender cannot know, and will retry


@pytest.mark.timeout(120)
async def test_acknowledged_webhooks_survive_sigkill_and_retries_do_not_duplicate(tmp_path):
    code, _, err = await run("init", "--data-dir", str(tmp_path), "--email", "root@example.com", "--name", "Root",
                             env=ENV)
    assert code == 0, err
    port = free_port()
    proc = await start(tmp_path, port)
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/api/v1/auth/login", json={"email": "root@example.com",
                                                                 "password": PASSWORD}) as r:
            token = (await r.json())["token"]
        auth = {"Authorization": f"Bearer {token}"}
        async with http.post(f"{base}/api/v1/pipelines", json={"name": "In", "stages": ["New"]}, headers=auth) as r:
            pipeline = (await r.json())["id"]
        async with http.post(f"{base}/api/v1/channels", json={"name": "WA", "pipeline_id": pipeline},
                             headers=auth) as r:
            channel = await r.json()
    url = f"{base}/hooks/chat/{channel['id']}"
    acknowledged: set[int] = set()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        queue = list(range(N))

        async def sender():
            while queue:
                i, status = await post(http, url, channel["secret"], queue.pop(0))
                if status in (200, 201):
                    acknowledged.add(i)

        workers = [asyncio.create_task(sender()) for _ in range(16)]
        while len(acknowledged) < N // 3:  # kill mid-burst
            await asyncio.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        await asyncio.gather(*workers)
    assert N // 3 <= len(acknowledged) < N
    # After the restart every acknowledged message is there.
    proc = await start(tmp_path, port)
    try:
        with sqlite3.connect(tmp_path / "inbox.sqlite3") as db:
            stored = {int(p.split("-")[1]) for (p,) in db.execute("SELECT provider_id FROM inbound_ids")}
            texts = [t for (t,) in db.execute("SELECT text FROM messages")]
        assert acknowledged <= stored
        assert len(texts) == len(set(texts)) == len(stored)
        # The sender retries everything: nothing is stored twice, and every answer is a 2xx.
        async with aiohttp.ClientSession() as http:
            replies = await asyncio.gather(*(post(http, url, channel["secret"], i) for i in range(N)))
        assert all(status in (200, 201) for _, status in replies)
        assert {i for i, status in replies if status == 200} == stored
        with sqlite3.connect(tmp_path / "inbox.sqlite3") as db:
            texts = [t for (t,) in db.execute("SELECT text FROM messages")]
            contacts = db.execute("SELECT count(*) FROM contacts").fetchone()[0]
        assert sorted(texts) == sorted(f"hello {i}" for i in range(N))
        assert contacts == 7  # one per sender handle, however the burst was cut
    finally:
        proc.terminate()
        await proc.wait()
