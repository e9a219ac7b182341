"""``squall up --intake-port``: webhooks answered by ``squall intake`` (a
process of its own, keeping calls in its inbox) behave as the server's own:
the same checks and answers, the same records, the same rules — and the
inbox is emptied into the database."""

from __future__ import annotations

import hashlib
import hmac
import os
import signal
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from squall.store import inbox
from tests.integration.rules.conftest import make_event_pack
from tests.integration.rules.test_rules_api import enforcements, wait_for
from tests.support.server import API_KEY, Server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    packs = tmp_path_factory.mktemp("packs")
    make_event_pack(packs)
    srv = Server(tmp_path_factory.mktemp("data"), packs_dirs=[packs], intake=True).start()
    yield srv
    srv.stop()


@pytest.fixture()
def client(server: Server) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c


@pytest.fixture()
def intake(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.intake_url, headers={"St2-Api-Key": API_KEY}) as c:
        yield c


def test_a_webhook_answered_by_the_intake_runs_its_rule(
    server: Server, client: httpx.Client, intake: httpx.Client
) -> None:
    body = {"severity": "critical", "host": "web-7"}
    sent = time.time()
    r = intake.post("/api/v1/webhooks/hooks/alert", json=body, headers={"X-Origin": "pager"})
    assert r.status_code == 202 and r.json() == body
    found = wait_for(
        lambda: [
            e for e in enforcements(client, rule_ref="epack.on_alert") if e.get("execution_id")
        ],
        what="an enforcement",
    )
    execution = server.wait_final(client, found[0]["execution_id"])
    assert execution["status"] == "succeeded"
    assert execution["result"]["stdout"].strip() == "recorded web-7 pager"
    instance = client.get(f"/api/v1/triggerinstances/{found[0]['trigger_instance_id']}").json()
    assert instance["payload"]["body"] == body
    assert instance["status"] == "processed"
    assert instance["context"]["source"] == "webhook" and instance["context"]["user"] == "admin"
    assert "st2-api-key" not in instance["payload"]["headers_lower"]
    # When it was answered, not when the server took it.
    occurred = time.mktime(time.strptime(instance["occurrence_time"][:19], "%Y-%m-%dT%H:%M:%S"))
    assert abs(occurred - time.timezone - sent) < 2


def test_hygiene_reads_back_the_instances_of_intake_calls(
    server: Server, client: httpx.Client, intake: httpx.Client
) -> None:
    for n in (1, 2, 3):
        assert intake.post("/api/v1/webhooks/batch", json={"n": n}).status_code == 202
    fired = wait_for(
        lambda: [e for e in enforcements(client, rule_ref="epack.batch") if e.get("execution_id")],
        what="the accumulated action",
    )
    execution = server.wait_final(client, fired[0]["execution_id"])
    assert execution["result"]["stdout"].strip() == "recorded 3:123"


def test_the_intake_refuses_what_the_server_refuses(
    server: Server, client: httpx.Client, intake: httpx.Client
) -> None:
    assert intake.post("/api/v1/webhooks/no/such/hook", json={}).status_code == 404
    deep: Any = 1
    for _ in range(100):
        deep = {"x": deep}
    r = intake.post("/api/v1/webhooks/hooks/alert", json=deep)
    assert r.status_code == 400 and "deeper" in r.json()["faultstring"]
    assert intake.post("/api/v1/webhooks/hooks/alert", content=b"x" * 5_000_000).status_code == 413
    r = intake.post("/api/v1/webhooks/st2", json={"trigger": "epack.event", "payload": {"n": "x"}})
    assert r.status_code == 400 and "payload of trigger epack.event" in r.json()["faultstring"]
    r = intake.post("/api/v1/webhooks/st2", json={"trigger": "epack.event", "payload": {"n": 7}})
    assert r.status_code == 202
    wait_for(lambda: enforcements(client, rule_ref="epack.on_event"), what="the st2 webhook's rule")


def test_signatures_and_refusals_are_recorded(
    server: Server, client: httpx.Client, intake: httpx.Client
) -> None:
    client.put("/api/v1/keys/github_secret", json={"value": "s3cret", "secret": True})
    raw = b'{"ref": "refs/heads/intake"}'
    good = "sha256=" + hmac.new(b"s3cret", raw, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json"}
    with httpx.Client(base_url=server.intake_url, timeout=10) as anon:
        assert anon.post("/api/v1/webhooks/github", content=raw, headers=headers).status_code == 401
        bad = {**headers, "X-Hub-Signature-256": "sha256=" + "0" * 64}
        assert anon.post("/api/v1/webhooks/github", content=raw, headers=bad).status_code == 403
        signed = {**headers, "X-Hub-Signature-256": good}
        ok = wait_for(
            # The webhook's secret is cached for a second.
            lambda: (
                anon.post("/api/v1/webhooks/github", content=raw, headers=signed).status_code == 202
            ),
            what="the signed call to be accepted",
        )
        assert ok
    wait_for(
        lambda: (
            "the webhook signature does not match" in (seen := _reasons(client))
            and any("authentication required" in r for r in seen)
        ),
        what="the rejected calls to be recorded",
    )
    wait_for(
        lambda: any(
            server.wait_final(client, e["execution_id"])["result"]["stdout"].strip()
            == "recorded refs/heads/intake"
            for e in enforcements(client, rule_ref="epack.signed")
            if e.get("execution_id")
        ),
        what="the signed call's run",
    )

    # A user who may not send webhooks: 403, and the refusal is audited.
    name = f"nohooks-{uuid.uuid4().hex[:6]}"
    assert client.post("/api/v1/users", json={"name": name, "roles": []}).status_code == 201
    key = client.post("/api/v1/apikeys", json={"user": name}).json()["key"]
    r = httpx.post(
        f"{server.intake_url}/api/v1/webhooks/hooks/alert",
        json={"severity": "critical", "host": "web-1"},
        headers={"St2-Api-Key": key},
    )
    assert r.status_code == 403 and "webhook_send" in r.json()["faultstring"]
    denied = wait_for(
        lambda: client.get("/api/v1/audit", params={"actor": name, "kind": "denied"}).json(),
        what="the audit record",
    )
    assert denied[0]["target"] == "hooks/alert" and denied[0]["outcome"] == "denied"


def _reasons(client: httpx.Client) -> set[str]:
    rows = client.get(
        "/api/v1/triggerinstances", params={"status": "rejected", "trigger": "core.st2.webhook"}
    ).json()
    return {r["payload"]["reason"] for r in rows}


def test_only_webhooks_are_served_there(server: Server) -> None:
    assert httpx.get(f"{server.intake_url}/health").json()["status"] == "ok"
    r = httpx.get(f"{server.intake_url}/api/v1/actions", headers={"St2-Api-Key": API_KEY})
    assert r.status_code == 404
    assert "webhooks only" in r.json()["faultstring"] and server.url in r.json()["faultstring"]


def test_a_record_that_cannot_be_kept_stops_nothing(
    server: Server, client: httpx.Client, intake: httpx.Client
) -> None:
    conn = inbox.connect(inbox.path_in(server.data_dir))
    try:
        inbox.append(conn, [("accepted", {"events": "not a list of events"})])
    finally:
        conn.close()
    body = {"severity": "critical", "host": "web-after-a-bad-record"}
    assert intake.post("/api/v1/webhooks/hooks/alert", json=body).status_code == 202
    wait_for(
        lambda: any(
            client.get(f"/api/v1/triggerinstances/{e['trigger_instance_id']}").json()["payload"][
                "body"
            ]
            == body
            for e in enforcements(client, rule_ref="epack.on_alert")
        ),
        what="the call after the bad record",
    )
    assert "is dropped" in server.log.read_text()


def test_the_inbox_is_emptied_into_the_database(server: Server, intake: httpx.Client) -> None:
    for n in range(20):
        assert intake.post("/api/v1/webhooks/storm", json={"host": f"h{n}"}).status_code == 202
    path: Path = inbox.path_in(server.data_dir)

    def emptied() -> bool:
        box = sqlite3.connect(path)
        db = sqlite3.connect(server.data_dir / "squall.db")
        try:
            left = box.execute("SELECT count(*) FROM inbox").fetchone()[0]
            last = box.execute("SELECT seq FROM sqlite_sequence WHERE name = 'inbox'").fetchone()
            marks = db.execute("SELECT seq FROM inbox_marks").fetchall()
            return left == 0 and marks == [(last[0],)]
        finally:
            box.close()
            db.close()

    assert wait_for(emptied, what="the inbox to be taken and pruned")


def test_an_intake_that_dies_is_started_again(server: Server, client: httpx.Client) -> None:
    (pid,) = [p for p in server.children() if b"intake" in Path(f"/proc/{p}/cmdline").read_bytes()]
    os.kill(pid, signal.SIGKILL)

    def back() -> bool:
        try:
            return httpx.get(f"{server.intake_url}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(back, what="the intake to be started again")
    assert pid not in server.children()
    body = {"severity": "critical", "host": "web-after-a-restart"}
    r = httpx.post(
        f"{server.intake_url}/api/v1/webhooks/hooks/alert",
        json=body,
        headers={"St2-Api-Key": API_KEY},
    )
    assert r.status_code == 202
    wait_for(
        lambda: any(
            i["payload"].get("body") == body
            for i in client.get("/api/v1/triggerinstances", params={"limit": 50}).json()
        ),
        what="the call after the restart",
    )
    assert "the webhook intake exited" in server.log.read_text()
