"""The runner worker: claims scheduled executions, runs them, records results.

Claiming takes a batch in one transaction; each execution then runs as its
own asyncio task under a lease the worker keeps renewing. That an execution
is ``running`` is stored lazily: with its result when it ends within
START_MARK_SECONDS (most do: one write of the row instead of two), else by
the next flush. A claim that was taken before (its lease ran out) therefore
means the run may have started, whatever the record says. Output is
buffered per execution, capped, and written in small batches; the last of it is
written in the same transaction as the final status, with the work item's ack.

The process groups a run starts are recorded in its work item, so when a lease
runs out (the worker holding it died), the next worker to claim the item stops
what is left of them, then marks the execution ``abandoned`` — or runs it again
when the action is declared ``idempotent``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Connection

from squall import logs, masks, metrics
from squall.config import Settings
from squall.core.executions import Status, is_final
from squall.core.policies import retry_decision
from squall.crypto import KeyRing
from squall.errors import SquallError, StoreUnavailable
from squall.runners.base import RunContext, RunResult
from squall.runners.process import kill_leftover, process_identity
from squall.runners.registry import get_runner
from squall.runners.ssh import SshOptions
from squall.services import events, inquiries
from squall.services.bus import Bus, wait_for_wake
from squall.services.executions import execution_secrets, pack_config, parameter_schema
from squall.services.scheduler import until
from squall.store import auth, content, hosts, queue
from squall.store import executions as exe_store
from squall.store.db import Database
from squall.store.executions import RUN, UNSET

log = logging.getLogger(__name__)

TRUNCATED = "\n[... output truncated: this stream reached its storage limit ...]\n"
FLUSH_SECONDS = 0.1
START_MARK_SECONDS = 0.05  # runs longer than this are stored as running by the flusher
_TOKEN_RUNNERS = {"python-script"}  # actions that call back into the API
_CONFIG_RUNNERS = {"python-script"}  # actions that get the pack config


@dataclass
class OutputBuffer:
    cap: int
    stored: dict[str, int] = field(default_factory=lambda: {"stdout": 0, "stderr": 0})
    pending: list[tuple[str, str, float]] = field(default_factory=list)
    pending_bytes: int = 0

    def add(self, stream: str, text: str) -> None:
        used = self.stored.get(stream, 0)
        if used >= self.cap:
            return
        size = len(text.encode("utf-8", "replace"))
        if used + size > self.cap:
            room = self.cap - used
            text = text.encode("utf-8", "replace")[:room].decode("utf-8", "ignore") + TRUNCATED
            size = self.cap - used
        self.stored[stream] = used + size
        self.pending.append((stream, text, time.time()))
        self.pending_bytes += size

    def take(self) -> tuple[list[tuple[str, str, float]], int]:
        chunks, n = self.pending, self.pending_bytes
        self.pending, self.pending_bytes = [], 0
        return chunks, n


@dataclass
class Job:
    item_id: int
    row: dict[str, Any]
    config: dict[str, Any]
    token: str | None
    buffer: OutputBuffer
    task: asyncio.Task[None] | None = None
    cancel_requested: bool = False
    processes: list[dict[str, Any]] = field(default_factory=list)
    processes_changed: bool = False
    hosts_done: dict[str, tuple[str, Any]] | None = None  # re-attaching: hosts stored before
    ctx: RunContext | None = None
    start_recorded: bool = True  # False: the record still says scheduled
    claimed_at: float = field(default_factory=time.monotonic)
    # Per-host rows of remote runs waiting to be stored, and who waits for that.
    host_rows: list[dict[str, Any]] = field(default_factory=list)
    host_waiters: list[asyncio.Future[None]] = field(default_factory=list)

    def take_hosts(self) -> tuple[list[dict[str, Any]], list[asyncio.Future[None]]]:
        rows, waiters = self.host_rows, self.host_waiters
        self.host_rows, self.host_waiters = [], []
        return rows, waiters

    def take_output(self) -> exe_store.OutputBatch:
        chunks, nbytes = self.buffer.take()
        return exe_store.OutputBatch(
            self.row["id"], self.row["action_ref"], self.row["runner_type"], chunks, nbytes
        )


# (work item, row, pack config, API token, hosts done before, start stored)
Started = tuple[int, dict[str, Any], dict[str, Any], str | None, dict[str, Any] | None, bool]


def start_batch(
    conn: Connection,
    owner: str,
    limit: int,
    lease_seconds: float,
    token_ttl: float,
    keyring: KeyRing,
) -> tuple[list[Started], list[dict[str, Any]], float | None]:
    """Claim runnable executions and mark them running. Returns them, the
    processes that holders of expired claims left behind (to be stopped),
    and, when fewer than ``limit`` started, when the next item becomes
    claimable (what the worker waits for next: read here, in the same
    transaction, rather than in another trip to the database)."""
    items = queue.claim(conn, RUN, owner, limit=limit, lease_seconds=lease_seconds)
    if not items:
        return [], [], queue.next_due(conn, RUN)
    leftovers = [
        p for i in items if isinstance(i.payload, dict) for p in i.payload.get("processes", [])
    ]
    rows = exe_store.get_many(conn, (i.ref for i in items))
    to_run: list[tuple[int, dict[str, Any]]] = []
    changes: list[Any] = []
    done: list[int] = []
    for item in items:
        row = rows.get(item.ref)
        status = Status(row["status"]) if row else None
        if row is None or status is None or is_final(status):
            done.append(item.id)
        elif status == Status.CANCELING:
            changes.append((row, Status.CANCELED, UNSET, None))
            done.append(item.id)
        elif status == Status.SCHEDULED and (
            item.attempts <= 1 or _reattachable(row["runner_type"])
        ):
            # Never claimed before (a remote run's start is stored with its
            # claim, so for those the record tells).
            to_run.append((item.id, row))
        elif _reattachable(row["runner_type"]):
            # Its remote commands run on under their job wrapper: collect them.
            log.warning(
                "re-attaching to the remote commands of execution %s",
                row["id"],
                extra={"execution_id": row["id"]},
            )
            to_run.append((item.id, row))
        elif row["action"].get("idempotent"):
            # Claimed before by a worker whose lease ran out: it died, maybe mid-run.
            log.warning(
                "re-running idempotent execution %s after its worker died",
                row["id"],
                extra={"execution_id": row["id"]},
            )
            to_run.append((item.id, row))
        else:
            log.warning(
                "execution %s abandoned: its worker died while running it",
                row["id"],
                extra={"execution_id": row["id"]},
            )
            changes.append((row, Status.ABANDONED, {"error": ABANDONED_ERROR}, None))
            done.append(item.id)
    queue.ack_many(conn, done)
    finished = exe_store.set_status_many(conn, changes)
    events.executions_finished(conn, finished)
    for row in finished:
        if row["status"] == Status.ABANDONED:
            _maybe_retry(conn, row)  # an action.retry policy covers a dead worker too
    scheduled = [r for _, r in to_run if r["status"] == Status.SCHEDULED]
    # Claimed while already running: re-attaching (only those can have hosts stored).
    reattaching = {r["id"] for _, r in to_run if r["status"] == Status.RUNNING}
    # Remote runs are stored as running now (they are long, and a worker
    # taking one over must know it started); the others when they end.
    eager, lazy = [], []
    for r in scheduled:
        (eager if _reattachable(r["runner_type"]) else lazy).append(r)
    running = exe_store.set_status_many(conn, [(r, Status.RUNNING, UNSET, None) for r in eager])
    now = time.time()
    lazy = [exe_store.started(r, now) for r in lazy]
    now_running = {r["id"]: r for r in running + lazy}
    unrecorded = {r["id"] for r in lazy}
    configs: dict[tuple[str, str | None], dict[str, Any] | SquallError] = {}
    started = []
    for item_id, row in to_run:
        row = now_running.get(row["id"], row)
        config: dict[str, Any] | SquallError = {}
        if row["runner_type"] in _CONFIG_RUNNERS:  # only python actions see the pack config
            key = (row["action"].get("pack", ""), row["user"])
            if key not in configs:
                try:
                    configs[key] = pack_config(conn, key[0], key[1], keyring)
                except SquallError as exc:  # a bad template fails this pack's runs only
                    configs[key] = exc
            config = configs[key]
        if isinstance(config, SquallError):
            pack = row["action"].get("pack", "")
            error = f"the config of pack {pack} could not be rendered: {config.message}"
            failed = exe_store.set_status(conn, row, Status.FAILED, result={"error": error})
            events.executions_finished(conn, [failed])
            queue.ack(conn, item_id)
            continue
        token = None
        if row["runner_type"] in _TOKEN_RUNNERS:
            token = auth.create_token(
                conn, row["user"] or "system", token_ttl, {"execution_id": row["id"]}
            )["token"]
        done = None
        if row["id"] in reattaching and _reattachable(row["runner_type"]):
            done = {r["host"]: (r["status"], r["result"]) for r in hosts.results(conn, row["id"])}
        started.append((item_id, row, config, token, done, row["id"] not in unrecorded))
    return started, leftovers, queue.next_due(conn, RUN) if len(started) < limit else None


def _reattachable(runner_type: str) -> bool:
    try:
        return bool(getattr(get_runner(runner_type), "reattachable", False))
    except SquallError:
        return False


ABANDONED_ERROR = (
    "the worker running this execution stopped before it finished; it was not run again "
    "because the action is not declared idempotent"
)


@dataclass
class Completion:
    item_id: int
    execution_id: str
    status: Status
    result: Any
    output: exe_store.OutputBatch  # the last of it
    host_rows: list[dict[str, Any]] = field(default_factory=list)  # the last of them
    started: dict[str, Any] | None = None  # the running row, when not stored yet


def finish_many(conn: Connection, completions: list[Completion]) -> None:
    """Record finished executions: their last output, final status and the
    ack of their work items, all in the caller's one transaction."""
    exe_store.append_output_many(conn, [c.output for c in completions])
    hosts.record(conn, [r for c in completions for r in c.host_rows])
    rows = exe_store.get_many(conn, (c.execution_id for c in completions))
    queue.ack_many(conn, [c.item_id for c in completions])
    changes = []
    for c in completions:
        row = rows.get(c.execution_id)
        if row is None or is_final(row["status"]):
            continue  # canceled, abandoned or collected meanwhile: nothing to record
        if c.started is not None and row["status"] == Status.SCHEDULED:
            row = c.started  # its start is stored with its end
        status = c.status
        if row["status"] == Status.CANCELING and status in (Status.SUCCEEDED, Status.PENDING):
            status = Status.CANCELED
        changes.append((row, status, c.result, None))
    finished = exe_store.set_status_many(conn, changes)
    for row in finished:
        _maybe_retry(conn, row)
    # A run may end ``pending`` (an inquiry waiting for its answer): that is
    # not the end of the execution, so it is not reported as finished.
    inquiries.entered_pending(conn, [r for r in finished if r["status"] == Status.PENDING])
    events.executions_finished(conn, [r for r in finished if is_final(r["status"])])


def _maybe_retry(conn: Connection, row: dict[str, Any]) -> None:
    if row["status"] not in (Status.FAILED, Status.TIMEOUT, Status.ABANDONED):
        return
    # Abandoned (its worker died mid-run) is a failure to the retry policy.
    status = Status.FAILED if row["status"] == Status.ABANDONED else row["status"]
    retry = (row["context"].get("policies") or {}).get("retry") or {}
    count = int(retry.get("retry_count", 0))
    for policy in content.policies_for(conn, row["action_ref"]):
        if policy["policy_type"] != "action.retry":
            continue
        delay = retry_decision(policy, status, count)
        if delay is None:
            continue
        ctx = {
            **row["context"],
            "policies": {
                "retry": {
                    "retry_count": count + 1,
                    "applied_policy": policy.get("ref") or policy.get("name"),
                    "retried_execution_id": row["id"],
                }
            },
        }
        exe_store.create(
            conn,
            action=row["action"],
            parameters=row["parameters"],
            context=ctx,
            user=row["user"],
            parent_id=row["parent_id"],
            delay=delay,
        )
        return


def flush(
    conn: Connection,
    owner: str,
    batches: list[exe_store.OutputBatch],
    payloads: dict[int, tuple[str, Any]],
    host_rows: list[dict[str, Any]],
    started: list[dict[str, Any]],
) -> None:
    exe_store.record_started(conn, started)
    exe_store.append_output_many(conn, batches)
    queue.set_payloads(conn, owner, payloads)
    hosts.record(conn, host_rows)


def release_detached(conn: Connection, jobs: list[Job]) -> None:
    """Store what detached remote runs reported, and give their work back."""
    hosts.record(conn, [r for j in jobs for r in j.take_hosts()[0]])
    exe_store.append_output_many(conn, [j.take_output() for j in jobs])
    for job in jobs:
        queue.release(conn, job.item_id)


def renew_leases(conn: Connection, owner: str, ids: list[int], lease: float) -> None:
    queue.renew(conn, owner, ids, lease)


class Worker:
    def __init__(
        self,
        db: Database,
        bus: Bus,
        settings: Settings,
        owner: str,
        keyring: KeyRing,
        inventory: Any = None,
    ) -> None:
        self.db, self.bus, self.settings, self.owner = db, bus, settings, owner
        self.keyring = keyring
        self.inventory = inventory  # squall.services.inventory.InventoryService
        self._inventory_cache: tuple[float, Any] | None = None
        self._inventory_read: asyncio.Task[Any] | None = None
        self.ssh_options = SshOptions(
            known_hosts=settings.ssh_known_hosts,
            host_key_check=settings.ssh_host_key_check,
            connect_timeout=settings.ssh_connect_timeout,
        )
        self.jobs: dict[str, Job] = {}
        self.lease = settings.lease_seconds
        self._slots = asyncio.Event()
        # Set when a run waits for its host rows to be stored: the flusher
        # writes them at once rather than at its next tick (a remote run waits
        # twice per host: before it connects, and before the job files go).
        self._flush_now = asyncio.Event()
        # Finished runs wait here to be recorded, several per transaction under load.
        self._done: asyncio.Queue[Completion] = asyncio.Queue()
        bus.on("cancel", self._on_cancel)

    def _on_cancel(self, execution_id: str) -> None:
        job = self.jobs.get(execution_id)
        if job and job.task and not job.task.done():
            job.cancel_requested = True
            job.task.cancel()

    async def run(self) -> None:
        helpers = [
            asyncio.create_task(self._heartbeat(), name="worker-heartbeat"),
            asyncio.create_task(self._flusher(), name="worker-output"),
            asyncio.create_task(self._recorder(), name="worker-recorder"),
        ]
        try:
            await self._claim_loop()
        finally:
            for h in helpers:
                h.cancel()
            await self._stop_jobs()

    async def _claim_loop(self) -> None:
        wake = self.bus.waker(RUN)
        limit = self.settings.worker_concurrency
        while True:
            free = limit - len(self.jobs)
            if free <= 0:
                self._slots.clear()
                await self._slots.wait()
                continue
            wake.clear()
            try:
                started, leftovers, due = await self.db.write(
                    start_batch,
                    self.owner,
                    free,
                    self.lease,
                    self.lease * 4 + 3600,
                    self.keyring,
                )
            except Exception:
                log.exception("claiming work failed; retrying")
                await asyncio.sleep(1.0)
                continue
            metrics.observe_pickup([s[1] for s in started], time.time())
            for identity in leftovers:
                if kill_leftover(identity):
                    log.warning("stopped process group %s left by a worker that died", identity)
            for item_id, row, config, token, done, recorded in started:
                job = Job(item_id, row, config, token, OutputBuffer(self.settings.output_cap_bytes))
                job.hosts_done = done
                job.start_recorded = recorded
                self.jobs[row["id"]] = job
                job.task = asyncio.create_task(self._execute(job), name=f"execution-{row['id']}")
            if len(started) >= free:
                continue
            await wait_for_wake(wake, 5.0 if due is None else min(5.0, until(due)))

    def _context(self, job: Job) -> RunContext:
        row, action = job.row, job.row["action"]
        runner = get_runner(row["runner_type"])
        schema = parameter_schema(action)
        names = set(runner.meta.runner_parameters)
        params = row["parameters"]
        runner_params = {k: v for k, v in params.items() if k in names}
        action_params = {k: v for k, v in params.items() if k not in names}
        runner_params["__param_schema__"] = schema
        secrets = execution_secrets(params, action)
        env = {}
        if job.token:
            env = {
                "ST2_API_URL": f"{self.settings.api_url}/api/v1",
                "ST2_AUTH_URL": f"{self.settings.api_url}/auth/v1",
                "ST2_AUTH_TOKEN": job.token,
                "ST2_ACTION_API_URL": f"{self.settings.api_url}/api/v1",
                "ST2_ACTION_AUTH_TOKEN": job.token,
                "ST2_ACTION_EXECUTION_ID": row["id"],
            }
        timeout = runner_params.get("timeout")
        return RunContext(
            execution_id=row["id"],
            action_ref=row["action_ref"],
            pack=action.get("pack", ""),
            parameters=action_params,
            runner_parameters=runner_params,
            entry_point=action.get("entry_point_path"),
            pack_dir=action.get("pack_path"),
            timeout=float(timeout) if timeout else None,
            config=job.config,
            env=env,
            secrets=secrets,
            python=action.get("python"),
            max_output_bytes=self.settings.output_cap_bytes,
            on_spawn=lambda pgid: self._spawned(job, pgid),
            hosts_done=job.hosts_done,
            report_hosts=lambda rows, durable: self._host_rows(job, rows, durable),
            ssh_options=self.ssh_options,
            ssh_concurrency=self.settings.ssh_concurrency,
        )

    async def _host_rows(self, job: Job, rows: list[dict[str, Any]], durable: bool) -> None:
        """Queue per-host rows for the flusher; durable: wait until committed."""
        if not rows:
            return
        job.host_rows.extend(rows)
        if durable:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            job.host_waiters.append(waiter)
            self._flush_now.set()
            await waiter

    async def _inventory(self) -> Any:
        """The inventory with the gathered facts, for a remote run.

        Kept for a few seconds: a rollout starts one remote execution per
        host, and re-reading every host's facts for each would make the
        fleet's size count twice. One read at a time: the runs that start
        while it is under way (a whole batch, when the copy kept has just
        expired) wait for it rather than each reading again."""
        if self.inventory is None:
            return None
        cached = self._inventory_cache
        if cached is not None and time.monotonic() - cached[0] < 5.0:
            return cached[1]
        if self._inventory_read is None or self._inventory_read.done():
            self._inventory_read = asyncio.create_task(self._read_inventory())
            # Its outcome is read here too: an error that no run is left
            # waiting for is not reported as never retrieved.
            self._inventory_read.add_done_callback(lambda t: t.cancelled() or t.exception())
        # Shielded: one run being canceled does not cancel the others' read.
        return await asyncio.shield(self._inventory_read)

    async def _read_inventory(self) -> Any:
        now = time.monotonic()
        inventory = await asyncio.to_thread(self.inventory.get)
        gathered = await self.db.read(hosts.facts, list(inventory.hosts))
        merged = inventory.with_facts(gathered)
        self._inventory_cache = (now, merged)
        return merged

    @staticmethod
    def _spawned(job: Job, pgid: int) -> None:
        job.processes.append(process_identity(pgid))
        job.processes_changed = True

    async def _execute(self, job: Job) -> None:
        eid = job.row["id"]
        logs.execution_id.set(eid)  # this task's log lines carry the execution's id
        try:
            runner = get_runner(job.row["runner_type"])
            ctx = self._context(job)
            if getattr(runner, "reattachable", None) is not None:  # the remote runners
                ctx.inventory = await self._inventory()
            job.ctx = ctx
            # The runners mask the execution's secret values (even split
            # across chunks); this adds the patterns and datastore secrets.
            masker = masks.masker(ctx.secrets)

            async def sink(stream: str, text: str) -> None:
                job.buffer.add(stream, masker.text(text))

            outcome = await runner.run(ctx, sink)
            outcome = RunResult(outcome.status, masker.data(outcome.result))
        except asyncio.CancelledError:
            if not job.cancel_requested:
                raise  # the worker is stopping; _stop_jobs records it
            outcome = RunResult("canceled", {"error": "canceled by request"})
        except Exception as exc:
            log.exception("execution %s failed in its runner", eid)
            outcome = RunResult("failed", {"error": f"{type(exc).__name__}: {exc}"})
        # The job keeps its slot (and its lease) until the recorder has written it.
        rows, waiters = job.take_hosts()
        for w in waiters:
            if not w.done():
                w.set_result(None)  # written with the completion now
        self._done.put_nowait(
            Completion(
                job.item_id,
                eid,
                Status(outcome.status),
                outcome.result,
                job.take_output(),
                rows,
                None if job.start_recorded else job.row,
            )
        )

    async def _recorder(self) -> None:
        while True:
            batch = [await self._done.get()]
            while not self._done.empty() and len(batch) < 256:
                batch.append(self._done.get_nowait())
            await self._write_completions(batch)
            for c in batch:
                self.jobs.pop(c.execution_id, None)
            self._slots.set()

    async def _write_completions(self, batch: list[Completion]) -> None:
        for attempt in range(60):
            try:
                await self.db.write(finish_many, batch)
                return
            except StoreUnavailable:
                # Keep the results while the database is away; the heartbeat
                # keeps renewing the leases meanwhile.
                log.warning("database unavailable; retrying to record %d results", len(batch))
                await asyncio.sleep(min(10.0, 0.5 * (attempt + 1)))
            except Exception:
                if len(batch) == 1:
                    log.exception("could not record the result of %s", batch[0].execution_id)
                    return
                for one in batch:  # find and skip the one that cannot be written
                    await self._write_completions([one])
                return

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            ids = [j.item_id for j in self.jobs.values()]
            try:
                await self.db.write(renew_leases, self.owner, ids, self.lease)
            except Exception:
                log.exception("renewing leases failed")

    async def _flusher(self) -> None:
        """Every FLUSH_SECONDS: new output, and the processes runs started;
        at once when host rows are waited for (one write at a time: what
        arrives meanwhile goes in the next)."""
        while True:
            await wait_for_wake(self._flush_now, FLUSH_SECONDS)
            self._flush_now.clear()
            batches = []
            payloads = {}
            host_rows: list[dict[str, Any]] = []
            waiters: list[asyncio.Future[None]] = []
            marking: list[Job] = []
            due = time.monotonic() - START_MARK_SECONDS
            for job in list(self.jobs.values()):
                if job.buffer.pending:
                    batches.append(job.take_output())
                if job.processes_changed:
                    job.processes_changed = False
                    payloads[job.item_id] = (job.row["id"], {"processes": list(job.processes)})
                if job.host_rows:
                    rows, ws = job.take_hosts()
                    host_rows += rows
                    waiters += ws
                if not job.start_recorded and job.claimed_at <= due:
                    marking.append(job)
            if batches or payloads or host_rows or waiters or marking:
                started = [j.row for j in marking]
                try:
                    await self.db.write(flush, self.owner, batches, payloads, host_rows, started)
                except Exception as exc:
                    log.exception("writing output failed")
                    for w in waiters:
                        if not w.done():
                            w.set_exception(StoreUnavailable(f"host results not stored: {exc}"))
                    continue
                for w in waiters:
                    if not w.done():
                        w.set_result(None)
                for job in marking:
                    job.start_recorded = True

    async def _stop_jobs(self) -> None:
        """On shutdown: stop every running action and say so in its record."""
        jobs = list(self.jobs.values())
        for job in jobs:
            if job.ctx is not None and _reattachable(job.row["runner_type"]):
                job.ctx.leave_running = True
            if job.task:
                job.task.cancel()
        await asyncio.gather(*(j.task for j in jobs if j.task), return_exceptions=True)
        batch = []
        while not self._done.empty():
            batch.append(self._done.get_nowait())
        recorded = {c.execution_id for c in batch}
        detached = [j for j in jobs if j.ctx is not None and j.ctx.leave_running]
        for job in jobs:
            if job in detached and job.row["id"] not in recorded:
                continue
            if job.row["id"] not in recorded:
                batch.append(
                    Completion(
                        job.item_id,
                        job.row["id"],
                        Status.ABANDONED,
                        {"error": "Squall stopped while this execution was running"},
                        job.take_output(),
                        started=None if job.start_recorded else job.row,
                    )
                )
        if batch:
            try:
                await self.db.write(finish_many, batch)
            except Exception:
                log.exception("could not record %d executions on shutdown", len(batch))
        if detached:
            # Remote commands go on; the next start re-attaches to them at once.
            try:
                await self.db.write(release_detached, detached)
                log.warning("left %d remote executions running for the next start", len(detached))
            except Exception:
                log.exception("could not hand back %d remote executions", len(detached))
        self.jobs.clear()
