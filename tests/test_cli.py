"""The command line as a user runs it: init, demo, serve (with a graceful stop)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys

import aiohttp


async def run(*args, env=None, stdin=None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "inbox", *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env={**os.environ, **(env or {})})
    out, err = await asyncio.wait_for(proc.communicate(stdin), 60)
    return proc.returncode, out.decode(), err.decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_init_creates_the_first_admin_once(tmp_path):
    env = {"INBOX_ADMIN_PASSWORD": "cli-admin-pass-1"}
    code, out, err = await run("init", "--data-dir", str(tmp_path), "--email", "boss@example.com", "--name", "Boss",
                               env=env)
    assert code == 0, err
    assert "boss@example.com" in out
    code, _, err = await run("init", "--data-dir", str(tmp_path), "--email", "x@example.com", "--name", "X", env=env)
    assert code == 2 and "already holds a workspace" in err


async def test_init_refuses_a_weak_password(tmp_path):
    code, _, err = await run("init", "--data-dir", str(tmp_path), "--email", "b@example.com", "--name", "B",
                             env={"INBOX_ADMIN_PASSWORD": "password"})
    assert code == 2 and "password" in err


async def test_demo_then_serve_then_graceful_stop(tmp_path):
    code, out, err = await run("demo", "--data-dir", str(tmp_path))
    assert code == 0, err
    assert "admin@demo.inbox" in out and "created" in out
    code, out, _ = await run("demo", "--data-dir", str(tmp_path))
    assert code == 0 and "already present" in out  # running it again is harmless

    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "inbox", "serve", "--data-dir", str(tmp_path), "--port", str(port),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        async with aiohttp.ClientSession(base_url=f"http://127.0.0.1:{port}") as http:
            for _ in range(100):
                try:
                    async with http.get("/healthz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.1)
            async with http.post("/api/v1/auth/login",
                                 json={"email": "maria@demo.inbox", "password": "demo-maria-pass"}) as r:
                assert r.status == 200
                body = await r.json()
            assert body["user"]["effective_rights"]["leads"]["view"] == "M"
            async with http.get("/api/v1/users", headers={"Authorization": f"Bearer {body['token']}"}) as r:
                assert (await r.json())["total"] == 4
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 15)
        assert code == 0
        _, err = await proc.communicate()
        assert b'"msg":"starting"' in err  # structured JSON log lines
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
