"""Signing in and out, the shell, themes, and the UI's assets."""

from __future__ import annotations

from typing import Any

import httpx

from tests.integration.ui.conftest import png_is_blank, sign_in
from tests.support.server import Server


def test_nothing_is_shown_before_signing_in(anonymous_page: Any) -> None:
    anonymous_page.goto("/")
    assert anonymous_page.url.endswith("/ui/")
    anonymous_page.get_by_role("heading", name="Sign in to Squall").wait_for()
    assert anonymous_page.locator("nav").count() == 0
    # A wrong password is refused with a message, and still nothing is shown.
    anonymous_page.get_by_label("User").fill("admin")
    anonymous_page.get_by_label("Password").fill("wrong")
    anonymous_page.get_by_role("button", name="Sign in").click()
    anonymous_page.get_by_role("alert").filter(has_text="invalid").wait_for()
    assert anonymous_page.locator("nav").count() == 0


def test_sign_in_and_out(anonymous_page: Any, ui_server: Server) -> None:
    sign_in(anonymous_page)
    assert anonymous_page.locator("#whoami").inner_text() == "admin"
    token = anonymous_page.evaluate("JSON.parse(sessionStorage.getItem('squall.session')).secret")
    with httpx.Client(base_url=ui_server.url) as client:
        assert client.get("/api/v1/user", headers={"X-Auth-Token": token}).status_code == 200
        anonymous_page.get_by_role("button", name="Sign out").click()
        anonymous_page.get_by_role("heading", name="Sign in to Squall").wait_for()
        # Signing out revoked the token on the server too.
        assert client.get("/api/v1/user", headers={"X-Auth-Token": token}).status_code == 401


def test_sign_in_with_an_api_key(anonymous_page: Any) -> None:
    from tests.support.server import API_KEY

    anonymous_page.goto("/ui/")
    anonymous_page.get_by_label("API key").fill(API_KEY)
    anonymous_page.get_by_role("button", name="Sign in").click()
    anonymous_page.locator("#whoami").wait_for()
    assert anonymous_page.locator("#whoami").inner_text() == "admin"


def test_an_expired_session_goes_back_to_sign_in(page: Any) -> None:
    page.evaluate(
        """() => { const s = JSON.parse(sessionStorage.getItem('squall.session'));
        s.expiry = new Date(Date.now() - 1000).toISOString();
        sessionStorage.setItem('squall.session', JSON.stringify(s)); }"""
    )
    page.evaluate("location.hash = '#/rollouts'")
    page.get_by_role("heading", name="Sign in to Squall").wait_for()


def test_assets_are_served_by_squall_with_a_strict_policy(ui_server: Server) -> None:
    with httpx.Client(base_url=ui_server.url) as client:
        index = client.get("/ui/")
        assert index.status_code == 200
        policy = index.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "script-src 'self'" in policy
        # Nothing is loaded from elsewhere.
        assert "http://" not in index.text and "https://" not in index.text
        for asset in ("/ui/app.js", "/ui/app.css", "/ui/pages/index.js", "/ui/favicon.svg"):
            r = client.get(asset)
            assert r.status_code == 200 and r.content, asset
            assert "https://" not in r.text, asset
        assert client.get("/ui/nosuch.js").status_code == 404
        # The API stays closed without credentials.
        assert client.get("/api/v1/executions").status_code == 401


def test_dark_and_light_themes(page: Any) -> None:
    page.get_by_label("colour theme").select_option("dark")
    dark = page.evaluate("getComputedStyle(document.body).backgroundColor")
    page.get_by_label("colour theme").select_option("light")
    light = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert dark != light
    assert not png_is_blank(page.screenshot())
