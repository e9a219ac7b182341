"""The audit page: who did what, filtered; the chain's check."""

from __future__ import annotations

from typing import Any

from tests.integration.ui.conftest import screenshot
from tests.support.server import Server


def test_the_audit_page_lists_filters_and_verifies(page: Any, ui_server: Server) -> None:
    with ui_server.client() as client:
        r = client.put("/api/v1/keys/audited", json={"name": "audited", "value": "x"})
        assert r.status_code == 200
    page.goto("/ui/#/audit")
    page.get_by_role("heading", name="Audit").wait_for()
    rows = page.locator("table.list tbody tr")
    rows.filter(has_text="PUT /api/v1/keys/audited").wait_for()
    # Signing in through the form was recorded too.
    page.get_by_label("Kind").select_option("sign_in")
    page.get_by_role("button", name="Filter").click()
    # The filtered list replaces the whole one.
    rows.filter(has_text="PUT /api/v1/keys").first.wait_for(state="detached")
    rows.filter(has_text="sign in").first.wait_for()
    assert "kind=sign_in" in page.url  # the filter survives a reload
    page.reload()
    rows.filter(has_text="sign in").first.wait_for()
    assert page.get_by_label("Kind").input_value() == "sign_in"
    page.get_by_role("button", name="Verify the chain").click()
    page.get_by_text("intact").wait_for()
    screenshot(page, "audit")
