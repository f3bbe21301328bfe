"""Where replies may be sent (docs/outbound.md): an admin sets a channel's outbound URL; private,
loopback and link-local receivers are refused (server-side request forgery), when the URL is set and
again at every connection, where a host name's answers are checked as they are used."""

from __future__ import annotations

import pytest

from conftest import FAST_HASHING
from test_ingest import make_channel

from inbox.outbound.addresses import GuardedResolver, PrivateAddress, check_literal, public, url_problem


@pytest.fixture
def config_overrides() -> dict:
    return FAST_HASHING  # outbound_allow_private stays false, as in production


REFUSED = ["http://127.0.0.1:9000/hook", "http://10.1.2.3/hook", "http://192.168.0.10/", "http://172.16.5.5/",
           "http://169.254.169.254/latest/meta-data", "http://[::1]/hook", "http://[fe80::1]/",
           "http://[::ffff:127.0.0.1]/", "http://100.64.0.1/", "http://0.0.0.0/", "http://localhost:8080/hook",
           "http://printer.local/", "ftp://example.com/", "https://user:pw@example.com/hook", "not a url",
           "https:///nohost", "http://example.com:0/", "https://example.com/hook#frag", "https://" + "a" * 3000]


async def test_private_and_malformed_urls_are_refused_and_change_nothing(api, admin):
    channel, _ = await make_channel(api, admin)
    for url in REFUSED:
        r = await api.patch(f"/api/v1/channels/{channel['id']}", {"outbound_url": url}, who=admin)
        assert r.status == 422 and r.content_type == "application/problem+json", (url, r.status, r.body)
        assert r.body["errors"][0]["path"] == "outbound_url", url
    after = (await api.get("/api/v1/channels", who=admin)).body["items"][0]
    assert after["outbound_url"] is None
    assert (await api.get("/api/v1/activity", who=admin, params={"type": "channel.updated"})).body["items"] == []


async def test_only_admins_set_it_and_unknown_channels_are_404(api, admin):
    channel, _ = await make_channel(api, admin)
    agent = await api.add_user(admin, "Ivan", rights={"leads": {"view": "A"}})
    r = await api.patch(f"/api/v1/channels/{channel['id']}", {"outbound_url": "https://93.184.215.14/x"}, who=agent)
    assert r.status == 403
    r = await api.patch("/api/v1/channels/999", {"name": "x"}, who=admin)
    assert r.status == 404
    assert (await api.post("/api/v1/channels/999/resume", who=admin)).status == 404


async def test_a_public_literal_is_accepted_logged_and_can_be_removed(api, admin):
    channel, _ = await make_channel(api, admin)
    r = await api.patch(f"/api/v1/channels/{channel['id']}", {"outbound_url": "https://93.184.215.14/hooks/out",
                                                              "name": "WhatsApp EU"}, who=admin)
    assert r.status == 200 and r.body["outbound_url"] == "https://93.184.215.14/hooks/out"
    assert r.body["name"] == "WhatsApp EU" and r.body["paused_at"] is None
    r = await api.patch(f"/api/v1/channels/{channel['id']}", {"outbound_url": ""}, who=admin)
    assert r.status == 200 and r.body["outbound_url"] is None
    log = (await api.get("/api/v1/activity", who=admin, params={"type": "channel.updated"})).body["items"]
    assert [e["data"]["after"]["outbound_url"] for e in log] == [None, "https://93.184.215.14/hooks/out"]
    r = await api.patch(f"/api/v1/channels/{channel['id']}", {"name": None}, who=admin)
    assert r.status == 422


def test_address_rules():
    assert public("93.184.215.14") and public("2606:4700::1111")
    for private in ("127.0.0.1", "10.0.0.1", "169.254.169.254", "::1", "fe80::1", "::ffff:10.0.0.1", "224.0.0.1",
                    "100.64.0.1", "0.0.0.0"):
        assert not public(private), private
    assert url_problem("http://127.0.0.1:1/", allow_private=True) is None
    with pytest.raises(PrivateAddress):
        check_literal("http://[::1]:80/", allow_private=False)
    check_literal("http://[::1]:80/", allow_private=True)


async def test_a_name_that_resolves_to_a_private_address_is_refused_where_it_is_used():
    """An IP literal never reaches the resolver; a name does, at every connection (DNS rebinding)."""
    guarded = GuardedResolver(allow_private=False)
    try:
        with pytest.raises(PrivateAddress):
            await guarded.resolve("localhost", 80)
    finally:
        await guarded.close()
    open_ = GuardedResolver(allow_private=True)
    try:
        assert {a["host"] for a in await open_.resolve("localhost", 80)} & {"127.0.0.1", "::1"}
    finally:
        await open_.close()


async def test_smtp_servers_follow_the_same_rule_and_clear_text_is_for_loopback_only(api, admin):
    inbox = (await api.post("/api/v1/inboxes", {"name": "Sales"}, who=admin)).body
    path = f"/api/v1/inboxes/{inbox['id']}/outgoing"
    base = {"address": "sales@acme.example", "port": 587}
    for host, security in (("10.0.0.5", "starttls"), ("169.254.169.254", "tls"), ("localhost", "starttls"),
                           ("93.184.215.14", "none"), ("[::1]", "tls")):
        r = await api.put(path, {**base, "host": host, "security": security}, who=admin)
        assert r.status == 422 and r.body["errors"][0]["path"] == "host", (host, security, r.body)
    assert (await api.get(path, who=admin)).body["host"] is None
    relay = await api.put(path, {**base, "host": "127.0.0.1", "port": 25, "security": "none"}, who=admin)
    assert relay.status == 200 and relay.body["security"] == "none"
