import json
from collections.abc import Callable
from typing import Any

import pytest

from squall.core.actionchain import ActionChainConductor, ChainInvalid, ChainSpec, inspect, load
from squall.core.templating import SecretValue
from squall.core.workflow import ActionRequest, Environment, Problem
from squall.errors import Conflict, InvalidInput

# --------------------------------------------------------------------------- chains
# Written in StackStorm's action-chain format, as packs ship them.

SEQUENTIAL = """
---
chain:
  - name: c1
    ref: wolfpack.a1
    parameters:
      p1: v1
    on-success: c2
    on-failure: c4
  - name: c2
    ref: wolfpack.a2
    parameters:
      p1: "{{ c1.o1 }}"
    on-success: c3
    on-failure: c4
  - name: c3
    ref: wolfpack.a3
    parameters: {}
    on-failure: c4
  - name: c4
    ref: wolfpack.cleanup
    parameters:
      actionstr: "{{ action_context.parent.execution_id }}"
default: c1
"""

PUBLISHING = """
vars:
  greeting: "hello {{ who }}"
  count: 2
chain:
  - name: get_host
    ref: core.local
    params:
      cmd: "hostname -s"
    publish:
      host: "{{ get_host.stdout }}"
      from_param: "{{ who }}"
      last: first
    on-success: greet
    on-failure: report
  - name: greet
    ref: core.echo
    params:
      message: "{{ greeting }} from {{ host }} ({{ get_host.stdout }})"
      times: "{{ count }}"
      raw: 5
      listed: ["{{ who }}", "{{ count }}", 3]
      everything: "{{ __results.get_host.stdout }}"
    publish:
      last: second
      code: "{{ greet.return_code }}"
  - name: report
    ref: core.echo
    params:
      message: "failed: {{ get_host.stderr }}"
"""

NO_DEFAULT = """
chain:
  - name: cleanup
    ref: core.noop
  - name: first
    ref: core.noop
    on-success: second
    on-failure: cleanup
  - name: second
    ref: core.noop
"""

INQUIRY = """
chain:
  - name: ask
    ref: core.ask
    params:
      route: ops
    publish:
      approved: "{{ ask.response.approved }}"
    on-success: act
  - name: act
    ref: core.local
    params:
      cmd: "echo approved={{ approved }}"
"""

LOOP = """
chain:
  - name: try
    ref: core.http
    params:
      url: "{{ url }}"
    on-success: done
    on-failure: wait
  - name: wait
    ref: core.pause
    params:
      max_pause: 1
    on-success: try
  - name: done
    ref: core.echo
    params:
      message: "{{ try.body }}"
"""


# --------------------------------------------------------------------------- a driver


class FakeKV:
    def __init__(self, values: dict[tuple[str, str], Any]) -> None:
        self.values = values

    def get(self, scope: str, name: str) -> Any:
        return self.values.get((scope, name))

    def decrypt(self, value: str) -> str:
        return value.removeprefix("enc:")


class Driver:
    """Plays the workflow engine: starts what is asked, keeps every record,
    and, with ``restore=True``, rebuilds the conductor from the records after
    every step, as after a crash."""

    def __init__(
        self,
        chain: str,
        *,
        restore: bool = False,
        env: Environment | None = None,
        runner_parameters: dict[str, Any] | None = None,
        config: dict[str, Any] | None = None,
    ) -> None:
        self.spec = load(chain, "test.yaml")
        self.env = env or Environment(parent_context={"execution_id": "exec-1", "user": "stanley"})
        self.config = config
        self.restore = restore
        self.records: dict[str, dict[str, Any]] = {}
        self.requests: list[ActionRequest] = []
        self.open: dict[str, int] = {}  # node name -> seq of its latest request
        self.conductor = ActionChainConductor.new(
            self.spec, self.env, runner_parameters=runner_parameters, config=config
        )

    def _after(self, requests: list[ActionRequest]) -> list[ActionRequest]:
        for kind, records in self.conductor.take_changes().records.items():
            for key, value in records.items():
                # Rows are JSON: what survives a round trip is all there is.
                self.records.setdefault(kind, {})[key] = json.loads(json.dumps(value))
        if self.restore:
            self.conductor = ActionChainConductor.restore(
                self.spec, self.records, self.env, config=self.config
            )
        for request in requests:
            self.open[request.task_id] = request.seq
        self.requests.extend(requests)
        return requests

    def start(self, **params: Any) -> list[ActionRequest]:
        return self._after(self.conductor.start(params))

    def report(self, node: str, status: str, result: Any = None) -> list[ActionRequest]:
        return self._after(self.conductor.action_status(self.open[node], None, status, result))

    def ask(self, status: str) -> list[ActionRequest]:
        return self._after(self.conductor.request_status(status))

    def rerun(self, *nodes: str) -> list[ActionRequest]:
        return self._after(self.conductor.rerun([(n, 0, False) for n in nodes]))

    @property
    def status(self) -> str:
        return self.conductor.status

    @property
    def output(self) -> dict[str, Any]:
        output = self.conductor.output
        assert output is not None
        return output

    def ran(self) -> list[str]:
        return [r.task_id for r in self.requests]


def names(driver: Driver) -> list[tuple[str, str]]:
    return [(t["name"], t["state"]) for t in driver.output["tasks"]]


# --------------------------------------------------------------------------- running


def test_sequential_success_runs_every_node_in_order() -> None:
    d = Driver(SEQUENTIAL)
    [first] = d.start()
    assert (first.task_id, first.action, first.input, first.route) == (
        "c1",
        "wolfpack.a1",
        {"p1": "v1"},
        0,
    )
    assert d.status == "running"
    [second] = d.report("c1", "succeeded", {"o1": "from c1"})
    assert second.input == {"p1": "from c1"}
    assert second.seq != first.seq
    d.report("c2", "running")
    assert d.status == "running"
    [third] = d.report("c2", "succeeded", {"o1": 2})
    assert third.task_id == "c3"
    assert d.report("c3", "succeeded", {"ok": True}) == []
    assert d.status == "succeeded"
    assert d.conductor.errors == []
    assert names(d) == [("c1", "succeeded"), ("c2", "succeeded"), ("c3", "succeeded")]


def test_result_has_stackstorms_shape() -> None:
    d = Driver(SEQUENTIAL)
    d.start()
    d.report("c1", "succeeded", {"o1": "x"})
    d.report("c2", "failed", {"stderr": "boom"})
    d.report("c4", "succeeded", {})
    output = d.output
    assert set(output) == {"tasks", "published"}
    assert output["published"] == {}
    entry = output["tasks"][1]
    assert set(entry) == {
        "id",
        "name",
        "execution_id",
        "liveaction_id",
        "workflow",
        "created_at",
        "updated_at",
        "state",
        "result",
    }
    assert (entry["id"], entry["name"], entry["state"]) == ("c2", "c2", "failed")
    assert entry["result"] == {"stderr": "boom"}

    details = {
        seq: {"execution_id": f"e{seq}", "created_at": "t0", "updated_at": "t1"}
        for seq in range(1, 4)
    }
    filled = d.conductor.result(details.__getitem__)
    assert [t["execution_id"] for t in filled["tasks"]] == ["e1", "e2", "e3"]
    assert filled["tasks"][0]["liveaction_id"] == "e1"
    assert filled["tasks"][2]["updated_at"] == "t1"


def test_on_failure_branch_and_final_status_is_the_last_nodes() -> None:
    d = Driver(SEQUENTIAL)
    d.start()
    [handler] = d.report("c1", "failed", {"error": "nope"})
    assert handler.task_id == "c4"
    assert handler.input == {"actionstr": "exec-1"}
    d.report("c4", "succeeded", {})
    # As in st2: a handled failure leaves the chain with its last node's status.
    assert d.status == "succeeded"

    d = Driver(SEQUENTIAL)
    d.start()
    d.report("c1", "failed")
    d.report("c4", "failed")
    assert d.status == "failed"
    assert d.output["tasks"][-1]["state"] == "failed"


def test_failure_without_on_failure_fails_the_chain() -> None:
    d = Driver(NO_DEFAULT)
    d.start()
    d.report("first", "succeeded")
    assert d.report("second", "failed", {"stderr": "x"}) == []
    assert d.status == "failed"
    assert names(d) == [("first", "succeeded"), ("second", "failed")]


@pytest.mark.parametrize(
    ("status", "chain_status"), [("timeout", "timeout"), ("abandoned", "failed")]
)
def test_timeout_and_abandoned_take_on_failure(status: str, chain_status: str) -> None:
    d = Driver(NO_DEFAULT)
    d.start()
    [cleanup] = d.report("first", status)
    assert cleanup.task_id == "cleanup"
    d.report("cleanup", "succeeded")
    assert d.status == "succeeded"

    d = Driver(NO_DEFAULT)
    d.start()
    d.report("first", "succeeded")
    d.report("second", status)
    assert d.status == chain_status


def test_a_canceled_node_cancels_the_chain() -> None:
    d = Driver(SEQUENTIAL)
    d.start()
    assert d.report("c1", "canceled") == []
    assert d.status == "canceled"


def test_loops_are_allowed_and_later_results_win() -> None:
    d = Driver(LOOP)
    d.start(url="http://x")
    d.report("try", "failed", {"body": "down"})
    d.report("wait", "succeeded")
    d.report("try", "failed", {"body": "down"})
    d.report("wait", "succeeded")
    [done] = d.report("try", "succeeded", {"body": "up"})
    assert done.input == {"message": "up"}
    d.report("done", "succeeded")
    assert d.status == "succeeded"
    assert d.ran() == ["try", "wait", "try", "wait", "try", "done"]
    assert len(d.output["tasks"]) == 6


# --------------------------------------------------------------------------- context


def test_publish_vars_and_previous_results_in_params() -> None:
    d = Driver(PUBLISHING)
    [first] = d.start(who="bob")
    assert first.input == {"cmd": "hostname -s"}
    [greet] = d.report("get_host", "succeeded", {"stdout": "web1", "return_code": 0})
    assert greet.input == {
        "message": "hello bob from web1 (web1)",
        # Templates render to text as in st2; the engine casts per the
        # action's schema. Values without a template keep their type.
        "times": "2",
        "raw": 5,
        "listed": ["bob", "2", 3],
        "everything": "web1",
    }
    d.report("greet", "succeeded", {"return_code": 0})
    assert d.status == "succeeded"
    assert d.output["published"] == {
        "host": "web1",
        "from_param": "bob",
        "last": "second",  # the last publish wins
        "code": "0",
    }


def test_publish_runs_for_failed_nodes_too() -> None:
    d = Driver(PUBLISHING)
    d.start(who="bob")
    [report] = d.report("get_host", "failed", {"stdout": "", "stderr": "no route"})
    assert report.input == {"message": "failed: no route"}
    assert d.output["published"]["from_param"] == "bob"


def test_display_published_false_leaves_published_out() -> None:
    d = Driver(PUBLISHING, runner_parameters={"display_published": False})
    d.start(who="bob")
    [greet] = d.report("get_host", "succeeded", {"stdout": "web1"})
    assert "web1" in greet.input["message"]  # still published for templates
    d.report("greet", "succeeded", {"return_code": 0})
    assert "published" not in d.output


def test_vars_are_rendered_with_the_parameters_and_the_datastore() -> None:
    chain = """
    vars:
      target: "{{ host }}:{{ st2kv.system.port }}"
      legacy: "{{ system.port }}"
      token: "{{ st2kv.system.token | decrypt_kv }}"
    chain:
      - name: call
        ref: core.http
        params:
          url: "http://{{ target }}/{{ legacy }}"
          headers: {Authorization: "{{ token }}"}
          user: "{{ action_context.parent.user }}"
          region: "{{ config_context.region }}"
    """
    kv = FakeKV({("system", "port"): "8080", ("system", "token"): SecretValue("enc:s3cret")})
    env = Environment(kv=kv, parent_context={"execution_id": "e", "user": "stanley"})
    d = Driver(chain, env=env, config={"region": "eu"})
    [call] = d.start(host="api")
    assert call.input == {
        "url": "http://api:8080/8080",
        "headers": {"Authorization": "s3cret"},
        "user": "stanley",
        "region": "eu",
    }


def test_action_context_parent_from_the_engines_environment() -> None:
    chain = """
    chain:
      - name: who
        ref: core.echo
        params:
          message: "{{ action_context.parent.execution_id }} {{ action_context.parent.user }}"
          pack: "{{ action_context.parent.pack }} {{ action_context.parent.parent.execution_id }}"
    """
    st2 = {"action_execution_id": "wf-9", "user": "alice", "pack": "ops"}
    env = Environment(parent_context={"st2": st2, "parent": {"execution_id": "root-1"}})
    [who] = Driver(chain, env=env).start()
    assert who.input == {"message": "wf-9 alice", "pack": "ops root-1"}


def test_vars_hide_parameters_and_published_values_hide_vars() -> None:
    chain = """
    vars: {name: from_vars}
    chain:
      - name: one
        ref: core.echo
        params: {message: "{{ name }}"}
        publish: {name: published}
        on-success: two
      - name: two
        ref: core.echo
        params: {message: "{{ name }}"}
    """
    d = Driver(chain)
    [one] = d.start(name="from_param")
    assert one.input == {"message": "from_vars"}
    [two] = d.report("one", "succeeded")
    assert two.input == {"message": "published"}


def test_rendered_values_are_text_like_stackstorms() -> None:
    chain = """
    chain:
      - name: c1
        ref: wolfpack.a2
        parameters:
          inttype: "{{ s1 }}"
          strtype: "{{ s2 }}"
          numbertype: "{{ s3 }}"
          booltype: true
          arrtype: ["{{ s1 }}", "{{ s2 }}"]
          objtype: {k1: "{{ s1 }}", nested: "{{ obj }}"}
          nothing: "{{ None | use_none }}"
    """
    d = Driver(chain)
    [c1] = d.start(s1=1, s2="two", s3=3.14, obj={"a": 1})
    assert c1.input == {
        "inttype": "1",
        "strtype": "two",
        "numbertype": "3.14",
        "booltype": True,
        "arrtype": ["1", "two"],
        "objtype": {"k1": "1", "nested": "{'a': 1}"},
        "nothing": None,
    }


# --------------------------------------------------------------------------- start node


def test_default_names_the_start_node() -> None:
    chain = SEQUENTIAL.replace("default: c1", "default: c3")
    d = Driver(chain)
    assert [r.task_id for r in d.start()] == ["c3"]


def test_without_default_the_first_node_nobody_goes_to_starts() -> None:
    spec = load(NO_DEFAULT)
    assert spec.default is None
    assert spec.start == "first"
    d = Driver(NO_DEFAULT)
    assert [r.task_id for r in d.start()] == ["first"]


def test_without_default_and_every_node_referenced_the_first_node_starts() -> None:
    spec = load(
        """
        chain:
          - {name: a, ref: core.noop, on-success: b}
          - {name: b, ref: core.noop, on-success: a}
        """
    )
    assert spec.start == "a"


def test_a_template_as_default_ends_the_chain_at_once_like_st2() -> None:
    d = Driver("chain: [{name: a, ref: core.noop}]\ndefault: '{{ start }}'\n")
    assert d.start(start="a") == []
    assert d.status == "succeeded"
    assert d.output["tasks"] == []


# --------------------------------------------------------------------------- validation


def test_validation_lists_every_problem_with_its_path() -> None:
    spec = load(
        """
        chain:
          - name: a
            ref: core.noop
            on-success: b
            on_failure: c
          - name: b
            on-failure: nowhere
            description: later nodes may carry extra keys, as in st2
          - name: a
            ref: core.noop
            params: {x: 1}
            parameters: {y: 2}
          - ref: core.noop
            on-success: "{{ decided_later }}"
          - just text
        default: missing
        extra: 1
        """,
        "pack/actions/chain.yaml",
    )
    problems = inspect(spec)
    paths = [p.path for p in problems]
    assert paths == [
        "extra",
        "chain[0].on_failure",
        "chain[1].ref",
        "chain[2]",
        "chain[3].name",
        "chain[4]",
        "chain[2].name",
        "chain[1].on-failure",
        "default",
    ]
    assert "'nowhere' is not a node" in str(problems[7])
    assert str(problems[8]) == "default: 'missing' is not a node of this chain"

    with pytest.raises(ChainInvalid) as caught:
        ActionChainConductor.new(spec, Environment())
    assert str(ChainInvalid(problems[:1])).splitlines() == [
        "the action chain has 1 problem:",
        "  extra: unknown key; an action chain has 'chain', 'default' and 'vars'",
    ]
    lines = caught.value.message.splitlines()
    assert lines[0] == "action chain pack/actions/chain.yaml has 9 problems:"
    assert [line.strip() for line in lines[1:]] == [str(p) for p in problems]
    assert isinstance(caught.value, InvalidInput)
    assert caught.value.to_dict()["problems"][2] == {
        "path": "chain[1].ref",
        "message": "is required",
    }


def test_a_valid_chain_has_no_problems() -> None:
    for chain in (SEQUENTIAL, PUBLISHING, NO_DEFAULT, INQUIRY, LOOP):
        assert inspect(load(chain)) == []


@pytest.mark.parametrize(
    ("document", "path"),
    [
        ("chain: [", ""),
        ("- a\n- b\n", ""),
        ("default: a\n", "chain"),
        ("chain: {}\n", "chain"),
        ("chain: []\n", "chain"),
        ("chain: [{name: a, ref: b, params: [1]}]\n", "chain[0].params"),
        ("chain: [{name: a, ref: b, publish: x}]\n", "chain[0].publish"),
        ("chain: [{name: a, ref: b, notify: {on-start: {}}}]\n", "chain[0].notify.on-start"),
        ("chain: [{name: a, ref: b}]\nvars: [1]\n", "vars"),
        ("chain: [{name: a, ref: 1}]\n", "chain[0].ref"),
    ],
)
def test_malformed_chains(document: str, path: str) -> None:
    try:
        problems = inspect(load(document))
    except ChainInvalid as exc:
        problems = list(exc.problems)
    assert path in [p.path for p in problems]


def test_problem_reads_as_path_and_message() -> None:
    assert str(Problem("chain[2].on-success", "'x' is not a node")) == (
        "chain[2].on-success: 'x' is not a node"
    )


def test_load_takes_parsed_data_too() -> None:
    spec = load({"chain": [{"name": "a", "ref": "core.noop"}]}, "inline")
    assert isinstance(spec, ChainSpec)
    assert spec.source == "inline"
    assert spec.node("a") is not None and spec.node("a").ref == "core.noop"  # type: ignore[union-attr]


# --------------------------------------------------------------------------- errors at run time


def test_parameter_rendering_failure_on_the_first_node() -> None:
    d = Driver("chain: [{name: c1, ref: a.b, params: {p1: '{{ s1 }}'}}]\n")
    assert d.start() == []
    assert d.status == "failed"
    assert d.output["tasks"] == []
    error = d.output["error"]
    assert "node 'c1' was not run" in error and "'p1'" in error and "s1" in error
    assert d.conductor.errors[0]["task_id"] == "c1"


def test_parameter_rendering_failure_on_a_later_node_skips_on_failure() -> None:
    chain = """
    chain:
      - {name: c1, ref: a.b, on-success: c2}
      - {name: c2, ref: a.b, params: {p1: "{{ c1.missing }}"}, on-failure: c3}
      - {name: c3, ref: a.b}
    """
    d = Driver(chain)
    d.start()
    assert d.report("c1", "succeeded", {"o1": 1}) == []
    assert d.status == "failed"
    assert names(d) == [("c1", "succeeded")]
    assert "node 'c2' was not run" in d.output["error"]


def test_publish_rendering_failure_fails_the_chain() -> None:
    chain = """
    chain:
      - {name: c1, ref: a.b, on-success: c2}
      - {name: c2, ref: a.b, publish: {p1: "{{ not_defined }}"}, on-success: c3}
      - {name: c3, ref: a.b}
    """
    d = Driver(chain)
    d.start()
    d.report("c1", "succeeded")
    assert d.report("c2", "succeeded") == []
    assert d.status == "failed"
    assert names(d) == [("c1", "succeeded"), ("c2", "succeeded")]
    assert "publish value 'p1'" in d.output["error"]
    assert "not_defined" in d.output["error"]


def test_vars_rendering_failure_fails_before_any_node() -> None:
    d = Driver("vars: {a: '{{ nope }}'}\nchain: [{name: c1, ref: a.b}]\n")
    assert d.start() == []
    assert d.status == "failed"
    assert d.output == {"tasks": [], "published": {}, "error": d.output["error"]}
    assert "vars" in d.output["error"]


def test_a_template_as_next_node_fails_when_taken() -> None:
    d = Driver("chain: [{name: a, ref: x.y, on-success: '{{ next }}'}, {name: b, ref: x.y}]\n")
    d.start(next="b")
    assert d.report("a", "succeeded") == []
    assert d.status == "failed"
    assert "on-success names '{{ next }}'" in d.output["error"]


def test_long_errors_are_capped() -> None:
    d = Driver("chain: [{name: c1, ref: a.b, params: {p1: '{{ " + "x" * 9000 + " }}'}}]\n")
    d.start()
    assert len(d.records["workflow"]["wf"]["error"]["message"]) <= 4000


# --------------------------------------------------------------------------- pause, resume, cancel


def test_pause_waits_for_the_running_node_then_resume_runs_the_next() -> None:
    d = Driver(SEQUENTIAL)
    d.start()
    assert d.ask("pausing") == []
    assert d.status == "pausing"
    assert d.report("c1", "succeeded", {"o1": "v"}) == []
    assert d.status == "paused"
    assert d.ask("pausing") == []
    assert d.status == "paused"
    [c2] = d.ask("resuming")
    assert (c2.task_id, c2.input) == ("c2", {"p1": "v"})
    assert d.status == "running"


def test_pause_after_the_last_node_then_resume_completes() -> None:
    d = Driver(NO_DEFAULT)
    d.start()
    d.report("first", "succeeded")
    d.ask("paused")
    d.report("second", "failed")
    assert d.status == "paused"
    assert d.ask("resuming") == []
    assert d.status == "failed"


def test_resume_before_the_pause_took_effect() -> None:
    d = Driver(SEQUENTIAL)
    d.start()
    d.ask("pausing")
    d.ask("resuming")
    assert d.status == "running"
    [c2] = d.report("c1", "succeeded", {"o1": 1})
    assert c2.task_id == "c2"


def test_a_paused_node_pauses_the_chain_until_the_chain_resumes() -> None:
    d = Driver(SEQUENTIAL)
    d.start()
    d.report("c1", "paused")
    assert d.status == "paused"
    assert names(d) == [("c1", "paused")]
    # The node is resumed on its own and finishes: st2 keeps the chain paused.
    assert d.report("c1", "running") == []
    assert d.report("c1", "succeeded", {"o1": "late"}) == []
    assert d.status == "paused"
    [c2] = d.ask("resuming")
    assert c2.input == {"p1": "late"}


def test_resuming_the_chain_waits_for_its_paused_node() -> None:
    d = Driver(SEQUENTIAL)
    d.start()
    d.ask("pausing")
    d.report("c1", "paused")  # the pause reached the node (a sub-workflow)
    assert d.status == "paused"
    assert d.ask("resuming") == []  # the driver resumes the node
    assert d.status == "running"
    d.report("c1", "running")
    d.ask("pausing")
    assert d.status == "pausing"
    d.ask("resuming")
    [c2] = d.report("c1", "succeeded", {"o1": 1})
    assert c2.task_id == "c2"


def test_a_pending_inquiry_pauses_the_chain_and_its_answer_resumes_it() -> None:
    d = Driver(INQUIRY)
    d.start()
    d.report("ask", "pending")
    assert d.status == "paused"
    d.report("ask", "running")
    assert d.status == "running"
    [act] = d.report("ask", "succeeded", {"response": {"approved": True}})
    assert act.input == {"cmd": "echo approved=True"}


def test_an_answered_inquiry_can_finish_directly() -> None:
    d = Driver(INQUIRY)
    d.start()
    d.report("ask", "pending")
    [act] = d.report("ask", "succeeded", {"response": {"approved": False}})
    assert act.task_id == "act"
    assert d.status == "running"


def test_a_user_pause_holds_even_after_the_inquiry_is_answered() -> None:
    d = Driver(INQUIRY)
    d.start()
    d.report("ask", "pending")
    d.ask("pausing")
    d.report("ask", "succeeded", {"response": {"approved": True}})
    assert d.status == "paused"
    [act] = d.ask("resuming")
    assert act.task_id == "act"


def test_cancel_waits_for_the_running_node() -> None:
    d = Driver(SEQUENTIAL)
    d.start()
    d.ask("canceling")
    assert d.status == "canceling"
    d.ask("pausing")  # too late to pause
    assert d.status == "canceling"
    assert d.report("c1", "succeeded", {"o1": 1}) == []
    assert d.status == "canceled"
    assert names(d) == [("c1", "succeeded")]
    assert d.report("c1", "succeeded") == []
    assert d.ask("resuming") == []
    assert d.status == "canceled"


def test_cancel_a_paused_chain() -> None:
    d = Driver(SEQUENTIAL)
    d.start()
    d.ask("pausing")
    d.report("c1", "succeeded", {"o1": 1})
    d.ask("canceling")
    assert d.status == "canceled"

    d = Driver(SEQUENTIAL)
    d.start()
    d.report("c1", "paused")
    d.ask("canceled")
    assert d.status == "canceling"  # the paused node is canceled by the driver
    d.report("c1", "canceled")
    assert d.status == "canceled"


def test_unknown_requests_and_statuses_are_refused() -> None:
    d = Driver(SEQUENTIAL)
    d.start()
    with pytest.raises(InvalidInput):
        d.conductor.request_status("exploding")
    with pytest.raises(InvalidInput):
        d.conductor.action_status(1, None, "exploding")
    with pytest.raises(Conflict):
        d.conductor.start({})


def test_reports_for_unknown_or_earlier_runs_change_nothing() -> None:
    d = Driver(SEQUENTIAL)
    [c1] = d.start()
    [c2] = d.report("c1", "succeeded", {"o1": 1})
    assert d.conductor.action_status(c1.seq, None, "failed") == []
    assert d.conductor.action_status(99, None, "failed") == []
    assert d.conductor.take_changes().records == {}
    assert d.status == "running"
    assert c2.seq == d.open["c2"]


# --------------------------------------------------------------------------- rerun


def test_rerun_from_a_node_keeps_published_values_and_results() -> None:
    chain = """
    chain:
      - name: fetch
        ref: core.http
        publish: {token: "{{ fetch.body }}"}
        on-success: use
      - name: use
        ref: core.local
        params: {cmd: "deploy --token {{ token }} --from {{ fetch.status }}"}
        on-success: notify
      - name: notify
        ref: core.echo
        params: {message: "{{ use.stdout }}"}
    """
    d = Driver(chain)
    d.start()
    d.report("fetch", "succeeded", {"body": "T", "status": 200})
    d.report("use", "failed", {"stdout": ""})
    assert d.status == "failed"
    with pytest.raises(InvalidInput):
        d.rerun("nowhere")
    with pytest.raises(InvalidInput):
        d.rerun("use", "notify")
    [use] = d.rerun("use")
    assert use.input == {"cmd": "deploy --token T --from 200"}
    assert d.status == "running"
    with pytest.raises(Conflict):
        d.rerun("use")
    [notify] = d.report("use", "succeeded", {"stdout": "ok"})
    assert notify.input == {"message": "ok"}
    d.report("notify", "succeeded")
    assert d.status == "succeeded"
    assert names(d) == [
        ("fetch", "succeeded"),
        ("use", "failed"),
        ("use", "succeeded"),
        ("notify", "succeeded"),
    ]
    assert d.output["published"] == {"token": "T"}


def test_rerun_without_tasks_restarts_where_the_chain_stopped() -> None:
    d = Driver(NO_DEFAULT)
    d.start()
    d.report("first", "succeeded")
    d.report("second", "timeout")
    assert [r.task_id for r in d.rerun()] == ["second"]

    d = Driver("chain: [{name: c1, ref: a.b, params: {p1: '{{ s1 }}'}}]\n")
    d.start()
    assert d.status == "failed"
    assert d.rerun() == []  # still nothing to render it with
    assert d.output["error"].startswith("node 'c1' was not run")

    d = Driver(NO_DEFAULT)
    d.start()
    d.ask("pausing")
    d.report("first", "succeeded")
    d.ask("canceling")
    assert d.status == "canceled"
    assert [r.task_id for r in d.rerun()] == ["second"]

    d = Driver(NO_DEFAULT)
    d.start()
    d.report("first", "succeeded")
    d.report("second", "succeeded")
    with pytest.raises(InvalidInput):
        d.rerun()


def test_rerun_after_vars_failed_renders_them_again() -> None:
    kv = FakeKV({})
    d = Driver(
        "vars: {v: '{{ st2kv.system.k | decrypt_kv }}'}\nchain: [{name: a, ref: x.y}]\n",
        env=Environment(kv=kv),
    )
    d.start()
    assert d.status == "failed"
    kv.values[("system", "k")] = "enc:value"
    [a] = d.rerun()
    assert a.task_id == "a"


# --------------------------------------------------------------------------- notify


def test_notify_follows_stackstorms_choice() -> None:
    chain = """
    chain:
      - name: a
        ref: x.y
        notify: {on-complete: {message: node a}}
        on-success: b
      - name: b
        ref: x.y
    """
    d = Driver(chain, runner_parameters={"skip_notify": ["b"]})
    chain_notify = {"on-complete": {"message": "chain"}}
    assert d.conductor.notify("a", chain_notify) == {"on-complete": {"message": "node a"}}
    assert d.conductor.notify("b", chain_notify) is None
    d = Driver(chain)
    assert d.conductor.notify("b", chain_notify) == chain_notify
    assert d.conductor.notify("b") is None


# --------------------------------------------------------------------------- restore


Step = Callable[[Driver], Any]


def scenario_success(d: Driver) -> None:
    d.start(who="bob")
    d.report("get_host", "running")
    d.report("get_host", "succeeded", {"stdout": "web1", "return_code": 0})
    d.report("greet", "succeeded", {"return_code": 0})


def scenario_failure_branch(d: Driver) -> None:
    d.start(who="bob")
    d.report("get_host", "failed", {"stdout": "", "stderr": "boom"})
    d.report("report", "succeeded", {})


def scenario_pause_resume(d: Driver) -> None:
    d.start(who="bob")
    d.ask("pausing")
    d.report("get_host", "succeeded", {"stdout": "web1"})
    d.ask("resuming")
    d.report("greet", "paused")
    d.report("greet", "running")
    d.report("greet", "succeeded", {"return_code": 3})
    d.ask("resuming")


def scenario_cancel(d: Driver) -> None:
    d.start(who="bob")
    d.report("get_host", "succeeded", {"stdout": "web1"})
    d.ask("canceling")
    d.report("greet", "succeeded", {"return_code": 0})


def scenario_rerun(d: Driver) -> None:
    d.start(who="bob")
    d.report("get_host", "succeeded", {"stdout": "web1"})
    d.report("greet", "failed", {"return_code": 1})
    d.rerun("greet")
    d.report("greet", "succeeded", {"return_code": 0})


def scenario_publish_error(d: Driver) -> None:
    d.start(who="bob")
    d.report("get_host", "succeeded", {"stdout": "web1"})
    d.report("greet", "succeeded", {})  # greet.return_code is undefined
    d.rerun("greet")
    d.report("greet", "succeeded", {"return_code": 0})


def scenario_inquiry(d: Driver) -> None:
    d.start()
    d.report("ask", "pending")
    d.ask("pausing")
    d.report("ask", "running")
    d.report("ask", "succeeded", {"response": {"approved": "yes"}})
    d.ask("resuming")
    d.report("act", "succeeded", {"stdout": "approved=yes"})


def scenario_loop(d: Driver) -> None:
    d.start(url="http://x")
    for _ in range(3):
        d.report("try", "failed", {"body": "down"})
        d.report("wait", "succeeded")
    d.report("try", "succeeded", {"body": "up"})
    d.report("done", "succeeded")


@pytest.mark.parametrize(
    ("chain", "scenario", "final"),
    [
        (PUBLISHING, scenario_success, "succeeded"),
        (PUBLISHING, scenario_failure_branch, "succeeded"),
        (PUBLISHING, scenario_pause_resume, "succeeded"),
        (PUBLISHING, scenario_cancel, "canceled"),
        (PUBLISHING, scenario_rerun, "succeeded"),
        (PUBLISHING, scenario_publish_error, "succeeded"),
        (INQUIRY, scenario_inquiry, "succeeded"),
        (LOOP, scenario_loop, "succeeded"),
    ],
)
def test_restoring_after_every_step_changes_nothing(chain: str, scenario: Step, final: str) -> None:
    straight = Driver(chain)
    scenario(straight)
    restored = Driver(chain, restore=True)
    scenario(restored)

    assert straight.status == restored.status == final
    assert straight.requests == restored.requests
    assert straight.output == restored.output
    assert straight.conductor.errors == restored.conductor.errors
    assert straight.records == restored.records


def test_restore_keeps_the_runner_parameters_and_ignores_deleted_records() -> None:
    d = Driver(PUBLISHING, runner_parameters={"display_published": False, "skip_notify": ["greet"]})
    d.start(who="bob")
    records = {kind: dict(rows) for kind, rows in d.records.items()}
    records.setdefault("task", {})["99"] = None
    again = ActionChainConductor.restore(d.spec, records, d.env)
    assert again.notify("greet", {"x": 1}) is None
    output = again.output
    assert output is not None and "published" not in output
    [greet] = again.action_status(1, None, "succeeded", {"stdout": "h"})
    assert greet.seq == 2


def test_restore_from_no_records_is_a_new_chain() -> None:
    spec = load(PUBLISHING)
    conductor = ActionChainConductor.restore(spec, {}, Environment())
    assert conductor.status == "unset"
    assert conductor.output is None
    assert [r.task_id for r in conductor.start({"who": "x"})] == ["get_host"]


def test_no_record_grows_with_the_chain() -> None:
    d = Driver(LOOP)
    d.start(url="http://x")
    for _ in range(50):
        d.report("try", "failed", {"body": "down"})
        d.report("wait", "succeeded")
    sizes = {
        kind: max(len(json.dumps(row)) for row in rows.values()) for kind, rows in d.records.items()
    }
    assert sizes["workflow"] < 400
    assert sizes["task"] < 200
    assert sizes["context"] < 200
