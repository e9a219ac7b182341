"""The example rollouts (examples/packs/examples/rollouts) on the real SSH fleet.

The shipped specs run as they are, but for their commands: the parameters
point the "patch", the reboot and the health check at harmless stand-ins
(files in a directory of the fleet's, one per host) and shorten the soaks.
The per-host commands tell hosts apart by the parameter that names the host
(``{{ host }}`` for patch_host, ``{{ hosts }}`` for deploy_app: a parameter
may refer to another, as in StackStorm): all the fleet's hosts share one
file system, and ``$SSH_CONNECTION`` is gone under sudo.
"""

from __future__ import annotations

import json
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.integration.api.conftest import write
from tests.support.fleet import Fleet
from tests.support.server import ROOT, Server

from .conftest import REBOOTABLE

PACKS = ROOT / "examples" / "packs"
ROLLOUTS = PACKS / "examples" / "rollouts"
LB_DIR = Path("/tmp/squall-lb")  # where examples.lb_member keeps its pools
FINAL = ("succeeded", "failed", "aborted", "rolled_back")

# name: (role, hagroup); the web servers are three hagroups of three.
HOSTS = {
    **{f"web-{g}{i}": ("web", g) for g in "abc" for i in (1, 2, 3)},
    **{f"db-{i}": ("db", "abc"[i % 3]) for i in (1, 2, 3, 4)},
    **{f"cache-{i}": ("cache", "abc"[i % 3]) for i in (1, 2, 3)},
}
REBOOTED = "db-4"  # on the address that can reboot alone; the only one that needs to
WEB = [name for name, (role, _) in HOSTS.items() if role == "web"]


def make_inventory(fleet: Fleet, path: Path) -> Path:
    lines = ["defaults:", f"  user: {fleet.user}", f"  key_file: {fleet.key_file}", "hosts:"]
    others = iter(a for a in fleet.addresses if a != REBOOTABLE)
    for name, (role, hagroup) in HOSTS.items():
        address = REBOOTABLE if name == REBOOTED else next(others)
        entry = {
            "address": address,
            "port": fleet.port,
            "facts": {"role": role, "hagroup": hagroup},
        }
        lines.append(f"  {name}: {json.dumps(entry)}")
    return write(path, "\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def server(fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("rollout-examples")
    srv = Server(
        base / "data",
        packs_dirs=[PACKS],
        env={
            "SQUALL_INVENTORY": str(make_inventory(fleet, base / "inventory.yaml")),
            "SQUALL_SSH_KNOWN_HOSTS": str(fleet.known_hosts),
        },
    ).start()
    try:
        if fleet.sudo_password is not None:
            with srv.client() as api:
                r = api.put(
                    "/api/v1/keys/sudo_password",
                    json={"value": fleet.sudo_password, "secret": True},
                )
                assert r.status_code == 200, r.text
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def api(server: Server) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


@pytest.fixture
def work(fleet: Fleet) -> Iterator[Path]:
    """A directory the hosts' commands write in, as the fleet's user or as root."""
    path = Path(tempfile.mkdtemp(prefix="rollout-", dir=fleet.dir))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def pool() -> Iterator[str]:
    """A load balancer pool of examples.lb_member's own for the test."""
    name = f"test-{secrets.token_hex(4)}"
    yield name
    shutil.rmtree(LB_DIR / name, ignore_errors=True)
    (LB_DIR / f"{name}.log").unlink(missing_ok=True)


def spec_of(name: str) -> dict[str, Any]:
    data = yaml.safe_load((ROLLOUTS / name).read_text())
    assert isinstance(data, dict)
    return data


def run_rollout(api: httpx.Client, spec: dict[str, Any], timeout: float = 40) -> dict[str, Any]:
    r = api.post("/api/v1/rollouts", json={"spec": spec, "source": spec["name"]})
    assert r.status_code == 201, r.text
    rollout_id = r.json()["id"]
    deadline = time.monotonic() + timeout
    while True:
        view: dict[str, Any] = api.get(f"/api/v1/rollouts/{rollout_id}").json()
        if view["status"] in FINAL:
            return view
        if time.monotonic() > deadline:
            raise AssertionError(f"rollout still {view['status']} after {timeout}s: {view}")
        time.sleep(0.2)


def hosts_of(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {h["name"]: h for batch in view["batches"] for h in batch["hosts"]}


def lb_log(pool: str) -> dict[str, list[str]]:
    """Each member's operations, in order."""
    log = LB_DIR / f"{pool}.log"
    changes: dict[str, list[str]] = {}
    for line in log.read_text().splitlines() if log.exists() else []:
        _, member, operation = line.split()
        changes.setdefault(member, []).append(operation)
    return changes


def workflow_output(api: httpx.Client, execution_id: str) -> dict[str, Any]:
    body = api.get(f"/api/v1/executions/{execution_id}").json()
    output: dict[str, Any] = body["result"]["output"]
    return output


def workflow_tasks(api: httpx.Client, execution_id: str) -> list[dict[str, Any]]:
    r = api.get(f"/api/v1/executions/{execution_id}/workflow")
    assert r.status_code == 200, r.text
    tasks: list[dict[str, Any]] = r.json()["tasks"]
    return tasks


def patch_spec(fleet: Fleet, work: Path, pool: str) -> dict[str, Any]:
    """patch-openssl.yaml with stand-ins for patch_host's commands: the
    "package" is a file per host (version-HOST), the patch writes the new
    version and notes the package in patched-HOST, only REBOOTED needs a
    reboot, and its first health check fails, so that the retry passes."""
    w = str(work)
    host = "{{ host }}"
    params: dict[str, Any] = {
        "lb_pool": pool,
        "version_command": (
            f"if [ -e {w}/version-{host} ]; then cat {w}/version-{host}; else echo 3.0.11-1; fi"
        ),
        "patch_command": (
            f'umask 022 && echo "$PACKAGE" >> {w}/patched-{host} && '
            f"echo 3.0.15-1 > {w}/version-{host}"
        ),
        "reboot_required_command": f'test "{host}" = {REBOOTED}',
        # Run through sudo, where $SSH_CONNECTION is gone: the one host's.
        "reboot_command": fleet.reboot_command_for(REBOOTABLE),
        "boot_id_command": fleet.boot_id_command,
        "reboot_timeout": 30,
        "warmup_seconds": 0,
        # The first check of the rebooted host fails (still warming up).
        "health_command": (
            f'test -e {w}/warm-{host} || {{ touch {w}/warm-{host}; test "{host}" != {REBOOTED}; }}'
        ),
        "health_retries": 2,
        "health_delay": 1,
    }
    spec = spec_of("patch-openssl.yaml")
    spec["parameters"].update(params)
    if fleet.sudo_password is None:  # not root: no sudo on the fleet
        spec["parameters"]["sudo"] = False
        del spec["parameters"]["sudo_password"]
    spec["gates"][0]["pause"] = "0.5s"
    return spec


def test_patch_openssl(api: httpx.Client, fleet: Fleet, work: Path, pool: str) -> None:
    spec = patch_spec(fleet, work, pool)
    boot_before = fleet.boot_id(REBOOTABLE)

    view = run_rollout(api, spec)
    assert view["status"] == "succeeded", json.dumps(view, indent=1)
    # 16 hosts: 1% and 5% and 10% are one host each, then the other 13.
    assert [len(b["hosts"]) for b in view["batches"]] == [1, 1, 1, 13]
    assert view["counts"] == {"succeeded": 16, "total": 16}
    hosts = hosts_of(view)
    # The soak after the first batch held the second one back.
    first_end = datetime.fromisoformat(view["batches"][0]["hosts"][0]["ended_at"])
    second_start = datetime.fromisoformat(view["batches"][1]["hosts"][0]["started_at"])
    assert (second_start - first_end).total_seconds() >= 0.45

    for name in HOSTS:
        assert (work / f"patched-{name}").read_text() == "openssl\n", f"{name} patched twice?"
        output = workflow_output(api, hosts[name]["execution"])
        assert output == {
            "host": name,
            "package": "openssl",
            "version_before": "3.0.11-1",
            "version_after": "3.0.15-1",
            "rebooted": name == REBOOTED,
            "failed_step": None,
        }
    assert fleet.boot_id(REBOOTABLE) != boot_before
    runs = {
        name: {t["task"]: t["executions"] for t in workflow_tasks(api, hosts[name]["execution"])}
        for name in ("web-a1", REBOOTED)
    }
    assert "reboot" not in runs["web-a1"] and runs["web-a1"]["health"] == 1
    assert runs[REBOOTED]["reboot"] == 1 and runs[REBOOTED]["health"] == 2
    # Each host left its pool once and came back; all serve again.
    assert lb_log(pool) == {name: ["drain", "undrain"] for name in HOSTS}
    assert {p.name: p.read_text() for p in (LB_DIR / pool).iterdir()} == dict.fromkeys(
        HOSTS, "active\n"
    )


def test_patch_failure_puts_the_host_back_and_stops(
    api: httpx.Client, fleet: Fleet, work: Path, pool: str
) -> None:
    spec = patch_spec(fleet, work, pool)
    spec["target"] = "db-1,db-2,db-3"
    spec["parameters"]["patch_command"] = "echo 'E: Unable to locate package' >&2; exit 100"

    view = run_rollout(api, spec)
    assert view["status"] == "failed", view
    assert view["error"] == "stopped at the first failure (failure budget)"
    hosts = hosts_of(view)
    assert {n: h["status"] for n, h in hosts.items()} == {
        "db-1": "failed",
        "db-2": "skipped",
        "db-3": "skipped",
    }
    output = workflow_output(api, hosts["db-1"]["execution"])
    assert output["failed_step"] == "patch" and output["version_after"] is None
    # Drained, then back in the pool despite the failure; the others untouched.
    assert lb_log(pool) == {"db-1": ["drain", "undrain"]}
    assert (LB_DIR / pool / "db-1").read_text() == "active\n"


def deploy_spec(work: Path) -> dict[str, Any]:
    spec = spec_of("rolling-deploy.yaml")
    spec["parameters"].update(app_dir=f"{work}/{{{{ hosts }}}}", restart_command="")
    spec["gates"][0]["pause"] = 0.5
    return spec


def deployed(work: Path, host: str) -> str | None:
    path = work / host / "current" / "VERSION"
    return path.read_text().strip() if path.exists() else None


def test_rolling_deploy_goes_one_hagroup_at_a_time(api: httpx.Client, work: Path) -> None:
    view = run_rollout(api, deploy_spec(work))
    assert view["status"] == "succeeded", json.dumps(view, indent=1)
    groups = [{HOSTS[h["name"]][1] for h in b["hosts"]} for b in view["batches"]]
    assert groups == [{"a"}, {"b"}, {"c"}]
    assert all(len(b["hosts"]) == 3 for b in view["batches"])
    # Every host of a group ended before any host of the next one started.
    for before, after in zip(view["batches"], view["batches"][1:], strict=False):
        last_end = max(datetime.fromisoformat(h["ended_at"]) for h in before["hosts"])
        first_start = min(datetime.fromisoformat(h["started_at"]) for h in after["hosts"])
        assert last_end <= first_start
    assert {h: deployed(work, h) for h in WEB} == dict.fromkeys(WEB, "2.4.1")


def test_rolling_deploy_stops_at_the_first_failure(api: httpx.Client, work: Path) -> None:
    # web-b2 cannot be written to: its deployment fails.
    (work / "web-b2").mkdir()
    (work / "web-b2").chmod(0o555)
    view = run_rollout(api, deploy_spec(work))
    assert view["status"] == "failed", view
    hosts = hosts_of(view)
    assert hosts["web-b2"]["status"] == "failed"
    assert "Permission denied" in (hosts["web-b2"]["error"] or "")
    # The rest of its group was in flight with it and finished; group c was
    # never started.
    for name in ("web-a1", "web-a2", "web-a3", "web-b1", "web-b3"):
        assert hosts[name]["status"] == "succeeded", hosts[name]
        assert deployed(work, name) == "2.4.1"
    for name in ("web-c1", "web-c2", "web-c3"):
        assert hosts[name]["status"] == "skipped"
        assert hosts[name]["execution"] is None
        assert not (work / name).exists()
    assert view["counts"] == {"succeeded": 5, "failed": 1, "skipped": 3, "total": 9}
