"""SIGKILL in the middle of a burst of 200 replies (docs/outbound.md): after the restart every reply
reaches the provider at least once, and the webhook ids the provider saw are exactly the replies'."""

from __future__ import annotations

import asyncio
import signal
import sqlite3

import pytest
from provider import Answer, Provider

from live_server import LiveServer

N = 200
ENV = {"INBOX_OUTBOUND_ALLOW_PRIVATE": "true", "INBOX_OUTBOUND_RETRY_BASE_SECONDS": "0.05",
       "INBOX_OUTBOUND_RETRY_MAX_SECONDS": "0.2"}


def stored(path) -> dict[str, int]:
    with sqlite3.connect(path) as db:
        return dict(db.execute("SELECT webhook_id, id FROM messages WHERE author_type = 'agent'").fetchall())


def pending(path) -> int:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT count(*) FROM outbox").fetchone()[0]


@pytest.mark.timeout(180)
async def test_replies_acknowledged_before_sigkill_all_reach_the_provider_after_restart(tmp_path):
    server = LiveServer(tmp_path / "data", tmp_path / "server.log", env=ENV)
    provider = await Provider().start()
    provider.default = Answer(200, hang=0.05)  # slower than the agents: replies wait when the kill lands
    await server.start()
    try:
        channel = await server.channel()
        provider.secret = channel["secret"]
        status, _, body = await server.request("PATCH", f"/api/v1/channels/{channel['id']}",
                                               json={"outbound_url": provider.url})
        assert status == 200, body
        conversations = []
        for i in range(5):
            status, _, body = await server.deliver(channel, {"id": f"in-{i}", "from": {"handle": f"+1555000{i}"},
                                                             "text": "hello"})
            assert status == 201, body
            conversations.append(body["conversation_id"])
        acknowledged: dict[int, str] = {}
        queue = list(range(N))

        async def agent() -> None:
            while queue:
                i = queue.pop(0)
                try:
                    status, _, body = await server.request(
                        "POST", f"/api/v1/chats/{conversations[i % 5]}/messages", json={"text": f"reply {i}"})
                except Exception:  # the server died under this request: not acknowledged
                    continue
                if status == 201:
                    acknowledged[body["id"]] = f"reply {i}"

        agents = [asyncio.create_task(agent()) for _ in range(8)]
        while len(acknowledged) < N // 3:
            await asyncio.sleep(0.005)
        assert server.proc is not None
        server.proc.send_signal(signal.SIGKILL)
        await server.proc.wait()
        await asyncio.gather(*agents)
        assert N // 3 <= len(acknowledged) < N
        db_path = server.data_dir / "inbox.sqlite3"
        assert pending(db_path) > 0, "the kill left replies waiting to be sent"
        await server.start()
        for _ in range(1500):
            if pending(db_path) == 0:
                break
            await asyncio.sleep(0.02)
        assert pending(db_path) == 0, "the outbox drained after the restart"
        replies = stored(db_path)
        seen = {r.webhook_id: r.json["message"]["id"] for r in provider.received}
        assert all(r.verified for r in provider.received)
        assert set(seen) == set(replies), "the provider saw exactly the replies' webhook ids"
        assert all(seen[w] == replies[w] for w in seen), "a webhook id always stands for the same message"
        assert set(acknowledged) <= set(replies.values())
        texts = {r.json["message"]["id"]: r.json["message"]["text"] for r in provider.received}
        assert all(texts[mid] == text for mid, text in acknowledged.items())
    finally:
        await server.stop()
        await provider.stop()
