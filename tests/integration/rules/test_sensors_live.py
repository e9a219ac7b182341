"""Pack sensors run by the server: their events reach the rules, their
failures are visible in the API."""

from __future__ import annotations

import httpx

from tests.integration.rules.test_rules_api import enforcements, wait_for


def test_sensor_events_start_rule_actions(client: httpx.Client) -> None:
    def fired() -> list[int]:
        done = []
        for e in enforcements(client, rule_ref="epack.on_event"):
            ti = client.get(f"/api/v1/triggerinstances/{e['trigger_instance_id']}").json()
            if (ti.get("context") or {}).get("sensor") == "epack.Counter":
                done.append(ti["payload"]["n"])
        return sorted(done) if len(done) >= 5 else []

    assert wait_for(fired, timeout=30, what="the counter sensor's events") == [11, 12, 13, 14, 15]
    key = client.get("/api/v1/keys/epack.Counter:counter.next").json()
    assert key["value"] == "16"
    rejected = client.get(
        "/api/v1/triggerinstances", params={"status": "rejected", "trigger": "epack.event"}
    ).json()
    assert any("payload of trigger epack.event" in r["context"]["reason"] for r in rejected)


def test_a_crashing_sensor_is_restarted_and_its_error_shown(client: httpx.Client) -> None:
    def crashed() -> dict:
        sensor = client.get("/api/v1/sensortypes/epack.Crasher").json()
        status = sensor["status"]
        ok = status.get("restarts", 0) >= 1 and "monitoring system" in (
            status.get("last_error") or ""
        )
        return sensor if ok else {}

    sensor = wait_for(crashed, timeout=30, what="the crasher to be restarted")
    assert sensor["status"]["state"] in ("backoff", "starting", "crashed")
    counter = client.get("/api/v1/sensortypes/epack.Counter").json()
    assert counter["status"]["state"] == "running"  # one bad sensor does not stop the others
    listed = {s["ref"] for s in client.get("/api/v1/sensortypes").json()}
    assert {"epack.Counter", "epack.Crasher"} <= listed


def test_disable_stops_a_sensor(client: httpx.Client) -> None:
    r = client.put("/api/v1/sensortypes/epack.Crasher", json={"enabled": False})
    assert r.status_code == 200 and r.json()["enabled"] is False
    wait_for(
        lambda: (
            client.get("/api/v1/sensortypes/epack.Crasher").json()["status"]["state"] == "stopped"
        ),
        timeout=20,
        what="the sensor to stop",
    )
