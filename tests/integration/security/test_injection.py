"""Event data is data: a hostile webhook reaches a shell command through a
rule, a workflow and a python-script action, and only the intended commands
run: each prints the payload literally and no marker file appears."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.integration.security.conftest import intake_client, rule_executions
from tests.support.server import Server


def test_a_hostile_webhook_runs_nothing_but_the_intended_commands(
    client: httpx.Client, security_server: Server, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    victim = tmp_path / "victim"
    victim.write_text("still here")
    msg = (
        f"; rm -rf {victim} ; touch {marker}\n"
        f"$(touch {marker}) `touch {marker}` && touch {marker} | touch {marker}\n"
        "it's \"quoted\" \\ {{ 7*7 }} {{ ''.__class__ }} {% raw %}x{% endraw %} <% 1+1 %>"
    )
    with intake_client(security_server) as hooks:
        r = hooks.post("/api/v1/webhooks/inject", json={"msg": msg})
    assert r.status_code == 202

    shell = rule_executions(client, "secpack.inject_local")[0]
    flow = rule_executions(client, "secpack.inject_echo_flow")[0]
    script = rule_executions(client, "secpack.inject_py_echo")[0]

    done = security_server.wait_final(client, shell["id"])
    assert done["status"] == "succeeded", done["result"]
    assert done["result"]["stdout"] == msg

    done = security_server.wait_final(client, flow["id"])
    assert done["status"] == "succeeded", done["result"]
    (child,) = client.get("/api/v1/executions", params={"parent": flow["id"]}).json()
    assert child["result"]["stdout"] == msg

    done = security_server.wait_final(client, script["id"])
    assert done["status"] == "succeeded", done["result"]
    assert done["result"]["result"] == {"msg": msg}
    assert done["result"]["stdout"].rstrip("\n") == msg

    assert not marker.exists()
    assert victim.read_text() == "still here"
