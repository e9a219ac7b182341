"""The web UI's executions list with 100,000 executions.

Fills a fresh store with N executions (default 100,000) through the store
layer (``squall.store.tables.executions`` rows made by
``squall.store.executions.new_row``, inserted in batches), then starts a real
``squall up`` on it and times what the executions page asks for:
``GET /api/v1/executions?limit=50`` without and with each filter the page
offers (action, status, user, rule, time range, parent, search), a deep page,
and the count behind ``X-Total-Count`` on its own (``limit=1``).

On PostgreSQL the fill is followed by VACUUM ANALYZE (what autovacuum does
on a live system after that many inserts); SQLite gets no statistics
(Squall does not run ANALYZE).

The data: executions spread over the last 7 days, newest ``--recent`` of
them within the last hour; 12 actions (``core.local`` the most common);
statuses mostly succeeded, ~7 % failed, a few running; 5 users; one in ten
started by one of 4 rules (with its rule enforcement); one in fifty a
workflow with 3 children. Each row is as large as a real one (the action's
metadata, parameters, a result, the log).

Each query runs ``--repeat`` times after one warm-up; the table shows the
median and the 95th percentile, in milliseconds, measured by the client
(HTTP and JSON included), with the rows and the total the server reported.

Usage:  python bench/ui_executions.py [--rows 100000] [--repeat 15]
            [--postgres] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import calibrate  # noqa: E402

from squall.config import Settings  # noqa: E402
from squall.server import open_database  # noqa: E402
from squall.store import executions as exe_store  # noqa: E402
from squall.store.ids import new_id  # noqa: E402
from squall.store.tables import executions, rule_enforcements  # noqa: E402
from tests.support.server import API_KEY, Server  # noqa: E402

DAY = 86400.0
USERS = ["admin", "alice", "bob", "carol", "stanley"]
RULES = ["ops.disk_full", "ops.deploy_on_push", "ops.page_oncall", "ops.nightly_report"]


def _action(ref: str, runner: str, params: dict[str, Any], description: str) -> dict[str, Any]:
    pack, name = ref.split(".", 1)
    return {
        "ref": ref,
        "name": name,
        "pack": pack,
        "runner_type": runner,
        "description": description,
        "enabled": True,
        "entry_point": "" if runner == "local-shell-cmd" else f"{name}.py",
        "parameters": params,
        "output_schema": {},
        "tags": [],
        "notify": {},
        "id": new_id(),
    }


def _actions() -> list[tuple[dict[str, Any], float]]:
    """The actions the executions run, with how often each one runs."""
    cmd = {"cmd": {"type": "string", "description": "Shell command.", "required": True}}
    host = {
        "host": {"type": "string", "description": "The host.", "required": True},
        "port": {"type": "integer", "default": 22},
    }
    made = [
        (_action("core.local", "local-shell-cmd", cmd, "Run a command locally."), 30.0),
        (_action("core.noop", "noop", {}, "Do nothing."), 15.0),
        (_action("core.http", "http-request", {}, "Send an HTTP request."), 10.0),
        (_action("core.echo", "local-shell-cmd", {"message": {"type": "string"}}, "Echo."), 8.0),
    ]
    for i, name in enumerate(
        ["check_disk", "deploy_app", "lb_member", "disk_report", "restart_service", "backup_db"]
    ):
        made.append((_action(f"ops.{name}", "python-script", host, f"The {name} action."), 5.0 - i))
    made.append((_action("ops.remediate", "orquesta", host, "A workflow."), 2.0))
    made.append((_action("ops.rare_audit", "python-script", host, "Seldom run."), 0.05))
    return made


def fill(db: Any, rows: int, recent: int, seed: int = 7) -> dict[str, Any]:
    """Insert ``rows`` executions (with their rule enforcements); returns what
    the queries need to know about them (a parent id, a rule)."""
    rng = random.Random(seed)
    actions = _actions()
    weights = [w for _a, w in actions]
    workflow = next(a for a, _w in actions if a["runner_type"] == "orquesta")
    local = actions[0][0]
    now = time.time()
    older = rows - recent
    # Start times: the newest ``recent`` within the last hour, the rest over 7 days.
    times = sorted(
        [now - 3600 - rng.random() * 6 * DAY for _ in range(older)]
        + [now - rng.random() * 3600 for _ in range(recent)]
    )
    batch: list[dict[str, Any]] = []
    enforcements: list[dict[str, Any]] = []
    info: dict[str, Any] = {"parent": None}

    def flush() -> None:
        if batch:
            db.write_sync(lambda conn: conn.execute(executions.insert(), batch))
            batch.clear()
        if enforcements:
            db.write_sync(lambda conn: conn.execute(rule_enforcements.insert(), enforcements))
            enforcements.clear()

    def add(action: dict[str, Any], start: float, parent: str | None, user: str) -> str:
        pick = rng.random()
        status = "succeeded" if pick < 0.92 else "failed" if pick < 0.99 else "canceled"
        if start > now - 120 and rng.random() < 0.5:
            status = "running"
        params: dict[str, Any]
        if action["runner_type"] == "local-shell-cmd":
            params = {"cmd": f"echo run {rng.randrange(10**6)}", "timeout": 60, "kwarg_op": "--"}
        elif action["parameters"]:
            params = {"host": f"web{rng.randrange(400):03d}.example.com", "port": 22}
        else:
            params = {}
        row = exe_store.new_row(
            action=action,
            parameters=params,
            context={"user": user},
            user=user,
            parent_id=parent,
            direct=True,
        )
        row["start_timestamp"] = start
        row["log"] = [
            {"status": "requested", "timestamp": start},
            {"status": "scheduled", "timestamp": start},
            {"status": "running", "timestamp": start + 0.01},
        ]
        row["status"] = status
        if status != "running":
            end = start + rng.random() * 5
            row["end_timestamp"] = end
            row["log"].append({"status": status, "timestamp": end})
            code = 0 if status == "succeeded" else 1
            row["result"] = {
                "failed": code != 0,
                "succeeded": code == 0,
                "return_code": code,
                "stdout": "done " * rng.randrange(1, 20),
                "stderr": "" if code == 0 else "something went wrong",
            }
        batch.append(row)
        return str(row["id"])

    for i, start in enumerate(times):
        action = rng.choices(actions, weights)[0][0]
        user = rng.choice(USERS)
        eid = add(action, start, None, user)
        if i % 10 == 3:
            rule = RULES[i % len(RULES)]
            batch[-1]["context"] = {
                "user": "stanley",
                "rule": {"ref": rule, "name": rule.split(".")[1]},
                "trigger_instance": {"id": new_id(), "name": None},
            }
            enforcements.append(
                {
                    "id": new_id(),
                    "rule_ref": rule,
                    "rule_id": new_id(),
                    "trigger_instance_id": new_id(),
                    "execution_id": eid,
                    "status": "succeeded",
                    "failure_reason": None,
                    "enforced_at": start,
                    "details": None,
                }
            )
        if i % 50 == 25:
            batch[-1].update(action_ref=workflow["ref"], runner_type="orquesta", action=workflow)
            for k in range(3):
                add(local, start + 0.1 * (k + 1), eid, user)
            info["parent"] = eid
        if len(batch) >= 2000:
            flush()
    flush()
    info["rule"] = RULES[1]
    return info


def timed(client: httpx.Client, params: dict[str, Any], repeat: int) -> dict[str, Any]:
    client.get("/api/v1/executions", params=params)  # warm-up
    times = []
    r = None
    for _ in range(repeat):
        t = time.perf_counter()
        r = client.get("/api/v1/executions", params=params)
        times.append((time.perf_counter() - t) * 1000)
        assert r.status_code == 200, r.text
    assert r is not None
    times.sort()
    return {
        "median_ms": round(statistics.median(times), 1),
        "p95_ms": round(times[min(len(times) - 1, round(0.95 * (len(times) - 1)))], 1),
        "rows": len(r.json()),
        "total": r.headers.get("X-Total-Count"),
    }


def queries(info: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    now = time.time()
    iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))  # noqa: E731
    page = {"limit": 50}
    ui = {
        **page,
        "parent": "null",
        "include_attributes": "id,action.ref,status,start_timestamp,end_timestamp,"
        "elapsed_seconds,context.user,context.rule,context.workflow,parent,runner.name",
    }
    return [
        ("the UI's first page (top level, fields)", ui),
        ("no filter", page),
        ("count only (limit=1)", {"limit": 1}),
        ("page 1,000 (offset=49,950)", {**page, "offset": 49950}),
        ("action=core.local", {**page, "action": "core.local"}),
        ("action=ops.rare_audit (rare)", {**page, "action": "ops.rare_audit"}),
        ("status=failed", {**page, "status": "failed"}),
        ("status=running (rare)", {**page, "status": "running"}),
        ("user=alice", {**page, "user": "alice"}),
        (f"rule={info['rule']}", {**page, "rule": info["rule"]}),
        ("last hour (timestamp_gt)", {**page, "timestamp_gt": iso(now - 3600)}),
        (
            "one day 3 days ago (gt and lt)",
            {**page, "timestamp_gt": iso(now - 4 * DAY), "timestamp_lt": iso(now - 3 * DAY)},
        ),
        ("parent=<a workflow>", {**page, "parent": info["parent"]}),
        ("top level only (parent=null)", {**page, "parent": "null"}),
        ("action and status", {**page, "action": "core.local", "status": "failed"}),
        ("search q=deploy (action ref)", {**page, "q": "deploy"}),
        ("search q=ops (7 actions)", {**page, "q": "ops"}),
        ("search q=<id prefix, 16 digits>", {**page, "q": info["parent"][:16]}),
        ("search q=nothing-matches", {**page, "q": "nothing-matches"}),
    ]


def write_pack(root: Path) -> Path:
    """The ``ops`` pack, so that its actions are registered (the search box
    finds executions through the actions' refs)."""
    pack = root / "ops"
    (pack / "actions").mkdir(parents=True)
    (pack / "pack.yaml").write_text(
        "name: ops\ndescription: bench\nversion: 0.1.0\nauthor: bench\nemail: b@example.com\n"
    )
    for action, _weight in _actions():
        if action["pack"] != "ops":
            continue
        (pack / "actions" / f"{action['name']}.yaml").write_text(
            f"name: {action['name']}\nrunner_type: local-shell-cmd\n"
            f"description: {action['description']}\n"
            "parameters:\n  host:\n    type: string\n  cmd:\n    default: 'true'\n"
        )
    return root


def bench(database_url: str | None, rows: int, recent: int, repeat: int) -> dict[str, Any]:
    data = Path(tempfile.mkdtemp(prefix="squall-bench-ui-"))
    packs = write_pack(data / "bench-packs")
    settings = Settings.from_env(data_dir=data, database_url=database_url or None)
    db = open_database(settings, auto_migrate=True)
    t = time.perf_counter()
    info = fill(db, rows, recent)
    fill_s = time.perf_counter() - t
    if db.dialect == "postgresql":
        # What autovacuum does on a live system after this many inserts.
        with db.write_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE"))
    db.close()
    server = Server(
        data,
        packs_dirs=[packs],
        database_url=database_url,
        env={"SQUALL_GC_EXECUTIONS_TTL_DAYS": "30"},
    ).start()
    results: dict[str, Any] = {"fill_s": round(fill_s, 1), "queries": {}}
    try:
        with httpx.Client(base_url=server.url, headers={"St2-Api-Key": API_KEY}, timeout=60) as c:
            for name, params in queries(info):
                results["queries"][name] = timed(c, params, repeat)
                q = results["queries"][name]
                print(
                    f"  {name:40} {q['median_ms']:8.1f} ms  (p95 {q['p95_ms']:7.1f})"
                    f"  rows {q['rows']:3}  total {q['total']}",
                    flush=True,
                )
    finally:
        server.stop()
        shutil.rmtree(data, ignore_errors=True)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--recent", type=int, default=2_000, help="executions in the last hour")
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--postgres", action="store_true", help="also on a throwaway PostgreSQL")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    out: dict[str, Any] = {"rows": args.rows, "calibration_loop_s": calibrate()}
    print(f"calibration loop {out['calibration_loop_s']:.3f} s; load {os.getloadavg()[0]:.2f}")
    print(f"SQLite, {args.rows:,} executions")
    out["sqlite"] = bench(None, args.rows, args.recent, args.repeat)
    print(f"  (filled in {out['sqlite']['fill_s']} s)")
    if args.postgres:
        from tests.support.postgres import Cluster

        cluster = Cluster()
        try:
            url = cluster.start()
            print(f"PostgreSQL, {args.rows:,} executions")
            out["postgres"] = bench(url, args.rows, args.recent, args.repeat)
            print(f"  (filled in {out['postgres']['fill_s']} s)")
        finally:
            cluster.stop()
    out["calibration_loop_s_after"] = calibrate()
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
