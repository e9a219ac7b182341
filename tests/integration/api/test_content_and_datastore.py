"""Packs, actions, runners and the datastore through a live server."""

from __future__ import annotations

import httpx

from tests.integration.api.test_executions import run
from tests.support.server import Server


def test_packs_and_actions_are_registered(client: httpx.Client) -> None:
    packs = {p["ref"] for p in client.get("/api/v1/packs").json()}
    assert {"core", "examples", "tpack"} <= packs
    action = client.get("/api/v1/actions/core.local").json()
    assert action["runner_type"] == "local-shell-cmd"
    assert "cmd" in action["parameters"]
    refs = {a["ref"] for a in client.get("/api/v1/actions", params={"pack": "tpack"}).json()}
    # the broken file and the action without its script were skipped, the rest loaded
    assert {"tpack.secret_echo", "tpack.flaky", "tpack.slow"} <= refs
    assert "tpack.broken" not in refs and "tpack.nofile" not in refs


def test_register_reports_broken_files_with_path_and_line(client: httpx.Client) -> None:
    r = client.post("/api/v1/packs/register", json={"packs": ["tpack"]})
    assert r.status_code == 200
    errors = r.json()["errors"]
    broken = [e for e in errors if e["path"].endswith("broken.yaml")]
    assert broken and broken[0]["line"] is not None
    assert any("missing.sh" in e["faultstring"] for e in errors)
    override = [e for e in errors if e["path"].endswith("bad_override.yaml")]
    assert override and "cannot change the runner parameter" in override[0]["faultstring"]
    assert r.json()["actions"] >= 3


def test_runner_types(client: httpx.Client) -> None:
    names = {r["name"] for r in client.get("/api/v1/runnertypes").json()}
    assert {
        "local-shell-cmd",
        "local-shell-script",
        "python-script",
        "http-request",
        "noop",
    } <= names
    one = client.get("/api/v1/runnertypes/", params={"name": "noop"}).json()
    assert len(one) == 1


def test_datastore_round_trip_and_secrets(client: httpx.Client) -> None:
    r = client.put("/api/v1/keys/greeting", json={"name": "greeting", "value": "hello"})
    assert r.status_code == 200
    assert client.get("/api/v1/keys/greeting").json()["value"] == "hello"
    r = client.put(
        "/api/v1/keys/db_pass", json={"name": "db_pass", "value": "pa55", "secret": True}
    )
    assert r.json()["value"] != "pa55" and r.json()["encrypted"] is True
    assert client.get("/api/v1/keys/db_pass").json()["value"] != "pa55"
    assert client.get("/api/v1/keys/db_pass", params={"decrypt": "true"}).json()["value"] == "pa55"
    names = {k["name"] for k in client.get("/api/v1/keys").json()}
    assert {"greeting", "db_pass"} <= names
    r = client.put("/api/v1/keys/mine", json={"name": "mine", "value": "u", "scope": "st2kv.user"})
    assert r.json()["scope"] == "st2kv.user"
    assert client.get("/api/v1/keys/mine", params={"scope": "user"}).json()["value"] == "u"
    assert client.get("/api/v1/keys/mine").status_code == 404
    assert client.delete("/api/v1/keys/greeting").status_code == 204
    assert client.get("/api/v1/keys/greeting").status_code == 404
    assert client.put("/api/v1/keys/x", json={"value": "v", "scope": "galaxy"}).status_code == 400


def test_datastore_values_render_into_parameters(server: Server, client: httpx.Client) -> None:
    client.put("/api/v1/keys/target", json={"name": "target", "value": "world"})
    client.put("/api/v1/keys/hidden", json={"name": "hidden", "value": "xyzzy", "secret": True})
    ex = run(
        client,
        "core.local",
        cmd="echo {{ st2kv.system.target }} {{ st2kv.system.hidden | decrypt_kv }}",
    )
    done = server.wait_final(client, ex["id"])
    # The command printed the decrypted value (its ciphertext would show):
    # a datastore secret is masked wherever it travels.
    assert done["result"]["stdout"] == "world ********"


def test_tokens_from_user_and_password(server: Server) -> None:
    from tests.support.server import PASSWORD

    r = httpx.post(f"{server.url}/auth/v1/tokens", auth=("admin", PASSWORD))
    assert r.status_code == 201
    token = r.json()["token"]
    ok = httpx.get(f"{server.url}/api/v1/actions/core.noop", headers={"X-Auth-Token": token})
    assert ok.status_code == 200
    assert httpx.post(f"{server.url}/auth/v1/tokens", auth=("admin", "nope")).status_code == 401


def test_api_keys(server: Server, client: httpx.Client) -> None:
    r = client.post("/api/v1/apikeys", json={"user": "admin", "metadata": {"for": "ci"}})
    assert r.status_code == 201
    key, key_id = r.json()["key"], r.json()["id"]
    assert httpx.get(f"{server.url}/api/v1/packs", headers={"St2-Api-Key": key}).status_code == 200
    listed = client.get("/api/v1/apikeys").json()
    assert key_id in {k["id"] for k in listed} and all("key" not in k for k in listed)
    assert client.delete(f"/api/v1/apikeys/{key_id}").status_code == 204
    assert httpx.get(f"{server.url}/api/v1/packs", headers={"St2-Api-Key": key}).status_code in (
        200,
        401,
    )


def test_stream_delivers_execution_events(server: Server, client: httpx.Client) -> None:
    ex = run(client, "core.local", cmd="echo streamed")
    server.wait_final(client, ex["id"])
    # A tail of a finished execution gets its final event at once, then the stream ends.
    params = {
        "st2-api-key": client.headers["St2-Api-Key"],
        "end_event": "st2.execution__update",
        "end_execution_id": ex["id"],
    }
    with httpx.stream("GET", f"{server.url}/stream/v1/stream", params=params, timeout=10) as resp:
        text = "".join(resp.iter_text())
    assert "event: st2.execution__update" in text and '"succeeded"' in text


def test_datastore_key_rotation_keeps_secrets_readable(
    server: Server, client: httpx.Client
) -> None:
    client.put("/api/v1/keys/rot", json={"name": "rot", "value": "before", "secret": True})
    ring = server.data_dir / "keys" / "datastore.json"
    old = ring.read_text()
    old_cipher = client.get("/api/v1/keys/rot").json()["value"]
    r = client.post("/api/v1/datastore/rotate-key")
    assert r.status_code == 200 and r.json()["reencrypted"] >= 1
    assert ring.read_text() != old
    assert r.json()["active_key"] in ring.read_text()
    new_cipher = client.get("/api/v1/keys/rot").json()["value"]
    assert new_cipher != old_cipher and new_cipher.startswith(r.json()["active_key"] + ":")
    assert client.get("/api/v1/keys/rot", params={"decrypt": "true"}).json()["value"] == "before"


def test_pack_config_renders_datastore_values(server: Server, client: httpx.Client) -> None:
    client.put(
        "/api/v1/keys/cfg_token", json={"name": "cfg_token", "value": "t0k3n", "secret": True}
    )
    ex = run(client, "tpack.show_config")
    done = server.wait_final(client, ex["id"])
    assert done["status"] == "succeeded", done["result"]
    assert done["result"]["result"]["region"] == "eu-west-1"  # schema default
    # the template in the config file was rendered with the decrypted key,
    # which is masked in the result like every datastore secret
    assert done["result"]["result"]["token"] == "********"


def test_templates_see_the_action_context(server: Server, client: httpx.Client) -> None:
    done = server.wait_final(
        client, run(client, "core.local", cmd="echo {{ action_context.user }}")["id"]
    )
    assert done["result"]["stdout"] == "admin"


def test_whoami(client: httpx.Client) -> None:
    me = client.get("/api/v1/user").json()
    assert me["username"] == "admin" and me["rbac"]["is_admin"] is True


def test_a_config_that_cannot_be_rendered_fails_only_its_executions(
    server: Server, client: httpx.Client
) -> None:
    client.delete("/api/v1/keys/cfg_token")
    broken = server.wait_final(client, run(client, "tpack.show_config")["id"])
    assert broken["status"] == "failed"
    assert "config of pack tpack could not be rendered" in broken["result"]["error"]
    assert "cfg_token" in broken["result"]["error"]
    # everything else keeps running
    assert server.wait_final(client, run(client, "core.noop")["id"])["status"] == "succeeded"
    secret = run(client, "tpack.secret_echo", token="x")  # same pack, no config in its templates
    assert server.wait_final(client, secret["id"])["status"] == "succeeded"
    client.put(
        "/api/v1/keys/cfg_token", json={"name": "cfg_token", "value": "t0k3n", "secret": True}
    )
