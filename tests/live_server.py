"""The real server in a subprocess (``inbox init`` then ``inbox serve``), for tests that need what an
in-process server cannot give: its own umask, its own filesystem, its log lines on stderr."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

import aiohttp

from test_cli import free_port

from auth.signing import sign

PASSWORD = "live-admin-pass-1"
ENV = {"INBOX_ADMIN_PASSWORD": PASSWORD, "INBOX_ARGON2_TIME_COST": "1", "INBOX_ARGON2_MEMORY_KIB": "1024"}


class LiveServer:
    def __init__(self, data_dir: Path, log_path: Path, *, umask: int = 0o022, env: dict | None = None) -> None:
        self.data_dir, self.log_path, self.umask = data_dir, log_path, umask
        self.env = {**os.environ, **ENV, **(env or {})}
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: asyncio.subprocess.Process | None = None
        self.token = ""

    def _preexec(self) -> None:
        os.umask(self.umask)

    async def _cli(self, *args: str) -> None:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "inbox", *args, "--data-dir", str(self.data_dir), env=self.env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, preexec_fn=self._preexec)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()

    async def start(self) -> None:
        if not (self.data_dir / "inbox.sqlite3").exists():
            await self._cli("init", "--email", "root@example.com", "--name", "Root")
        log = open(self.log_path, "ab")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "inbox", "serve", "--data-dir", str(self.data_dir), "--port", str(self.port),
            stdout=asyncio.subprocess.DEVNULL, stderr=log, env=self.env, preexec_fn=self._preexec)
        log.close()
        async with aiohttp.ClientSession() as http:
            for _ in range(300):
                try:
                    async with http.get(f"{self.base}/healthz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.05)
            else:
                raise AssertionError("the server did not start: " + self.log_path.read_text()[-2000:])
            async with http.post(f"{self.base}/api/v1/auth/login",
                                 json={"email": "root@example.com", "password": PASSWORD}) as r:
                assert r.status == 200, await r.text()
                self.token = (await r.json())["token"]

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            await self.proc.wait()

    async def request(self, method: str, path: str, **kwargs) -> tuple[int, dict, object]:
        """(status, headers, JSON body or text) of one call as the administrator."""
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        async with aiohttp.ClientSession() as http:
            async with http.request(method, self.base + path, headers=headers, **kwargs) as r:
                text = await r.text()
                body = json.loads(text) if "json" in r.headers.get("Content-Type", "") else text
                return r.status, dict(r.headers), body

    async def channel(self) -> dict:
        status, _, pipeline = await self.request("POST", "/api/v1/pipelines", json={"name": "In", "stages": ["New"]})
        assert status == 201, pipeline
        status, _, channel = await self.request("POST", "/api/v1/channels",
                                                json={"name": "WA", "pipeline_id": pipeline["id"]})
        assert status == 201, channel
        return channel

    async def deliver(self, channel: dict, payload: dict) -> tuple[int, dict, object]:
        body = json.dumps(payload).encode()
        stamp = str(int(time.time()))
        return await self.request("POST", f"/hooks/chat/{channel['id']}", data=body, headers={
            "X-Inbox-Timestamp": stamp, "X-Inbox-Signature": sign(channel["secret"], stamp, body),
            "Content-Type": "application/json"})
