"""Workflows on PostgreSQL: the same engine and records as on SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.workflows.conftest import make_workflow_pack, run, wait_status
from tests.integration.workflows.test_crash import make_crash_pack
from tests.support.server import Server

FINAL = ("succeeded", "failed", "canceled")


@pytest.mark.postgres
def test_workflows_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    packs = tmp_path / "packs"
    make_workflow_pack(packs)
    make_crash_pack(packs)
    # Short leases: on PostgreSQL a dead process's claims expire, they are not reset.
    env = {"SQUALL_LEASE_SECONDS": "3"}
    srv = Server(tmp_path / "data", packs_dirs=[packs], database_url=pg_url, env=env).start()
    try:
        with srv.client() as api:
            fan = run(api, "wpack.fan", hosts=["x", "y", "z"])
            chain = run(api, "wpack.chain")
            body = wait_status(api, fan, *FINAL)
            assert body["status"] == "succeeded", body["result"]
            assert body["result"]["output"] == {"checked": ["x", "y", "z"], "both": "left-right"}
            body = wait_status(api, chain, *FINAL)
            assert [t["name"] for t in body["result"]["tasks"]] == ["build", "test", "report"]
            # Kill the server mid-run; the restarted one finishes the workflow.
            long = run(api, "cpack.long", log=str(tmp_path / "pg.log"))
            wait_status(api, long, "running")
            srv.kill()
        srv.start()
        with srv.client() as api:
            body = wait_status(api, long, *FINAL, timeout=90)
            assert body["status"] == "succeeded", body["result"]
            assert len(body["result"]["output"]["items"]) == 10
    finally:
        srv.stop()
