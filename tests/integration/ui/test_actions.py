"""The actions list and the Run form: fields from the parameter schema,
errors next to their field (found in the browser, or by the API), live
output on the execution page, and the keyboard alone."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.integration.ui.conftest import screenshot
from tests.integration.ui.test_executions import shared_ui_server
from tests.support.server import Server

LINES = "for i in 1 2 3; do echo line$i; sleep 0.5; done"


@pytest.fixture(scope="module")
def ui_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Server:
    return shared_ui_server(request.config, tmp_path_factory)


def field_error(page: Any, name: str) -> Any:
    return page.locator(f'.field[data-field="{name}"] .error')


def test_search_the_actions(page: Any) -> None:
    page.goto("/ui/#/actions")
    rows = page.locator("table.list tbody tr")
    rows.filter(has_text="core.local").first.wait_for()
    page.get_by_label("Search").fill("secret")
    rows.filter(has_text="uitest.secret_echo").wait_for()
    assert rows.count() == 1
    assert "q=secret" in page.url
    page.reload()
    rows.filter(has_text="uitest.secret_echo").wait_for()
    assert page.get_by_label("Search").input_value() == "secret"
    assert rows.count() == 1
    page.get_by_label("Search").fill("")
    page.get_by_label("Pack").select_option("uitest")
    rows.filter(has_text="uitest.typed").wait_for()
    assert all(t.startswith("uitest.") for t in rows.locator("td:first-child").all_inner_texts())
    rows.filter(has_text="uitest.typed").get_by_role("link").click()
    page.get_by_role("heading", name="Run uitest.typed").wait_for()


def test_the_form_follows_the_schema_and_shows_errors_by_their_field(page: Any) -> None:
    page.goto("/ui/#/actions/uitest.typed")
    page.get_by_role("heading", name="Run uitest.typed").wait_for()
    # Types, defaults, enums, required.
    assert page.locator("#f-count").get_attribute("type") == "number"
    assert page.locator("#f-mode").evaluate("e => e.tagName") == "SELECT"
    assert page.locator("#f-mode").input_value() == "fast"
    assert page.locator("#f-loud").get_attribute("type") == "checkbox"
    assert "*" in page.locator('label[for="f-count"]').inner_text()

    # Found in the browser: a required field left empty, a fraction for an integer.
    page.get_by_role("button", name="Run").click()
    field_error(page, "count").filter(has_text="required").wait_for()
    assert "#/actions/uitest.typed" in page.url
    page.locator("#f-count").fill("1.5")
    page.get_by_role("button", name="Run").click()
    field_error(page, "count").filter(has_text="whole number").wait_for()
    page.locator("#f-env").fill("{not json")
    page.locator("#f-count").fill("2")
    page.get_by_role("button", name="Run").click()
    field_error(page, "env").filter(has_text="JSON").wait_for()
    assert field_error(page, "count").inner_text() == ""

    # Found by the API: below the schema's minimum; the wrong type for env.
    page.locator("#f-env").fill("")
    page.locator("#f-count").fill("0")
    page.get_by_role("button", name="Run").click()
    field_error(page, "count").filter(has_text="at least 1").wait_for()
    assert page.locator('.field[data-field="count"]').get_attribute("class") == "field invalid"
    page.locator("#f-count").fill("3")
    page.locator("#f-env").fill("[1, 2]")
    page.get_by_role("button", name="Run").click()
    field_error(page, "env").filter(has_text="expected object").wait_for()
    assert field_error(page, "count").inner_text() == ""

    # Fixed, it runs and the execution page opens.
    page.locator("#f-env").fill("")
    page.locator("#f-mode").select_option("slow")
    page.locator("#f-loud").check()
    page.get_by_role("button", name="Run").click()
    page.wait_for_url("**/#/executions/*")
    page.get_by_role("region", name="result").get_by_text('"stdout": "3 slow True"').wait_for()


def test_run_core_local_and_watch_its_output_live(page: Any, ui_server: Server) -> None:
    page.goto("/ui/#/actions/core.local")
    page.locator("#f-cmd").fill(LINES)
    screenshot(page, "run-action")
    page.get_by_role("button", name="Run").click()
    page.wait_for_url("**/#/executions/*")
    # Note what the page shows as it changes: the lines must arrive one by
    # one while the execution still runs, not all at once at the end.
    page.evaluate(
        """() => {
          window.seen = [];
          const note = () => {
            const out = document.querySelector('#output');
            const badge = document.querySelector('h1 .badge');
            if (out && badge) window.seen.push([out.textContent, badge.dataset.status]);
          };
          new MutationObserver(note).observe(
            document.body, {subtree: true, childList: true, characterData: true});
          note();
        }"""
    )
    page.locator("h1 .badge", has_text="succeeded").wait_for()
    page.locator("#output").filter(has_text="line3").wait_for()
    seen = page.evaluate("window.seen")
    partial = [s for s in seen if "line1" in s[0] and "line3" not in s[0]]
    assert partial, f"the output did not arrive live: {seen[:5]}"
    assert all(status != "succeeded" for _, status in partial)
    eid = page.evaluate("location.hash.split('/').pop()")
    with ui_server.client() as client:
        out = client.get(f"/api/v1/executions/{eid}/output").text
    assert page.locator("#output").inner_text().strip() == out.strip()


def test_the_run_form_with_the_keyboard_only(page: Any, ui_server: Server) -> None:
    page.goto("/ui/#/actions/core.echo")
    page.get_by_role("heading", name="Run core.echo").wait_for()
    # The first field has the focus; Tab moves on, Enter on the button runs.
    page.wait_for_function("() => document.activeElement?.id === 'f-message'")
    page.keyboard.type("typed with keys")
    for _ in range(30):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == "Run":
            break
    else:
        raise AssertionError("Tab never reached the Run button")
    page.keyboard.press("Enter")
    page.wait_for_url("**/#/executions/*")
    eid = page.evaluate("location.hash.split('/').pop()")
    with ui_server.client() as client:
        deadline = time.time() + 20
        while (body := client.get(f"/api/v1/executions/{eid}").json())["status"] != "succeeded":
            assert time.time() < deadline, body["status"]
            time.sleep(0.05)
    assert body["result"]["stdout"] == "typed with keys"
    # Enter in a text field submits too.
    page.goto("/ui/#/actions/core.echo")
    page.wait_for_function("() => document.activeElement?.id === 'f-message'")
    page.keyboard.type("enter in the field")
    page.keyboard.press("Enter")
    page.wait_for_url("**/#/executions/*")
    page.get_by_role("region", name="result").get_by_text("enter in the field").wait_for()
