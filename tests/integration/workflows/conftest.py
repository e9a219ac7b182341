from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.api.conftest import write
from tests.support.server import Server


def make_workflow_pack(packs: Path) -> Path:
    """Orquesta workflows and an ActionChain covering the language and control."""
    pack = packs / "wpack"
    write(pack / "pack.yaml", "name: wpack\nversion: 0.1.0\ndescription: flows\nauthor: tests\n")

    def action(name: str, runner: str, params: str = "", extra: str = "") -> None:
        entry = f"workflows/{name}.yaml" if runner in ("orquesta", "action-chain") else ""
        write(
            pack / "actions" / f"{name}.yaml",
            f"name: {name}\nrunner_type: {runner}\nentry_point: {entry}\n{extra}"
            + (f"parameters:\n{params}" if params else ""),
        )

    def flow(name: str, text: str) -> None:
        write(pack / "actions" / "workflows" / f"{name}.yaml", text)

    action("greet", "orquesta", "  name:\n    type: string\n    default: Stanley\n")
    flow(
        "greet",
        """
        version: 1.0
        input:
          - name
        vars:
          - greeting: null
        output:
          - greeting: <% ctx().greeting %>
          - user: "{{ ctx().st2.user }}"
        tasks:
          hello:
            action: core.echo message=<% ctx().name %>
            next:
              - when: <% succeeded() %>
                publish: greeting=<% result().stdout %>
                do: shout
          shout:
            action: core.local
            input:
              cmd: "printf '%s!' '{{ ctx().greeting }}' | tr a-z A-Z"
            next:
              - when: <% succeeded() %>
                publish:
                  - greeting: <% result().stdout %>
        """,
    )
    action("fan", "orquesta", "  hosts:\n    type: array\n    default: [a, b, c, d, e]\n")
    flow(
        "fan",
        """
        version: 1.0
        input:
          - hosts
        output:
          - checked: <% ctx().checked %>
          - both: <% ctx().left %>-<% ctx().right %>
        tasks:
          start:
            next:
              - do: [left, right]
          left:
            action: core.echo message="left"
            next:
              - when: <% succeeded() %>
                publish: left=<% result().stdout %>
                do: meet
          right:
            action: core.echo message="right"
            next:
              - when: <% succeeded() %>
                publish: right=<% result().stdout %>
                do: meet
          meet:
            join: all
            next:
              - do: check
          check:
            with:
              items: host in <% ctx().hosts %>
              concurrency: 2
            action: core.echo message="<% item(host) %>"
            next:
              - when: <% succeeded() %>
                publish: checked=<% result().select($.stdout) %>
        """,
    )
    action("handle", "orquesta")
    flow(
        "handle",
        """
        version: 1.0
        output:
          - handled: <% ctx().handled %>
        vars:
          - handled: false
        tasks:
          broken:
            action: core.local cmd="exit 3"
            retry:
              count: 2
            next:
              - when: <% failed() %>
                publish:
                  - handled: true
                  - code: <% result().return_code %>
                do: cleanup
          cleanup:
            action: core.noop
        """,
    )
    action("fails", "orquesta")
    flow(
        "fails",
        """
        version: 1.0
        output:
          - reached: <% ctx().reached %>
        vars:
          - reached: start
        tasks:
          first:
            action: core.echo message="one"
            next:
              - when: <% succeeded() %>
                publish: reached="first"
                do: gate
          gate:
            action: core.local
            input:
              cmd: test "<% st2kv('system.wf_gate') %>" = open
            next:
              - when: <% succeeded() %>
                publish: reached="gate"
                do: last
          last:
            action: core.echo message="done"
            next:
              - when: <% succeeded() %>
                publish: reached="last"
        """,
    )
    action("parent", "orquesta")
    flow(
        "parent",
        """
        version: 1.0
        output:
          - child: <% ctx().child %>
        tasks:
          call:
            action: wpack.greet name="Child"
            next:
              - when: <% succeeded() %>
                publish: child=<% result().output.greeting %>
        """,
    )
    action("slow", "orquesta", "  seconds:\n    type: number\n    default: 1\n")
    flow(
        "slow",
        """
        version: 1.0
        input:
          - seconds
        output:
          - done: <% ctx().done %>
        vars:
          - done: 0
        tasks:
          one:
            action: core.local cmd="sleep <% ctx().seconds %>"
            next:
              - when: <% succeeded() %>
                publish: done=1
                do: two
          two:
            action: core.local cmd="sleep <% ctx().seconds %>"
            next:
              - when: <% succeeded() %>
                publish: done=2
                do: three
          three:
            action: core.local cmd="sleep <% ctx().seconds %>"
            next:
              - when: <% succeeded() %>
                publish: done=3
        """,
    )
    action("nested_slow", "orquesta")
    flow(
        "nested_slow",
        """
        version: 1.0
        tasks:
          inner:
            action: wpack.slow seconds=1
        """,
    )
    action("approve", "orquesta")
    flow(
        "approve",
        """
        version: 1.0
        output:
          - approved: <% ctx().approved %>
        vars:
          - approved: null
        tasks:
          ask:
            action: core.ask
            input:
              schema:
                type: object
                properties:
                  approved: {type: boolean}
                required: [approved]
              ttl: 60
            next:
              - when: <% succeeded() %>
                publish: approved=<% result().response.approved %>
        """,
    )
    action("bad", "orquesta")
    flow(
        "bad",
        """
        version: 1.0
        tasks:
          one:
            action: core.noop
            next:
              - when: <% succeeded( %>
                do: nowhere
        """,
    )
    action("missing_action", "orquesta")
    flow("missing_action", "version: 1.0\ntasks:\n  go:\n    action: wpack.nope\n")
    action("items_gate", "orquesta")
    flow(
        "items_gate",
        """
        version: 1.0
        output:
          - seen: <% ctx().seen %>
        vars:
          - seen: []
        tasks:
          check:
            with: n in <% list(1, 2, 3) %>
            action: core.local
            input:
              cmd: test <% item(n) %> != 2 || test "<% st2kv('system.wf_items') %>" = ok
            next:
              - when: <% succeeded() %>
                publish: seen=<% result().select($.return_code) %>
        """,
    )
    action("chain", "action-chain", "  who:\n    type: string\n    default: world\n")
    flow(
        "chain",
        """
        ---
        vars:
          prefix: hello
        chain:
          - name: build
            ref: core.echo
            params:
              message: "{{ prefix }} {{ who }}"
            publish:
              built: "{{ build.stdout }}"
            on-success: test
          - name: test
            ref: core.local
            params:
              cmd: "test -n '{{ built }}' && exit 1"
            on-success: deploy
            on-failure: report
          - name: deploy
            ref: core.echo
            params:
              message: deploying
          - name: report
            ref: core.echo
            params:
              message: "tests failed for {{ built }}"
        default: build
        """,
    )
    return pack


@pytest.fixture(scope="module")
def wf_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    packs = tmp_path_factory.mktemp("packs")
    make_workflow_pack(packs)
    server = Server(packs_dirs=[packs]).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture()
def api(wf_server: Server) -> Iterator[httpx.Client]:
    with wf_server.client() as client:
        yield client


def run(api: httpx.Client, action: str, **parameters: Any) -> str:
    answer = api.post("/api/v1/executions", json={"action": action, "parameters": parameters})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def wait_status(api: httpx.Client, execution_id: str, *statuses: str, timeout: float = 30) -> dict:
    deadline = time.time() + timeout
    body: dict = {}
    while time.time() < deadline:
        body = api.get(f"/api/v1/executions/{execution_id}").json()
        if body["status"] in statuses:
            return body
        time.sleep(0.05)
    raise AssertionError(f"{execution_id} is {body.get('status')}, not {statuses}")


def children(api: httpx.Client, execution_id: str) -> list[dict]:
    return list(api.get(f"/api/v1/executions/{execution_id}/children").json())
