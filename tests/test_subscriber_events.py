"""A user subscribed to a lead gets the lead on their websocket, as they now see it (issue 13 point 23):
a live client must not have to refetch. Rule 5: through a subscription alone, no custom fields; rule 6:
a contact they may not view is a name and an avatar. Nobody else gets that frame."""

from __future__ import annotations

import pytest

from conftest import FAST_HASHING
from test_realtime import close_clients, connect, make_lead, setup  # noqa: F401 (close_clients: autouse)

SAM = {"name": "Sam", "avatar": None, "restricted": True}


@pytest.fixture
def config_overrides() -> dict:
    return FAST_HASHING


def about(lead_id: int):
    return lambda f: f.get("event") == "subscription.changed" and f["data"]["lead"]["id"] == lead_id


def notice(kind: str, lead_id: int):
    return lambda f: (f.get("event") == "notification.created" and f["data"]["notification"]["type"] == kind
                      and f["data"]["notification"]["lead_id"] == lead_id)


async def test_the_new_subscriber_gets_the_lead_as_they_now_see_it_and_no_one_else_does(api, admin):
    stages, field, maria, tom, gina = await setup(api, admin)
    olga = await api.add_user(admin, "Olga")  # no rights at all
    contact = (await api.post("/api/v1/contacts", {"name": "Sam", "emails": ["sam@x.io"],
                                                   "responsible_user_id": tom.user_id}, who=admin)).body["id"]
    lead_id = await make_lead(api, admin, tom, stages[0], field, contact_ids=[contact])
    m, t, g, o = [await connect(api, who) for who in (maria, tom, gina, olga)]

    # Maria cannot see tom's lead; subscribed, she gets it at once, before the notice about it.
    r = await api.post(f"/api/v1/leads/{lead_id}/subscribers", {"user_id": maria.user_id}, who=admin)
    assert r.status in (200, 201, 204), r.body
    frames = await m.until(notice("lead.subscribed", lead_id))
    [card] = [f for f in frames if about(lead_id)(f)]
    assert frames.index(card) < len(frames) - 1  # the lead arrives before the notice that names it
    lead = card["data"]["lead"]
    assert card["data"]["subscribed"] is True
    assert lead["access"] == "subscription" and lead["subscribed"] is True
    assert "custom_fields" not in lead and lead["contacts"] == [SAM] and "sam@x.io" not in str(card)
    rest = await api.get(f"/api/v1/leads/{lead_id}", who=maria)
    assert rest.status == 200 and lead == rest.body  # exactly what a GET shows her

    # Gina sees the lead through her team (G): subscribed, her card has the custom field.
    await api.post(f"/api/v1/leads/{lead_id}/subscribers", {"user_id": gina.user_id}, who=admin)
    frames = await g.until(notice("lead.subscribed", lead_id))
    [card] = [f for f in frames if about(lead_id)(f)]
    assert card["data"]["lead"] == (await api.get(f"/api/v1/leads/{lead_id}", who=gina)).body
    assert card["data"]["lead"]["access"] == "full" and card["data"]["lead"]["custom_fields"] == {str(field): 42}
    # Unsubscribed, she still sees the lead: the card says so. Maria loses it: access_revoked only.
    await api.delete(f"/api/v1/leads/{lead_id}/subscribers/{gina.user_id}", who=admin)
    frames = await g.until(notice("lead.unsubscribed", lead_id))
    [card] = [f for f in frames if about(lead_id)(f)]
    assert card["data"]["subscribed"] is False and card["data"]["lead"]["subscribed"] is False
    await api.delete(f"/api/v1/leads/{lead_id}/subscribers/{maria.user_id}", who=admin)
    frames = await m.until(notice("lead.unsubscribed", lead_id))
    assert [f["lead_id"] for f in frames if f["type"] == "access_revoked"] == [lead_id]
    assert not any(about(lead_id)(f) for f in frames)

    # Nobody else got a frame about those subscriptions: not tom (responsible, watching the lead), not
    # olga (who sees nothing). Each is subscribed to a lead of their own last, as an end marker.
    end = await make_lead(api, admin, admin, stages[0], field)
    for who, client in ((tom, t), (olga, o)):
        await api.post(f"/api/v1/leads/{end}/subscribers", {"user_id": who.user_id}, who=admin)
        frames = await client.until(notice("lead.subscribed", end))
        assert not any(about(lead_id)(f) for f in frames), who.name
        assert [f["data"]["lead"]["id"] for f in frames if f.get("event") == "subscription.changed"] == [end]
    olga_end = [f for f in frames if about(end)(f)][0]["data"]["lead"]
    assert olga_end["access"] == "subscription" and "custom_fields" not in olga_end


async def test_a_resumed_socket_replays_the_subscription_under_current_rights(api, admin):
    stages, field, maria, tom, gina = await setup(api, admin)
    lead_id = await make_lead(api, admin, tom, stages[0], field)
    await api.post(f"/api/v1/leads/{lead_id}/subscribers", {"user_id": maria.user_id}, who=admin)
    m = await connect(api, maria, last_event_id=0)
    frames = await m.until(notice("lead.subscribed", lead_id))
    [card] = [f for f in frames if about(lead_id)(f)]
    assert card["data"]["lead"] == (await api.get(f"/api/v1/leads/{lead_id}", who=maria)).body
    t = await connect(api, tom, last_event_id=0)
    end = await make_lead(api, admin, admin, stages[0], field)
    await api.post(f"/api/v1/leads/{end}/subscribers", {"user_id": tom.user_id}, who=admin)
    frames = await t.until(notice("lead.subscribed", end))
    assert not any(about(lead_id)(f) for f in frames)
