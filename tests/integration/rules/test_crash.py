"""kill -9 during a webhook load: every event answered 202 survives, with its
enforcement and its execution, once the server is back — answered by the
server itself, or by its webhook intake (both processes killed)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.rules.conftest import make_event_pack
from tests.support.server import API_KEY, Server

FINAL = {"succeeded", "failed", "timeout", "canceled", "abandoned"}


def _all(client: httpx.Client, path: str, **params: object) -> list[dict]:
    out: list[dict] = []
    while True:
        page = client.get(path, params={**params, "limit": 1000, "offset": len(out)})
        page.raise_for_status()
        rows = page.json()
        out += rows
        if len(rows) < 1000:
            return out


def _fire(url: str, start: int, stop: int, accepted: list[int], halt: threading.Event) -> None:
    with httpx.Client(base_url=url, headers={"St2-Api-Key": API_KEY}, timeout=5) as c:
        for seq in range(start, stop):
            if halt.is_set():
                return
            try:
                r = c.post("/api/v1/webhooks/load", json={"seq": seq, "severity": "critical"})
            except httpx.HTTPError:
                return  # the server died under us: this event was never acknowledged
            if r.status_code == 202:
                accepted.append(seq)


@pytest.mark.parametrize("intake", [False, True], ids=["server", "intake"])
def test_accepted_events_survive_kill_9(tmp_path: Path, intake: bool) -> None:
    packs = tmp_path / "packs"
    make_event_pack(packs)
    srv = Server(tmp_path / "data", packs_dirs=[packs], intake=intake).start()
    url = srv.intake_url if intake else srv.url
    accepted: list[int] = []
    halt = threading.Event()
    threads = [
        threading.Thread(target=_fire, args=(url, i * 100_000, i * 100_000 + 5000, accepted, halt))
        for i in range(4)
    ]
    try:
        for t in threads:
            t.start()
        deadline = time.time() + 30
        while len(accepted) < 400 and time.time() < deadline:
            time.sleep(0.01)
        srv.kill()
        halt.set()
        for t in threads:
            t.join(10)
        assert len(accepted) >= 400, "the load did not get going"
        srv.start()
        with srv.client() as client:

            def outcome() -> dict[int, str]:
                seen: dict[int, str] = {}
                instances = client.get(
                    "/api/v1/triggerinstances",
                    params={"limit": 10000, "trigger": "core.st2.webhook"},
                ).json()
                by_id = {
                    i["id"]: i
                    for i in instances
                    if i["payload"].get("body", {}).get("seq") is not None
                }
                rows = _all(client, "/api/v1/ruleenforcements", rule_ref="epack.load")
                execs = {
                    e["id"]: e["status"]
                    for e in _all(client, "/api/v1/executions", exclude_attributes="result")
                }
                for e in rows:
                    ti = by_id.get(e["trigger_instance_id"])
                    if ti and e.get("execution_id") in execs:
                        seen[ti["payload"]["body"]["seq"]] = execs[e["execution_id"]]
                return seen

            deadline = time.time() + 60
            seen = outcome()
            while time.time() < deadline:
                if set(accepted) <= set(seen) and all(seen[s] in FINAL for s in accepted):
                    break
                time.sleep(0.5)
                seen = outcome()
            missing = sorted(set(accepted) - set(seen))
            assert not missing, f"{len(missing)} accepted events lost, e.g. {missing[:5]}"
            assert all(seen[s] in FINAL for s in accepted)
    finally:
        halt.set()
        srv.stop()


pytestmark = pytest.mark.timeout(240)
