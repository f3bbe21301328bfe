"""Every record a webhook creates is in the activity log (issue 13 point 22), like one made over the API.

The rule chosen: the entry has no actor (``actor_id`` null: no user did it), ``ip`` "webhook", and
``data.channel_id`` names the channel the delivery came through. Messages and emails are content, not
records, and are not logged (neither are those written over the API).
"""

from __future__ import annotations

import pytest

from conftest import FAST_HASHING
from test_ingest import deliver, make_channel, message

from inbox.store import activity


@pytest.fixture
def config_overrides() -> dict:
    return FAST_HASHING


async def entries(api, admin, object_type: str, object_id: int) -> list[dict]:
    r = await api.get("/api/v1/activity", who=admin, params={"object_type": object_type,
                                                             "object_id": str(object_id)})
    assert r.status == 200, r.body
    return r.body["items"]


async def test_a_new_sender_logs_its_contact_and_lead(api, admin):
    channel, secret = await make_channel(api, admin)
    r = await deliver(api, channel["id"], secret, message("p1", handle="+15550001"))
    assert r.status == 201, r.body
    contact_id, lead_id = r.body["contact_id"], r.body["lead_id"]
    [contact] = await entries(api, admin, "contact", contact_id)
    assert contact["type"] == "contact.created" and contact["actor_id"] is None and contact["ip"] == "webhook"
    assert contact["data"]["channel_id"] == channel["id"]
    assert contact["data"]["after"]["name"] == "Jane Doe" and contact["data"]["after"]["phones"] == ["+15550001"]
    [lead] = await entries(api, admin, "lead", lead_id)
    assert lead["type"] == "lead.created" and lead["actor_id"] is None and lead["ip"] == "webhook"
    assert lead["data"]["channel_id"] == channel["id"]
    assert lead["data"]["after"]["contact_ids"] == [contact_id]
    assert lead["data"]["after"]["pipeline_id"] == channel["pipeline_id"]
    # A known sender, a duplicate delivery: nothing new is created, so nothing new is logged.
    before = (await api.rows("SELECT count(*) FROM activity"))[0][0]
    assert (await deliver(api, channel["id"], secret, message("p2", handle="+15550001"))).status == 201
    assert (await deliver(api, channel["id"], secret, message("p1", handle="+15550001"))).status == 200
    assert (await api.rows("SELECT count(*) FROM activity"))[0][0] == before
    assert await activity.verify_chain(api.db) is None  # the webhook's rows are links of the chain
