"""StackStorm's reference Orquesta conductor, driven in-process with instant results.

Run with the python of bench/.venv-orquesta (made by bench/setup-orquesta),
not the project's: it imports PyPI ``orquesta``. bench/workflows.py runs it
once per workflow and mode, so each run's peak RSS is its own.

The driver does what st2's workflow service (st2common/services/workflows.py)
does around the conductor, minus the database and the message bus:

* ``get_next_tasks()``; every action it hands out is marked running with
  ``update_task_state(task, route, ActionExecutionEvent(RUNNING))`` (for a
  with-items task ``TaskItemActionExecutionEvent(item, RUNNING)``, one per
  item);
* the actions complete one at a time, oldest first, each with
  ``update_task_state(..., SUCCEEDED, result=None)`` (items carry the
  accumulated result list, as st2 passes it), and after each completion
  ``get_next_tasks()`` is asked again, as st2's ``request_next_tasks`` is.

Modes:

``bare``       the conductor stays in memory, nothing is persisted;
``serialize``  ``conductor.serialize()`` after each completion and after each
               batch of actions marked running: the points where st2 writes
               the workflow's state to its database (``update_execution_records``,
               which stores ``workflow_state.serialize()``; the whole conductor,
               spec and graph included, is what st2 serializes for its log);
               serializing only, no encoding and no write;
``st2``        as ``serialize``, and also the conductor rebuilt with
               ``WorkflowConductor.deserialize()`` before each completion and
               before each request for next tasks (st2's ``refresh_conductor``),
               and ``get_next_tasks()`` asked once more after each batch, as
               st2's ``request_next_tasks`` loop does. st2 additionally
               serializes the whole conductor for its debug log several times
               per event (the log call's argument is built whatever the log
               level); that is not counted.

Prints one JSON object: timings, counts and peak RSS.

Usage:  bench/.venv-orquesta/bin/python bench/orquesta_ref.py WORKFLOW.yaml
            [--inputs FILE.json] [--mode bare|serialize|st2]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

import orquesta
from orquesta import conducting, events, statuses
from orquesta.specs import native


def rss_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class Driver:
    def __init__(self, spec: Any, inputs: dict[str, Any], mode: str) -> None:
        self.mode = mode
        self.conductor = conducting.WorkflowConductor(spec, inputs=inputs)
        self.data: dict[str, Any] | None = None
        # (task, route, item) of every action handed out and not yet completed.
        self.pending: deque[tuple[str, int, int | None]] = deque()
        # The accumulated item results st2 hands the conductor with each item.
        self.results: dict[tuple[str, int], list[Any]] = {}
        self.actions = 0
        self.serializations = 0
        self.deserializations = 0

    def refresh(self) -> None:
        if self.mode == "st2" and self.data is not None:
            self.conductor = conducting.WorkflowConductor.deserialize(self.data)
            self.deserializations += 1

    def persist(self) -> None:
        if self.mode != "bare":
            self.data = self.conductor.serialize()
            self.serializations += 1

    def request_next(self) -> None:
        self.refresh()
        tasks = self.conductor.get_next_tasks()
        while tasks:
            for task in tasks:
                key = (task["id"], task["route"])
                if not task["actions"] and task.get("items_count") != 0:
                    raise SystemExit(f"task {key[0]} has no action: this driver does not run those")
                if task.get("items_count") == 0:
                    # st2 marks an empty with-items task running; it completes at once.
                    event: Any = events.ActionExecutionEvent(statuses.RUNNING)
                    self.conductor.update_task_state(*key, event)
                if "items_count" in task:
                    self.results.setdefault(key, [None] * task["items_count"])
                for action in task["actions"]:
                    item = action.get("item_id")
                    if item is None:
                        event = events.ActionExecutionEvent(statuses.RUNNING)
                    else:
                        event = events.TaskItemActionExecutionEvent(item, statuses.RUNNING)
                    self.conductor.update_task_state(*key, event)
                    self.pending.append((task["id"], task["route"], item))
                    self.actions += 1
            self.persist()
            if self.mode != "st2":
                # Every task handed out its actions, whose results come later:
                # asking again now would find nothing new.
                return
            # st2's request_next_tasks asks again until nothing new comes.
            self.refresh()
            tasks = self.conductor.get_next_tasks()

    def complete(self, task_id: str, route: int, item: int | None) -> None:
        self.refresh()
        if item is None:
            event: Any = events.ActionExecutionEvent(statuses.SUCCEEDED, result=None)
        else:
            acc = self.results[(task_id, route)]
            acc[item] = None
            event = events.TaskItemActionExecutionEvent(
                item, statuses.SUCCEEDED, result=None, accumulated_result=acc
            )
        self.conductor.update_task_state(task_id, route, event)
        self.persist()

    def run(self) -> str:
        self.conductor.request_workflow_status(statuses.RUNNING)
        self.persist()
        self.request_next()
        while self.pending:
            self.complete(*self.pending.popleft())
            self.request_next()
        return str(self.conductor.get_workflow_status())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("workflow", type=Path, help="the Orquesta workflow definition (YAML)")
    parser.add_argument("--inputs", type=Path, help="a JSON file holding the workflow's inputs")
    parser.add_argument("--mode", choices=["bare", "serialize", "st2"], default="bare")
    args = parser.parse_args()
    text = args.workflow.read_text()
    inputs = json.loads(args.inputs.read_text()) if args.inputs else {}
    rss_start = rss_kb("VmRSS")

    t0 = time.perf_counter()
    spec = native.WorkflowSpec(text)
    problems = spec.inspect()
    t1 = time.perf_counter()
    if problems:
        print(json.dumps({"error": "inspect", "problems": problems}, default=str))
        sys.exit(1)

    driver = Driver(spec, inputs, args.mode)
    cpu0 = time.process_time()
    t2 = time.perf_counter()
    status = driver.run()
    t3 = time.perf_counter()
    cpu1 = time.process_time()
    out = {
        "orquesta": orquesta.__version__,
        "python": sys.version.split()[0],
        "mode": args.mode,
        "status": status,
        "actions": driver.actions,
        "serializations": driver.serializations,
        "deserializations": driver.deserializations,
        "parse_inspect_s": round(t1 - t0, 4),
        "run_s": round(t3 - t2, 4),
        "run_cpu_s": round(cpu1 - cpu0, 4),
        "per_action_ms": round((t3 - t2) * 1000 / max(driver.actions, 1), 4),
        "rss_start_mb": round(rss_start / 1024, 1),
        "rss_end_mb": round(rss_kb("VmRSS") / 1024, 1),
        "peak_rss_mb": round(rss_kb("VmHWM") / 1024, 1),
        "maxrss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
