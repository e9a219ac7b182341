"""The API's edges: HTTPS, security headers, CORS closed, body limits on
every route, and the sign-in rate limit."""

from __future__ import annotations

import httpx

from tests.integration.security.conftest import PORTAL
from tests.support.server import Server


def test_the_api_speaks_https_only_with_its_certificate(security_server: Server) -> None:
    assert security_server.url.startswith("https://")
    r = httpx.get(f"{security_server.url}/health", verify=security_server.verify)
    assert r.status_code == 200
    plain = security_server.url.replace("https://", "http://")
    try:
        answered = httpx.get(f"{plain}/health", timeout=5).status_code
    except httpx.HTTPError:
        answered = None  # the TLS server drops a plain HTTP request
    assert answered != 200


def test_the_webhook_intake_has_the_same_edges(security_server: Server) -> None:
    url = security_server.intake_url
    assert url.startswith("https://")
    with httpx.Client(base_url=url, verify=security_server.verify, timeout=10) as intake:
        r = intake.post("/api/v1/webhooks/plant", json={"note": "x"})
        assert r.status_code == 401  # credentials as on the API
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["strict-transport-security"].startswith("max-age=")
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        assert "access-control-allow-origin" not in r.headers
        r = intake.post("/api/v1/webhooks/plant", content=b"x" * 5_000_000)
        assert r.status_code == 413
    try:
        answered = httpx.get(f"{url.replace('https://', 'http://')}/health", timeout=5)
    except httpx.HTTPError:
        answered = None
    assert answered is None or answered.status_code != 200


def test_responses_carry_security_headers_and_no_cors(client: httpx.Client) -> None:
    for path in ("/api/v1/executions", "/ui/", "/api/v1/nothing-here"):
        r = client.get(path, headers={"Origin": "https://evil.example"})
        assert r.headers["x-content-type-options"] == "nosniff", path
        assert r.headers["x-frame-options"] == "DENY", path
        assert r.headers["referrer-policy"] == "no-referrer", path
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"], path
        assert r.headers["strict-transport-security"].startswith("max-age="), path
        assert "access-control-allow-origin" not in r.headers, path
        assert "set-cookie" not in r.headers, path
    preflight = client.options(
        "/api/v1/executions",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers


def test_a_configured_origin_may_call_the_api_without_cookies(client: httpx.Client) -> None:
    preflight = client.options(
        "/api/v1/executions",
        headers={
            "Origin": PORTAL,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-auth-token",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == PORTAL
    assert "access-control-allow-credentials" not in preflight.headers
    r = client.get("/api/v1/executions", headers={"Origin": PORTAL})
    assert r.headers["access-control-allow-origin"] == PORTAL


def test_every_route_refuses_a_body_over_the_limit(client: httpx.Client) -> None:
    huge = b"x" * (4 * 1024 * 1024 + 1)
    for path in ("/api/v1/executions", "/api/v1/keys/big", "/auth/v1/tokens"):
        r = client.post(path, content=huge, headers={"Content-Type": "application/json"})
        assert r.status_code == 413, (path, r.status_code)
        assert "larger than the limit" in r.json()["faultstring"]


def test_sign_in_failures_are_rate_limited_and_audited(
    security_server: Server, client: httpx.Client
) -> None:
    with httpx.Client(base_url=security_server.url, verify=security_server.verify) as anon:
        statuses = [
            anon.post("/auth/v1/tokens", auth=("limit-victim", f"guess-{i}")).status_code
            for i in range(10)
        ]
        assert statuses == [401] * 10
        refused = anon.post("/auth/v1/tokens", auth=("limit-victim", "guess-10"))
        assert refused.status_code == 429
        assert 0 < int(refused.headers["retry-after"]) <= 60
        assert "too many failed sign-ins" in refused.json()["faultstring"]
    records = client.get("/api/v1/audit", params={"actor": "limit-victim", "limit": 100}).json()
    reasons = [r.get("details", {}).get("reason") for r in records]
    assert "too many failed sign-ins" in reasons
