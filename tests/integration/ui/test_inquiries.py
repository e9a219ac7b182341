"""Inquiries: the pending ones listed live, and answered through a form
made from the response schema, with the schema's errors by their field."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.ui.conftest import screenshot
from tests.integration.ui.test_executions import shared_ui_server
from tests.support.server import Server

SCHEMA = {
    "type": "object",
    "properties": {
        "approve": {"type": "boolean", "description": "Restart the database?"},
        "ticket": {"type": "string", "description": "The change ticket."},
        "replicas": {"type": "integer", "minimum": 1, "description": "How many at a time."},
        "window": {"type": "string", "enum": ["now", "tonight"], "default": "tonight"},
    },
    "required": ["approve", "ticket", "replicas"],
}


@pytest.fixture(scope="module")
def ui_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Server:
    return shared_ui_server(request.config, tmp_path_factory)


@pytest.fixture(scope="module")
def client(ui_server: Server) -> Iterator[httpx.Client]:
    with ui_server.client() as c:
        yield c


def ask(client: httpx.Client, **params: Any) -> str:
    r = client.post("/api/v1/executions", json={"action": "core.ask", "parameters": params})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def wait_status(client: httpx.Client, eid: str, status: str, timeout: float = 20) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        body: dict = client.get(f"/api/v1/executions/{eid}").json()
        if body["status"] == status:
            return body
        time.sleep(0.05)
    raise AssertionError(f"execution {eid} is {body['status']}, not {status}")


def field_error(page: Any, name: str) -> Any:
    return page.locator(f'.field[data-field="{name}"] .error')


def test_answer_an_inquiry_from_the_inquiries_page(page: Any, client: httpx.Client) -> None:
    page.goto("/ui/#/inquiries")
    page.get_by_role("heading", name="Inquiries").wait_for()
    # Asked after the page opened: it appears without a reload.
    iid = ask(client, schema=SCHEMA, route="db-team", ttl=30)
    rows = page.locator("table.list tbody tr")
    rows.filter(has_text="Restart the database?").wait_for()
    assert "db-team" in rows.filter(has_text=iid).inner_text()
    rows.filter(has_text=iid).get_by_role("link").first.click()
    page.get_by_role("heading", name="A question is waiting for an answer").wait_for()

    form = page.locator(f'form.inquiry-form[data-inquiry="{iid}"]')
    assert form.get_by_label("approve").get_attribute("type") == "checkbox"
    assert form.get_by_label("replicas").get_attribute("type") == "number"
    assert form.get_by_label("window").input_value() == "tonight"
    # Required, checked in the browser.
    form.get_by_role("button", name="Send the answer").click()
    field_error(page, "ticket").filter(has_text="required").wait_for()
    field_error(page, "replicas").filter(has_text="required").wait_for()
    # The schema's minimum, checked by the API, shown under its field.
    form.get_by_label("ticket").fill("CHG-42")
    form.get_by_label("replicas").fill("0")
    form.get_by_role("button", name="Send the answer").click()
    field_error(page, "replicas").filter(has_text="at least 1").wait_for()
    assert field_error(page, "ticket").inner_text() == ""
    assert wait_status(client, iid, "pending")["status"] == "pending"
    screenshot(page, "inquiry")

    form.get_by_label("replicas").fill("2")
    form.get_by_label("approve").check()
    form.get_by_role("button", name="Send the answer").click()
    form.get_by_text("Answered").wait_for()
    done = wait_status(client, iid, "succeeded")
    assert done["result"]["response"] == {
        "approve": True,
        "ticket": "CHG-42",
        "replicas": 2,
        "window": "tonight",
    }
    # Answered, it leaves the list.
    page.goto("/ui/#/inquiries")
    page.get_by_role("heading", name="Inquiries").wait_for()
    page.wait_for_function("() => document.querySelector('#inquiries-count')?.textContent")
    assert rows.filter(has_text=iid).count() == 0


def test_false_is_an_answer_and_an_answered_inquiry_says_so(
    page: Any, client: httpx.Client
) -> None:
    iid = ask(client)  # StackStorm's default question: continue? (a required boolean)
    wait_status(client, iid, "pending")
    page.goto(f"/ui/#/inquiries/{iid}")
    form = page.locator("form.inquiry-form")
    form.get_by_label("continue").wait_for()
    form.get_by_role("button", name="Send the answer").click()
    form.get_by_text("Answered").wait_for()
    assert wait_status(client, iid, "succeeded")["result"]["response"] == {"continue": False}
    page.reload()
    page.get_by_text("already been answered").wait_for()
    page.get_by_role("link", name="See its execution").click()
    page.locator("h1 .badge", has_text="succeeded").wait_for()
