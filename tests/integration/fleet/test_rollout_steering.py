"""Steering a rollout against the real SSH fleet: rollback (automatic and on
command, last batch first), retrying the failed hosts, skipping a host, TCP
checks, time windows, the sliding window mode, folded outputs and the
decision log."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.fleet.test_rollouts import (
    HOSTS,
    RUN,
    make_inventory,
    runs,
    spec,
    start,
    statuses,
    touch_cmd,
    wait,
)
from tests.support.fleet import Fleet
from tests.support.prometheus import Prometheus
from tests.support.server import Server


@pytest.fixture(scope="module", autouse=True)
def _forget_markers(fleet: Fleet) -> Iterator[None]:
    yield
    for path in Path(os.path.expanduser(f"~{fleet.user}")).glob(f".rollout-{RUN}-*"):
        path.unlink()


@pytest.fixture(scope="module")
def server(fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("steering")
    inventory = make_inventory(fleet, base / "inventory.yaml")
    srv = Server(
        base / "data",
        env={
            "SQUALL_INVENTORY": str(inventory),
            "SQUALL_SSH_KNOWN_HOSTS": str(fleet.known_hosts),
        },
    ).start()
    yield srv
    srv.stop()


@pytest.fixture
def api(server: Server) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def home(fleet: Fleet) -> Path:
    return Path(os.path.expanduser(f"~{fleet.user}"))


def undo_cmd(tag: str) -> str:
    """Record the undo, in order, in one file shared by every host."""
    return f'set -- $SSH_CONNECTION; echo "$3" >> ~/.rollout-{RUN}-{tag}-undo; echo undone'


def undone(fleet: Fleet, tag: str) -> list[str]:
    path = home(fleet) / f".rollout-{RUN}-{tag}-undo"
    return path.read_text().split() if path.exists() else []


def address_of(fleet: Fleet, name: str) -> str:
    return fleet.addresses[int(name[1:]) - 1]


def order_of(view: dict[str, Any]) -> list[list[str]]:
    return [[h["name"] for h in b["hosts"]] for b in view["batches"]]


def rollback(tag: str, automatic: bool) -> dict[str, Any]:
    return {
        "action": "core.remote",
        "parameters": {"cmd": undo_cmd(tag)},
        "automatic": automatic,
    }


def test_a_breach_rolls_back_the_changed_hosts_last_batch_first(
    api: httpx.Client, fleet: Fleet
) -> None:
    fail_at = fleet.addresses[2]  # r03, in the second batch (r02-r04)
    body = spec(
        "auto-rb",
        touch_cmd("auto-rb", fail_at=fail_at),
        stop_on_first_failure=True,
        rollback=rollback("auto-rb", automatic=True),
    )
    view = wait(api, start(api, body))
    assert view["status"] == "rolled_back", view
    assert "first failure" in view["error"]
    batches = order_of(view)
    changed = batches[0] + batches[1]
    hosts = statuses(view)
    assert all(hosts[h] == "rolled_back" for h in changed), hosts
    assert all(hosts[h] == "skipped" for h in batches[2]), hosts
    # The undo ran once on each changed host, batch 1's hosts before batch 0's,
    # and never on a host the change did not reach.
    order = undone(fleet, "auto-rb")
    assert sorted(order) == sorted(address_of(fleet, h) for h in changed)
    assert order[-1] == address_of(fleet, batches[0][0])
    assert all(runs(fleet, "auto-rb", address_of(fleet, h)) == 0 for h in batches[2])
    rb = view["rollback"]
    assert rb["state"] == "done" and rb["automatic"] is True and rb["hosts"] == len(changed)
    kinds = [e["kind"] for e in view["log"]]
    assert "stopped" in kinds and "rollback" in kinds and kinds[-1] == "ended"


def test_rollback_on_command_undoes_a_finished_rollout(api: httpx.Client, fleet: Fleet) -> None:
    body = spec("cmd-rb", touch_cmd("cmd-rb"), rollback=rollback("cmd-rb", automatic=False))
    rid = start(api, body)
    view = wait(api, rid)
    assert view["status"] == "succeeded" and view["has_rollback"]
    # Identical outputs are folded: 12 hosts said "ok".
    assert view["outputs"][0]["output"] == "ok" and view["outputs"][0]["count"] == HOSTS
    r = api.post(f"/api/v1/rollouts/{rid}/rollback")
    assert r.status_code == 200, r.text
    view = wait(api, rid, lambda v: v["status"] == "rolled_back")
    assert view["counts"] == {"rolled_back": HOSTS, "total": HOSTS}
    order = undone(fleet, "cmd-rb")
    last_batch = {address_of(fleet, h) for h in order_of(view)[2]}
    assert set(order[: len(last_batch)]) == last_batch
    assert order[-1] == address_of(fleet, order_of(view)[0][0])
    # Once is enough.
    r = api.post(f"/api/v1/rollouts/{rid}/rollback")
    assert r.status_code == 409
    # A spec without a rollback cannot be rolled back.
    plain = wait(api, start(api, spec("no-rb", "true")))
    r = api.post(f"/api/v1/rollouts/{plain['id']}/rollback")
    assert r.status_code == 409 and "no rollback" in r.json()["faultstring"]


def test_retry_runs_only_the_failed_hosts_again(api: httpx.Client, fleet: Fleet) -> None:
    flag = home(fleet) / f".rollout-{RUN}-retry-flag"
    flag.write_text("fail\n")
    fail_at = fleet.addresses[2]  # r03, in the second batch: the third one is skipped
    cmd = (
        f'set -- $SSH_CONNECTION; echo run >> ~/.rollout-{RUN}-retry-"$3"; '
        f'[ "$3" = {fail_at} ] && [ -e {flag} ] && exit 3; echo ok'
    )
    body = spec("retry", cmd, max_failures=0)
    rid = start(api, body)
    view = wait(api, rid)
    assert view["status"] == "failed" and statuses(view)["r03"] == "failed"
    skipped = [h for h, s in statuses(view).items() if s == "skipped"]
    assert skipped
    # Without --skipped only the failed host runs again; the rollout ends
    # failed no more but the skipped hosts stay skipped.
    flag.unlink()
    r = api.post(f"/api/v1/rollouts/{rid}/retry", json={})
    assert r.status_code == 200, r.text
    view = wait(api, rid)
    assert view["status"] == "succeeded", view
    hosts = statuses(view)
    assert hosts["r03"] == "succeeded" and all(hosts[h] == "skipped" for h in skipped)
    assert runs(fleet, "retry", fail_at) == 2
    # Then the hosts skipped because it stopped.
    r = api.post(f"/api/v1/rollouts/{rid}/retry", json={"skipped": True})
    assert r.status_code == 200, r.text
    view = wait(api, rid)
    assert view["status"] == "succeeded" and view["counts"] == {
        "succeeded": HOSTS,
        "total": HOSTS,
    }
    for i in range(HOSTS):
        expected = 2 if fleet.addresses[i] == fail_at else 1
        assert runs(fleet, "retry", fleet.addresses[i]) == expected
    assert api.post(f"/api/v1/rollouts/{rid}/retry", json={}).status_code == 409
    assert any(e["kind"] == "retry" and e["user"] == "admin" for e in view["log"])


def test_skip_leaves_a_pending_host_out(api: httpx.Client, fleet: Fleet) -> None:
    body = spec("skip", touch_cmd("skip"), gates=[{"after": 0, "hold": True}])
    rid = start(api, body)
    view = wait(api, rid, lambda v: v["status"] == "paused")
    first, second = order_of(view)[0][0], order_of(view)[1][0]
    r = api.post(f"/api/v1/rollouts/{rid}/skip", json={"hosts": [first]})
    assert r.status_code == 409 and "succeeded" in r.json()["faultstring"]
    assert api.post(f"/api/v1/rollouts/{rid}/skip", json={"hosts": ["nope"]}).status_code == 404
    assert api.post(f"/api/v1/rollouts/{rid}/skip", json={"hosts": []}).status_code == 400
    r = api.post(f"/api/v1/rollouts/{rid}/skip", json={"hosts": [second]})
    assert r.status_code == 200, r.text
    api.post(f"/api/v1/rollouts/{rid}/resume")
    view = wait(api, rid)
    assert view["status"] == "succeeded"
    host = next(h for b in view["batches"] for h in b["hosts"] if h["name"] == second)
    assert host["status"] == "skipped" and host["error"] == "skipped by admin"
    assert runs(fleet, "skip", address_of(fleet, second)) == 0


def test_tcp_checks(api: httpx.Client, fleet: Fleet) -> None:
    port = fleet.port
    closed = 1  # nothing listens on port 1
    body = spec(
        "tcp",
        "true",
        checks={
            "preflight": {"tcp": {"port": port}},
            "health": {"tcp": {"port": port}, "retries": 1, "interval": "1s"},
        },
    )
    view = wait(api, start(api, body))
    assert view["status"] == "succeeded", view
    body = spec(
        "tcp-closed",
        touch_cmd("tcp-closed"),
        checks={"preflight": {"tcp": {"port": closed}, "on_fail": "exclude"}},
    )
    view = wait(api, start(api, body))
    assert view["counts"]["skipped"] == HOSTS
    assert all(runs(fleet, "tcp-closed", a) == 0 for a in fleet.addresses[:HOSTS])
    assert "refused" in view["batches"][0]["hosts"][0]["error"]


def test_a_closed_time_window_holds_every_batch(api: httpx.Client, fleet: Fleet) -> None:
    # Opens on 1 January at midnight for a minute: closed now (but on that minute).
    window = {"window": {"cron": "0 0 1 1 *", "duration": "1m", "timezone": "UTC"}}
    rid = start(api, spec("closed", touch_cmd("closed"), gates=[window]))
    view = wait(api, rid, lambda v: (v["gate"] or {}).get("kind") == "window")
    assert view["status"] == "running" and view["counts"] == {"pending": HOSTS, "total": HOSTS}
    assert view["gate"]["until"].startswith(f"{time.gmtime().tm_year + 1}-01-01T00:00:00")
    time.sleep(1)
    assert all(runs(fleet, "closed", a) == 0 for a in fleet.addresses[:HOSTS])
    api.post(f"/api/v1/rollouts/{rid}/abort")
    assert wait(api, rid)["status"] == "aborted"
    # Always open: every minute for two minutes.
    window = {"window": {"cron": "* * * * *", "duration": "2m"}}
    view = wait(api, start(api, spec("open", "true", gates=[window])))
    assert view["status"] == "succeeded"


def test_window_mode_keeps_a_sliding_window_of_hosts_in_flight(
    api: httpx.Client, fleet: Fleet
) -> None:
    # r01 is slow: with waves of 3 the next hosts would wait for it; with a
    # sliding window they keep going past it.
    slow = fleet.addresses[0]
    cmd = f'set -- $SSH_CONNECTION; if [ "$3" = {slow} ]; then sleep 2; else sleep 0.2; fi'
    body = spec("sliding", cmd, mode="window", concurrency=3)
    del body["batches"]
    view = wait(api, start(api, body))
    assert view["status"] == "succeeded" and len(view["batches"]) == 1
    spans = {
        h["name"]: (_epoch(h["started_at"]), _epoch(h["ended_at"]))
        for h in view["batches"][0]["hosts"]
    }
    for begun, _ in spans.values():
        assert sum(1 for s, e in spans.values() if s <= begun < e) <= 3
    first_start, first_end = spans["r01"]
    passed = [
        h for h, (s, e) in spans.items() if h != "r01" and s >= first_start and e <= first_end
    ]
    assert len(passed) >= 3, spans


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _analysis(prometheus: Prometheus, metric: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": "error-rate",
        "provider": "prometheus",
        "url": prometheus.url,
        "query": f'{metric}{{rollout="{{{{ rollout.name }}}}"}}',
        "interval": "1s",
        "count": 2,
        "success": "result[0] < 0.05",
        "failure": "result[0] >= 0.10",
        **extra,
    }


def _measured(prometheus: Prometheus, metric: str, name: str, value: float) -> None:
    prometheus.exporter.set(metric, value, {"rollout": name})
    prometheus.wait_for(f'{metric}{{rollout="{name}"}}', lambda v: v == [value])


def test_a_failed_metric_analysis_rolls_back(
    api: httpx.Client, fleet: Fleet, prometheus: Prometheus
) -> None:
    metric = "squall_test_error_ratio"
    _measured(prometheus, metric, "analysis-bad", 0.2)
    body = spec(
        "analysis-bad",
        touch_cmd("analysis-bad"),
        analysis=[_analysis(prometheus, metric)],
        gates=[{"after": 0, "analysis": "error-rate"}],
        rollback=rollback("analysis-bad", automatic=True),
    )
    view = wait(api, start(api, body))
    assert view["status"] == "rolled_back", view
    assert "analysis error-rate failed after batch 0" in view["error"]
    run = view["analysis"][0]
    assert run["status"] == "failed" and run["after_batch"] == 0
    assert run["measurements"][0]["value"] == [0.2]
    assert run["measurements"][0]["outcome"] == "failed"
    first = order_of(view)[0][0]
    assert undone(fleet, "analysis-bad") == [address_of(fleet, first)]
    assert statuses(view)[first] == "rolled_back"
    # Nothing beyond the first batch was touched.
    later = [h for b in order_of(view)[1:] for h in b]
    assert all(runs(fleet, "analysis-bad", address_of(fleet, h)) == 0 for h in later)


def test_a_passing_analysis_goes_on_and_an_inconclusive_one_waits(
    api: httpx.Client, prometheus: Prometheus
) -> None:
    metric = "squall_test_error_ratio"
    _measured(prometheus, metric, "analysis-ok", 0.01)
    body = spec(
        "analysis-ok",
        "true",
        analysis=[_analysis(prometheus, metric)],
        gates=[{"after": 0, "analysis": "error-rate"}],
    )
    view = wait(api, start(api, body))
    assert view["status"] == "succeeded", view
    run = view["analysis"][0]
    assert run["status"] == "successful" and len(run["measurements"]) == 2
    assert [m["value"] for m in run["measurements"]] == [[0.01], [0.01]]

    # Between the two conditions: a human decides.
    _measured(prometheus, metric, "analysis-unsure", 0.07)
    body = {**body, "name": "analysis-unsure"}
    rid = start(api, body)
    view = wait(api, rid, lambda v: v["status"] == "paused")
    assert view["gate"]["kind"] == "analysis" and view["gate"]["inconclusive"] is True
    assert view["analysis"][0]["status"] == "inconclusive"
    assert view["counts"] == {"succeeded": 1, "pending": HOSTS - 1, "total": HOSTS}
    api.post(f"/api/v1/rollouts/{rid}/resume")
    assert wait(api, rid)["status"] == "succeeded"
