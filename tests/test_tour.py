"""The README's API tour is docs/tour.sh, and it works (issue 13 point 18): run in order against a fresh
demo workspace on a real server, every step answers the status it expects, and the README shows the
script exactly as it is."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import sys
from pathlib import Path

import pytest

from test_cli import free_port, run
from test_crash import start

ROOT = Path(__file__).parent.parent
SCRIPT = ROOT / "docs" / "tour.sh"
README_BLOCK = re.compile(r"<!-- tour: docs/tour.sh -->\n```sh\n(.*?)```\n<!-- /tour -->", re.S)
STEP = re.compile(r"^== (\S+) (\S+) -> (\d{3})$")
# The demo's ids: admin 1, maria 2, tom 3, lena 4; nine leads, 1-9, Deal #8 is one of Tom's.
EXPECTED = [
    ("POST", "/auth/login", 200), ("GET", "/account", 200), ("GET", "/users", 200),
    ("GET", "/users/4/rights", 200), ("POST", "/roles", 201),
    ("GET", "/leads?limit=5", 200), ("GET", "/leads?limit=5&cursor=5", 200), ("GET", "/leads/export", 200),
    ("GET", "/leads?responsible_user_id=3&limit=1", 200),
    ("GET", "/access/explain?user_id=2&entity=leads&action=edit&record_id=8", 200),
    ("POST", "/auth/login", 200), ("GET", "/account", 200), ("GET", "/leads", 200), ("GET", "/leads/8", 404),
    ("GET", "/pipelines", 200), ("POST", "/channels", 201), ("PATCH", "/channels/1", 200),
    ("POST", "/hooks/chat/1", 201), ("POST", "/chats/1/messages", 201), ("GET", "/chats/1/messages?limit=1", 200),
    ("PATCH", "/chats/1", 200), ("GET", "/chats?status=resolved", 200),
    ("DELETE", "/users/3?reassign_to=4", 204), ("GET", "/leads/8", 200), ("PATCH", "/users/2", 200),
    ("GET", "/account", 401), ("POST", "/auth/login", 403),
    ("GET", "/sessions", 200), ("GET", "/openapi.json", 200),
]


def steps(out: str) -> list[tuple[str, str, int, str]]:
    """(method, path, status, body) of each step the script printed."""
    lines = out.splitlines()
    found = []
    for i, line in enumerate(lines):
        m = STEP.match(line)
        if m:
            found.append((m[1], m[2], int(m[3]), lines[i + 1] if i + 1 < len(lines) else ""))
    return found


@pytest.mark.timeout(120)
@pytest.mark.skipif(shutil.which("curl") is None or shutil.which("sh") is None, reason="the tour needs sh and curl")
async def test_the_tour_runs_in_order_against_a_fresh_demo_workspace(tmp_path):
    env = {"INBOX_ARGON2_TIME_COST": "1", "INBOX_ARGON2_MEMORY_KIB": "1024"}
    code, _, err = await run("demo", "--data-dir", str(tmp_path), env=env)
    assert code == 0, err
    port = free_port()
    # As `make serve` runs the demo: local receivers allowed, so the tour's provider gets the reply.
    server = await start(tmp_path, port, env={"INBOX_OUTBOUND_ALLOW_PRIVATE": "true"})
    try:
        # python3 on PATH is the one running the tests, as a user's would be their own.
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        tour = await asyncio.create_subprocess_exec(
            "sh", str(SCRIPT), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PATH": path, "INBOX_URL": f"http://127.0.0.1:{port}",
                 "PROVIDER_PORT": str(free_port())})
        out, err = await asyncio.wait_for(tour.communicate(), 90)
        out_text = out.decode()
        assert tour.returncode == 0, (err.decode(), out_text[-2000:])
    finally:
        server.terminate()
        await server.wait()
    done = steps(out_text)
    assert [(m, p, s) for m, p, s, _ in done] == EXPECTED
    # The two pages are every lead once, newest first: the second page follows the first's next_cursor.
    first, second = (json.loads(body) for m, p, _, body in done if p.startswith("/leads?limit=5"))
    ids = [lead["id"] for lead in first["items"] + second["items"]]
    assert ids == sorted(set(ids), reverse=True) and len(ids) == first["total"] == 9
    assert first["next_cursor"] is not None and second["next_cursor"] is None
    # The reply went out: the provider printed it, and the message shows it sent.
    assert "provider received msg_" in out_text and "Yes: it ships today." in out_text
    [sent] = json.loads(next(body for m, p, _, body in done if p == "/chats/1/messages?limit=1"))["items"]
    assert (sent["text"], sent["status"], sent["attempts"]) == ("Yes: it ships today.", "sent", 1)
    clamped = json.loads(next(body for m, p, _, body in done if p == "/roles"))
    assert clamped["rights"]["leads"]["edit"] == "M"


def test_the_readme_shows_the_tour_script_as_it_is():
    readme = (ROOT / "README.md").read_text()
    blocks = README_BLOCK.findall(readme)
    assert len(blocks) == 1, "README.md must show docs/tour.sh once, between its markers"
    assert blocks[0] == SCRIPT.read_text()
