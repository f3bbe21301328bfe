"""``inbox listen``: print a user's live events, one JSON object per line, resuming across drops.

For integrations and debugging. It remembers the last event id and reconnects with it, so a dropped
connection loses nothing; a ``resync`` frame is printed and then the stream goes on from now.
"""

from __future__ import annotations

import asyncio
import json
import sys

import websockets

# Reconnect after these close codes; the others (bad token, forbidden address) need a person.
RESUMABLE = {1001, 1006, 1011, 4008}


async def listen(url: str, token: str, last_event_id: int | None, *, out=sys.stdout, retries: int = 10) -> int:
    attempt = 0
    while True:
        try:
            async with websockets.connect(url, max_size=2**22) as ws:
                await ws.send(json.dumps({"type": "auth", "token": token, "last_event_id": last_event_id}))
                attempt = 0
                async for raw in ws:
                    frame = json.loads(raw)
                    if frame.get("type") == "event":
                        last_event_id = frame["id"]
                    print(json.dumps(frame, ensure_ascii=False), file=out, flush=True)
        except websockets.ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd else 1006
            if code not in RESUMABLE:
                print(f"closed by the server: {code} {closed.rcvd.reason if closed.rcvd else ''}".strip(),
                      file=sys.stderr)
                return 1
        except OSError as exc:
            print(f"cannot connect to {url}: {exc}", file=sys.stderr)
        attempt += 1
        if attempt > retries:
            return 1
        await asyncio.sleep(min(30.0, 0.5 * 2 ** attempt))
        print(f"reconnecting after event {last_event_id}", file=sys.stderr)
