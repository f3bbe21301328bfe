"""The route registry: every route declares its access, every route is documented, health answers."""

from __future__ import annotations

from inbox.api.routing import Access, Route, registry


def test_every_served_route_is_declared_with_access(api):
    """SECURITY-CHECKLIST 17: deny by default. A handler added without the registry fails here."""
    served = [r for r in api.app.router.routes() if r.method != "HEAD"]
    assert served, "no routes served"
    for r in served:
        route = getattr(r.handler, "__route__", None)
        assert isinstance(route, Route), f"{r.method} {r.resource.canonical} has no access declaration"
        assert isinstance(route.access, Access)


def test_only_login_health_and_docs_are_public():
    public = {(r.method, r.path) for r in registry.routes if r.access is Access.PUBLIC}
    # The websocket authenticates in its first frame (tests/test_realtime.py); webhooks by their HMAC
    # signature (tests/test_ingest.py, test_email.py); signed media links by theirs (test_ingest.py).
    assert public == {("POST", "/api/v1/auth/login"), ("POST", "/api/v1/auth/2fa"), ("GET", "/healthz"),
                      ("GET", "/api/v1/openapi.json"), ("GET", "/api/v1/ws"), ("POST", "/hooks/chat/{channel}"),
                      ("POST", "/hooks/email/{inbox}"), ("GET", "/api/v1/media/{id}/signed"),
                      # A provider's status callbacks (signed) and its attachment downloads (signed links):
                      # tests/test_outbound_chat.py.
                      ("POST", "/hooks/chat/{channel}/status"), ("GET", "/hooks/chat/{channel}/media/{id}")}


def test_only_enrolment_routes_are_open_before_required_2fa():
    setup = {(r.method, r.path) for r in registry.routes if r.setup}
    assert setup == {("GET", "/api/v1/auth/2fa"), ("POST", "/api/v1/auth/2fa/enrol"),
                     ("POST", "/api/v1/auth/2fa/confirm"), ("POST", "/api/v1/auth/logout"), ("GET", "/api/v1/account")}


async def test_openapi_documents_every_route(api):
    r = await api.get("/api/v1/openapi.json")
    assert r.status == 200 and r.body["openapi"].startswith("3.1")
    documented = {(m.upper(), p) for p, ops in r.body["paths"].items() for m in ops}
    served = {(x.method, x.resource.canonical) for x in api.app.router.routes() if x.method != "HEAD"}
    assert served == documented
    op = r.body["paths"]["/api/v1/roles"]["post"]
    schema_name = op["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert "rights" in r.body["components"]["schemas"][schema_name]["properties"]
    assert op["x-access"] == "admin" and "403" in op["responses"]


async def test_healthz(api):
    r = await api.get("/healthz")
    assert r.status == 200 and r.body == {"status": "ok"}
