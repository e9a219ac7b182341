"""Executions end to end through a live server: run, fail, time out, cancel,
re-run, output, secrets, policies, bad input."""

from __future__ import annotations

import itertools
import socket
import time

import httpx

from tests.support.server import Server


def run(client: httpx.Client, action: str, **params: object) -> dict:
    r = client.post("/api/v1/executions", json={"action": action, "parameters": params})
    assert r.status_code == 201, r.text
    return r.json()


def test_health_and_authentication(server: Server) -> None:
    assert httpx.get(f"{server.url}/health").status_code == 200
    r = httpx.get(f"{server.url}/api/v1/executions")
    assert r.status_code == 401
    assert "API key" in r.json()["faultstring"]
    r = httpx.get(f"{server.url}/api/v1/executions", headers={"St2-Api-Key": "wrong"})
    assert r.status_code == 401


def test_local_command_succeeds_with_st2_result(server: Server, client: httpx.Client) -> None:
    ex = run(client, "core.local", cmd="echo hello; echo oops >&2")
    done = server.wait_final(client, ex["id"])
    assert done["status"] == "succeeded"
    assert done["result"]["stdout"] == "hello"
    assert done["result"]["stderr"] == "oops"
    assert done["result"]["return_code"] == 0
    assert done["result"]["succeeded"] is True
    assert [e["status"] for e in done["log"]] == ["requested", "scheduled", "running", "succeeded"]
    out = client.get(f"/api/v1/executions/{ex['id']}/output").text
    assert "hello" in out and "oops" in out


def test_failed_command_is_failed(server: Server, client: httpx.Client) -> None:
    done = server.wait_final(client, run(client, "core.local", cmd="exit 7")["id"])
    assert done["status"] == "failed"
    assert done["result"]["return_code"] == 7


def test_noop_and_echo(server: Server, client: httpx.Client) -> None:
    assert server.wait_final(client, run(client, "core.noop")["id"])["status"] == "succeeded"
    done = server.wait_final(client, run(client, "core.echo", message="hi there")["id"])
    assert done["result"]["stdout"] == "hi there"


def test_core_tcp(server: Server, client: httpx.Client) -> None:
    done = server.wait_final(
        client, run(client, "core.tcp", host="127.0.0.1", port=server.port)["id"]
    )
    assert done["status"] == "succeeded"
    assert done["result"]["connected"] is True
    assert done["result"]["port"] == server.port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    done = server.wait_final(client, run(client, "core.tcp", host="127.0.0.1", port=closed)["id"])
    assert done["status"] == "failed"
    assert done["result"] == {
        "host": "127.0.0.1",
        "port": closed,
        "connected": False,
        "seconds": done["result"]["seconds"],
        "error": "connection refused",
    }
    r = client.post(
        "/api/v1/executions",
        json={"action": "core.tcp", "parameters": {"host": "127.0.0.1", "port": 70000}},
    )
    assert r.status_code == 400 and "port" in r.json()["faultstring"]
    r = client.post("/api/v1/executions", json={"action": "core.tcp", "parameters": {"port": 22}})
    assert r.status_code == 400 and "host" in r.json()["faultstring"]


def test_timeout_kills_the_process_group(server: Server, client: httpx.Client, tmp_path) -> None:
    marker = tmp_path / "child-survived"
    cmd = f"(sleep 3; touch {marker}) & sleep 30"
    done = server.wait_final(client, run(client, "core.local", cmd=cmd, timeout=1)["id"])
    assert done["status"] == "timeout"
    time.sleep(3.5)
    assert not marker.exists(), "a child of the timed-out command kept running"


def test_cancel_a_running_execution(server: Server, client: httpx.Client) -> None:
    ex = run(client, "core.local", cmd="sleep 30")
    deadline = time.time() + 10
    while client.get(f"/api/v1/executions/{ex['id']}").json()["status"] != "running":
        assert time.time() < deadline
        time.sleep(0.05)
    r = client.delete(f"/api/v1/executions/{ex['id']}")
    assert r.status_code == 200
    done = server.wait_final(client, ex["id"])
    assert done["status"] == "canceled"
    assert client.delete(f"/api/v1/executions/{ex['id']}").status_code == 409


def test_rerun_with_changed_parameters(server: Server, client: httpx.Client) -> None:
    first = server.wait_final(client, run(client, "core.local", cmd="echo one")["id"])
    r = client.post(
        f"/api/v1/executions/{first['id']}/re_run", json={"parameters": {"cmd": "echo two"}}
    )
    assert r.status_code == 201, r.text
    second = server.wait_final(client, r.json()["id"])
    assert second["result"]["stdout"] == "two"
    assert second["context"]["re-run"]["ref"] == first["id"]


def test_secret_parameters_are_masked(server: Server, client: httpx.Client) -> None:
    ex = run(client, "tpack.secret_echo", token="s3cr3t-value")
    assert ex["parameters"]["token"] == "********"
    done = server.wait_final(client, ex["id"])
    assert done["status"] == "succeeded", done
    whole = client.get(f"/api/v1/executions/{ex['id']}").text
    assert "s3cr3t-value" not in whole
    assert "s3cr3t-value" not in client.get(f"/api/v1/executions/{ex['id']}/output").text


def test_non_utf8_output_and_output_cap(server: Server, client: httpx.Client) -> None:
    done = server.wait_final(client, run(client, "core.local", cmd=r"printf 'a\xff\xfeb'")["id"])
    assert done["status"] == "succeeded"
    assert done["result"]["stdout"].startswith("a") and done["result"]["stdout"].endswith("b")
    big = server.wait_final(
        client, run(client, "core.local", cmd="head -c 200000 /dev/zero | tr '\\0' x")["id"]
    )
    assert big["status"] == "succeeded"
    stored = client.get(f"/api/v1/executions/{big['id']}/output").text
    assert "output truncated" in stored
    assert len(stored) < 25000
    # the result keeps no more than the same cap
    assert len(big["result"]["stdout"]) < 25000 and "truncated" in big["result"]["stdout"]


def test_bad_input_gets_clear_errors(server: Server, client: httpx.Client) -> None:
    r = client.post("/api/v1/executions", json={"action": "nope.nothing"})
    assert r.status_code == 404 and "nope.nothing" in r.json()["faultstring"]
    r = client.post("/api/v1/executions", json={"action": "core.local", "parameters": {}})
    assert r.status_code == 400 and "cmd" in r.json()["faultstring"]
    r = client.post(
        "/api/v1/executions",
        json={"action": "core.local", "parameters": {"cmd": "true", "timeout": "abc"}},
    )
    assert r.status_code == 400 and "timeout" in r.json()["faultstring"]
    r = client.post(
        "/api/v1/executions",
        json={"action": "core.local", "parameters": {"cmd": "true", "bogus": 1}},
    )
    assert r.status_code == 400 and "bogus" in r.json()["faultstring"]
    r = client.post(
        "/api/v1/executions", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 400 and "JSON" in r.json()["faultstring"]
    r = client.post(
        "/api/v1/executions",
        content=b"x" * (5 * 1024 * 1024),
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 413
    r = client.get("/api/v1/executions/doesnotexist")
    assert r.status_code == 404 and "faultstring" in r.json()
    r = client.get("/api/v1/executions", params={"limit": "many"})
    assert r.status_code == 400


def test_retry_policy_retries_failures(server: Server, client: httpx.Client) -> None:
    ex = run(client, "tpack.flaky")
    server.wait_final(client, ex["id"])
    deadline = time.time() + 20
    while True:
        rows = client.get(
            "/api/v1/executions", params={"action": "tpack.flaky", "limit": 10}
        ).json()
        if len(rows) >= 3 and all(r["status"] == "failed" for r in rows):
            break
        assert time.time() < deadline, rows
        time.sleep(0.1)
    time.sleep(0.5)
    rows = client.get("/api/v1/executions", params={"action": "tpack.flaky", "limit": 10}).json()
    assert len(rows) == 3  # the first try and two retries, no more
    counts = sorted(
        r["context"].get("policies", {}).get("retry", {}).get("retry_count", 0) for r in rows
    )
    assert counts == [0, 1, 2]


def test_concurrency_policy_delays(server: Server, client: httpx.Client) -> None:
    ids = [run(client, "tpack.slow")["id"] for _ in range(3)]
    done = [server.wait_final(client, i, timeout=30) for i in ids]
    assert all(d["status"] == "succeeded" for d in done)
    spans = sorted((d["log"][-2]["timestamp"], d["end_timestamp"]) for d in done)
    # threshold 1: no two ran at the same time
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end
    assert any("delayed" in [e["status"] for e in d["log"]] for d in done)


def test_list_filters_and_pagination(server: Server, client: httpx.Client) -> None:
    for _ in range(3):
        run(client, "core.noop")
    r = client.get("/api/v1/executions", params={"action": "core.noop", "limit": 2})
    assert r.status_code == 200
    assert len(r.json()) == 2 and int(r.headers["X-Total-Count"]) >= 3
    r = client.get("/api/v1/executions/", params={"limit": 1, "offset": 1})
    assert r.status_code == 200 and len(r.json()) == 1
