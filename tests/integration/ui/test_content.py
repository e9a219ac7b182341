"""The packs, datastore and inventory pages, against a real server with an
inventory: secrets never reach the page, keys are created and deleted from
the UI, and the target box shows matching hosts or where it is wrong."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.ui.conftest import screenshot
from tests.support.server import Server

SECRET = "s3cret-Value-never-shown-7781"
PLAIN = "db.internal.example:5432"

INVENTORY = """
defaults:
  user: deploy
  facts: {dc: par1}
hosts:
  web-01:
    address: 192.0.2.11
    facts: {role: web, hagroup: a, os: debian}
  web-02:
    address: 192.0.2.12
    facts: {role: web, hagroup: b, os: debian}
  web-03:
    address: 192.0.2.13
    facts: {role: web, hagroup: a, os: ubuntu}
  db-1:
    address: 192.0.2.21
    port: 2222
    password: hunter2-not-shown
    groups: [databases]
    facts: {role: db, os: debian, packages: {postgresql: "15.4"}}
groups:
  webservers:
    hosts: [web-01, web-02, web-03]
    vars: {env: prod}
"""


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("ui-content")
    inventory = root / "inventory.yaml"
    inventory.write_text(textwrap.dedent(INVENTORY))
    srv = Server(root / "data", env={"SQUALL_INVENTORY": str(inventory)}).start()
    with srv.client() as client:
        for name, body in [
            ("app.db.password", {"value": SECRET, "secret": True}),
            ("app.db.address", {"value": PLAIN}),
            ("other.flag", {"value": "on"}),
        ]:
            assert client.put(f"/api/v1/keys/{name}", json=body).status_code == 200
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(ui_server: Server) -> Iterator[httpx.Client]:
    with ui_server.client() as c:
        yield c


def test_datastore_hides_secrets_and_creates_and_deletes_keys(
    page: Any, client: httpx.Client
) -> None:
    page.evaluate("location.hash = '#/datastore'")
    row = page.locator("table.list tbody tr", has_text="app.db.password")
    row.wait_for()
    assert "••••" in row.inner_text() and "secret" in row.inner_text()
    assert PLAIN in page.locator("table.list").inner_text()
    assert SECRET not in page.content()
    # Search by prefix.
    page.get_by_label("Prefix").fill("app.")
    page.locator("table.list tbody tr", has_text="other.flag").wait_for(state="detached")
    assert page.locator("table.list tbody tr").count() == 2
    assert "prefix=app." in page.url

    # A new secret key, with a TTL, from the form.
    page.get_by_role("button", name="New key").click()
    page.get_by_label("Name").fill("app.api.token")
    page.get_by_label("Value").fill("tok-SECRET-from-the-ui-5531")
    page.get_by_label("Secret", exact=True).check()
    page.get_by_label("TTL (seconds)").fill("3600")
    page.get_by_role("button", name="Save").click()
    created = page.locator("table.list tbody tr", has_text="app.api.token")
    created.wait_for()
    assert "••••" in created.inner_text()
    assert "never" not in created.inner_text()  # it expires
    assert "tok-SECRET-from-the-ui-5531" not in page.content()
    key = client.get("/api/v1/keys/app.api.token", params={"decrypt": "true"}).json()
    assert key["secret"] is True and key["value"] == "tok-SECRET-from-the-ui-5531"
    assert key["expire_timestamp"]
    # A TTL past the dates the API can write is refused, not a server error.
    too_long = client.put("/api/v1/keys/app.forever", json={"value": "v", "ttl": 10**22})
    assert too_long.status_code == 400 and "ttl" in too_long.json()["faultstring"]

    # A plain one, then edited.
    page.get_by_role("button", name="New key").click()
    page.get_by_label("Name").fill("app.mode")
    page.get_by_label("Value").fill("blue")
    page.get_by_role("button", name="Save").click()
    page.locator("table.list tbody tr", has_text="app.mode").wait_for()
    page.get_by_role("button", name="Edit app.mode").click()
    assert page.get_by_label("Value").input_value() == "blue"
    page.get_by_label("Value").fill("green")
    page.get_by_role("button", name="Save").click()
    page.locator("table.list tbody tr", has_text="green").wait_for()
    assert client.get("/api/v1/keys/app.mode").json()["value"] == "green"
    # Editing a secret never shows its value.
    page.get_by_role("button", name="Edit app.db.password").click()
    assert page.get_by_label("Value").input_value() == ""
    page.get_by_role("button", name="Cancel").click()
    screenshot(page, "datastore")

    # Delete asks first.
    page.get_by_role("button", name="Delete app.mode").click()
    page.get_by_role("button", name="Cancel").click()
    assert client.get("/api/v1/keys/app.mode").status_code == 200
    page.get_by_role("button", name="Delete app.mode").click()
    page.get_by_role("button", name="Yes, delete").click()
    page.locator("table.list tbody tr", has_text="app.mode").wait_for(state="detached")
    assert client.get("/api/v1/keys/app.mode").status_code == 404
    assert SECRET not in page.content()


def test_inventory_target_box(page: Any) -> None:
    page.evaluate("location.hash = '#/inventory'")
    status = page.locator("#target-status")
    page.get_by_text("4 hosts", exact=True).wait_for()
    hosts = page.locator("section", has=page.get_by_role("heading", name="Hosts"))
    assert "192.0.2.21:2222" in hosts.inner_text() and "hunter2" not in page.content()
    target = page.get_by_label("Target")
    target.press_sequentially("role=web and hagroup=a", delay=5)
    page.get_by_text("2 of 4 hosts match").wait_for()
    names = hosts.locator("tbody tr td:first-child").all_inner_texts()
    assert names == ["web-01", "web-03"]
    assert "target=role%3Dweb" in page.url or "target=role=web" in page.url
    # An incomplete expression: the error, with where it is.
    target.fill("hagroup=")
    error = page.locator("#target-error")
    error.get_by_text("expected a value").wait_for()
    assert "position 8" in error.inner_text()
    caret = error.locator("pre.caret")
    # The caret under the place (past the end here: a value is missing).
    assert [line.rstrip() for line in caret.inner_text().splitlines()] == [
        "hagroup=",
        " " * 8 + "^",
    ]
    assert target.get_attribute("aria-invalid") == "true"
    assert status.inner_text() == ""
    screenshot(page, "inventory")
    # Fixed: the hosts again.
    target.fill("hagroup=b")
    page.get_by_text("1 of 4 hosts match").wait_for()
    assert error.inner_text() == ""
    # A group from the groups table.
    page.get_by_role("button", name="@databases").click()
    page.get_by_text("1 of 4 hosts match").wait_for()
    assert target.input_value() == "@databases"
    # A host's page: every fact.
    hosts.get_by_role("link", name="db-1").click()
    page.get_by_role("heading", name="db-1").wait_for()
    facts = page.locator("table.list").inner_text()
    for fact in ("dc", "os", "role", "packages.postgresql", "15.4"):
        assert fact in facts
    assert "hunter2" not in page.content()


def test_packs(page: Any) -> None:
    page.evaluate("location.hash = '#/packs'")
    page.get_by_role("link", name="core", exact=True).click()
    page.get_by_role("heading", name="Actions").wait_for()
    link = page.locator('a[href="#/actions/core.local"]')
    link.wait_for()
    # The page's sections load independently; wait for the trigger types too.
    trigger = page.locator('a[href="#/triggerinstances?trigger=core.st2.webhook"]')
    trigger.wait_for()
    assert trigger.count() == 1
