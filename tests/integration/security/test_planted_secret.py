"""Plant secrets, use them every way an operator would, then grep every
surface for them: API responses (every list and get), the event stream,
the server log, the audit export, execution output, and the stored output,
results and audit records in the database.

Planted: a secret action parameter, a datastore secret read through
``st2kv`` (in an action's command and a workflow's input), and text that
only a configured mask pattern protects (arriving in a webhook).
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
from typing import Any

import httpx
import orjson

from tests.integration.security.conftest import intake_client, rule_executions, wait_for
from tests.support.server import API_KEY, Server

MASK = "********"


class StreamCapture:
    """The raw event stream, read in a thread while the test runs."""

    def __init__(self, server: Server) -> None:
        self.chunks: list[bytes] = []
        self.response: httpx.Response | None = None
        self.client = httpx.Client(base_url=server.url, timeout=None, verify=server.verify)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.opened = threading.Event()

    def _read(self) -> None:
        with self.client.stream("GET", "/stream/v1/stream", params={"st2-api-key": API_KEY}) as r:
            self.response = r
            self.opened.set()
            try:
                for chunk in r.iter_raw():
                    self.chunks.append(chunk)
            except httpx.HTTPError:
                pass  # closed by stop()

    def start(self) -> StreamCapture:
        self.thread.start()
        assert self.opened.wait(10), "the event stream did not open"
        return self

    def text(self) -> str:
        return b"".join(self.chunks).decode(errors="replace")

    def events(self) -> list[dict[str, Any]]:
        out = []
        for block in self.text().split("\n\n"):
            for line in block.splitlines():
                if line.startswith("data: "):
                    out.append(orjson.loads(line[6:]))
        return out

    def stop(self) -> None:
        self.client.close()
        self.thread.join(5)


def _get_everything(client: httpx.Client, execution_ids: list[str]) -> dict[str, str]:
    """Every GET route of the API schema, with each planted execution's id."""
    schema = client.get("/api/v1/openapi.json").json()
    bodies: dict[str, str] = {}
    for path, operations in schema["paths"].items():
        if "get" not in operations or path.startswith("/stream"):
            continue
        if "{" not in path:
            bodies[path] = client.get(path).text
        elif path.startswith("/api/v1/executions/{") and path.count("{") == 1:
            for eid in execution_ids:
                name = path[path.index("{") : path.index("}") + 1]
                concrete = path.replace(name, eid)
                bodies[concrete] = client.get(concrete).text
    return bodies


def _database_text(server: Server) -> dict[str, str]:
    """What the database keeps of output, results and the audit trail (the
    parameters, events and workflow state hold the values the work needs)."""
    db = sqlite3.connect(server.data_dir / "squall.db")
    try:
        queries = {
            "execution_output": "SELECT data FROM execution_output",
            "executions.result": "SELECT result FROM executions",
            "audit": "SELECT details FROM audit",
        }
        return {
            name: "\n".join(str(row) for row in db.execute(query))
            for name, query in queries.items()
        }
    finally:
        db.close()


def test_planted_secrets_appear_on_no_surface(
    client: httpx.Client, security_server: Server
) -> None:
    param_secret = f"param-{secrets.token_hex(8)}"
    kv_secret = f"kv-{secrets.token_hex(8)}"
    pattern_secret = f"PLANTED-{secrets.token_hex(6)}"
    input_secret = f"input-{secrets.token_hex(8)}"
    planted = {
        "parameter": param_secret,
        "datastore": kv_secret,
        "pattern": pattern_secret,
        "workflow input": input_secret,
    }

    r = client.put("/api/v1/keys/planted_kv", json={"value": kv_secret, "secret": True})
    assert r.status_code == 200, r.text
    stream = StreamCapture(security_server).start()
    try:
        # An action run through the API; a webhook's rule starting a workflow.
        r = client.post(
            "/api/v1/executions",
            json={
                "action": "secpack.leak",
                "parameters": {"token": param_secret, "note": pattern_secret},
            },
        )
        assert r.status_code == 201, r.text
        direct = r.json()["id"]
        with intake_client(security_server) as hooks:  # the intake's log is searched too
            r = hooks.post("/api/v1/webhooks/plant", json={"note": pattern_secret})
        assert r.status_code == 202
        flow = rule_executions(client, "secpack.plant_leaky_flow")[0]["id"]

        done = security_server.wait_final(client, direct)
        assert done["status"] == "succeeded", done["result"]
        # The command did receive and print every secret; only masks show.
        assert done["result"]["stdout"] == f"token={MASK} kv={MASK} note={MASK}"
        assert done["result"]["stderr"] == f"again {MASK}"
        done = security_server.wait_final(client, flow)
        assert done["status"] == "succeeded", done["result"]
        assert done["result"]["output"]["out"] == f"token={MASK} kv={MASK} note={MASK}"
        (child,) = client.get(f"/api/v1/executions/{flow}/children").json()
        rerun = client.post(f"/api/v1/executions/{direct}/re_run", json={}).json()
        security_server.wait_final(client, rerun["id"])
        # A workflow's secret input, rendered into a task's plain parameter.
        r = client.post(
            "/api/v1/executions",
            json={"action": "secpack.secret_flow", "parameters": {"password": input_secret}},
        )
        assert r.status_code == 201, r.text
        secret_flow = r.json()["id"]
        done = security_server.wait_final(client, secret_flow)
        assert done["status"] == "succeeded", done["result"]
        (task,) = client.get(f"/api/v1/executions/{secret_flow}/children").json()
        task_id = task["id"] if isinstance(task, dict) else task
        shown = client.get(f"/api/v1/executions/{task_id}").json()
        assert shown["result"]["stdout"] == f"pw={MASK}"

        ids = [direct, flow, child["id"] if isinstance(child, dict) else child, rerun["id"]]
        ids += [secret_flow, task_id]
        final = {(e, "succeeded") for e in ids}
        wait_for(
            lambda: (
                final <= {(e.get("id"), e.get("status")) for e in stream.events() if "status" in e}
            ),
            "the stream to show every execution's end",
        )
    finally:
        stream.stop()

    surfaces: dict[str, str] = {
        "re-run response": orjson.dumps(rerun).decode(),
        "event stream": stream.text(),
        "server log": security_server.log.read_text(errors="replace"),
        "audit export": client.get("/api/v1/audit/export").text,
    }
    surfaces.update(_get_everything(client, ids))
    surfaces.update(_database_text(security_server))
    assert MASK in surfaces["event stream"] and MASK in surfaces["execution_output"]
    leaks = [
        f"{kind} secret in {surface}"
        for surface, text in surfaces.items()
        for kind, value in planted.items()
        if value in text
    ]
    assert not leaks, leaks
    # The datastore still gives the secret to who asks for it.
    shown = client.get("/api/v1/keys/planted_kv", params={"decrypt": "true"}).json()
    assert shown["value"] == kv_secret
