"""The tables. Timestamps are UTC seconds since the epoch (floats): cheap to
compare in SQL on both SQLite and PostgreSQL, formatted at the API edge."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s",
    }
)

Json = sa.JSON().with_variant(JSONB(), "postgresql")
Ts = sa.Double

packs = sa.Table(
    "packs",
    metadata,
    sa.Column("ref", sa.String(255), primary_key=True),
    sa.Column("id", sa.String(32), nullable=False, unique=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("meta", Json, nullable=False),
    sa.Column("config_schema", Json),
    sa.Column("config", Json),
    sa.Column("files", Json, nullable=False),
    sa.Column("registered_at", Ts, nullable=False),
)

actions = sa.Table(
    "actions",
    metadata,
    sa.Column("ref", sa.String(512), primary_key=True),
    sa.Column("id", sa.String(32), nullable=False, unique=True),
    sa.Column("pack", sa.String(255), nullable=False, index=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("runner_type", sa.String(64), nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False, default=True),
    sa.Column("meta", Json, nullable=False),  # the action's metadata as loaded
    sa.Column("updated_at", Ts, nullable=False),
)

policies = sa.Table(
    "policies",
    metadata,
    sa.Column("ref", sa.String(512), primary_key=True),
    sa.Column("id", sa.String(32), nullable=False, unique=True),
    sa.Column("pack", sa.String(255), nullable=False, index=True),
    sa.Column("resource_ref", sa.String(512), nullable=False, index=True),
    sa.Column("policy_type", sa.String(128), nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False, default=True),
    sa.Column("meta", Json, nullable=False),
)

executions = sa.Table(
    "executions",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("action_ref", sa.String(512), nullable=False),
    sa.Column("runner_type", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("action", Json, nullable=False),  # action metadata at request time
    sa.Column("parameters", Json, nullable=False),
    sa.Column("result", Json),
    sa.Column("context", Json, nullable=False),
    sa.Column("log", Json, nullable=False),  # [{status, timestamp}]
    sa.Column("parent_id", sa.String(32)),
    sa.Column("user", sa.String(255)),
    sa.Column("start_timestamp", Ts, nullable=False),
    sa.Column("end_timestamp", Ts, index=True),
    sa.Column("output_bytes", sa.Integer, nullable=False, default=0),
    sa.Index("ix_executions_action_status", "action_ref", "status"),
    # Lists are newest first: each filter's index ends with the list's order
    # (start_timestamp, id), so a page is read straight from the index and
    # a count never touches the rows.
    sa.Index("ix_executions_start", "start_timestamp", "id"),
    sa.Index("ix_executions_action_start", "action_ref", "start_timestamp", "id"),
    sa.Index("ix_executions_status_start", "status", "start_timestamp", "id"),
    sa.Index("ix_executions_parent_start", "parent_id", "start_timestamp", "id"),
    sa.Index("ix_executions_user_start", "user", "start_timestamp", "id"),
)

execution_output = sa.Table(
    "execution_output",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("execution_id", sa.String(32), nullable=False, index=True),
    sa.Column("stream", sa.String(16), nullable=False),
    sa.Column("data", sa.Text, nullable=False),
    sa.Column("timestamp", Ts, nullable=False),
)

# The work queue. A row is a unit of work for the consumer of ``topic``. It is
# inserted in the same transaction as the state change that makes the work,
# claimed with a lease, and deleted in the same transaction as the state
# change that completes it.
work = sa.Table(
    "work",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("topic", sa.String(64), nullable=False),
    sa.Column("ref", sa.String(64), nullable=False),
    sa.Column("payload", Json),
    sa.Column("available_at", Ts, nullable=False),
    sa.Column("lease_owner", sa.String(64)),
    sa.Column("lease_expires", Ts),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("created_at", Ts, nullable=False),
    sa.Index("ix_work_topic_available", "topic", "available_at"),
    sa.Index("ix_work_ref", "ref"),
)

kv = sa.Table(
    "kv",
    metadata,
    sa.Column("scope", sa.String(16), primary_key=True),  # "system" | "user"
    sa.Column("owner", sa.String(255), primary_key=True),  # "" for system scope
    sa.Column("name", sa.String(512), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),  # ciphertext when secret
    sa.Column("secret", sa.Boolean, nullable=False, default=False),
    sa.Column("expire_at", Ts, index=True),
    sa.Column("updated_at", Ts, nullable=False),
)

users = sa.Table(
    "users",
    metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("password_hash", sa.Text),
    sa.Column("enabled", sa.Boolean, nullable=False, default=True),
    sa.Column("is_admin", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", Ts, nullable=False),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("key_hash", sa.String(128), nullable=False, unique=True),
    sa.Column("user", sa.String(255), nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False, default=True),
    sa.Column("metadata", Json, nullable=False),
    sa.Column("created_at", Ts, nullable=False),
    sa.Column("expires_at", Ts),
)

tokens = sa.Table(
    "tokens",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("token_hash", sa.String(128), nullable=False, unique=True),
    sa.Column("user", sa.String(255), nullable=False),
    sa.Column("metadata", Json, nullable=False),
    sa.Column("created_at", Ts, nullable=False),
    sa.Column("expiry", Ts, nullable=False, index=True),
)

# Roles read from the rbac directory (the built-in ones live in core/rbac.py).
roles = sa.Table(
    "roles",
    metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("grants", Json, nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("source", sa.Text, nullable=False),  # the file, relative to the rbac directory
    sa.Column("updated_at", Ts, nullable=False),
)

role_assignments = sa.Table(
    "role_assignments",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("user", sa.String(255), nullable=False, index=True),
    sa.Column("role", sa.String(255), nullable=False),
    sa.Column("source", sa.Text, nullable=False),  # "api" or the file it was read from
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("created_at", Ts, nullable=False),
    sa.UniqueConstraint("user", "role", "source"),
)

trigger_types = sa.Table(
    "trigger_types",
    metadata,
    sa.Column("ref", sa.String(512), primary_key=True),
    sa.Column("id", sa.String(32), nullable=False, unique=True),
    sa.Column("pack", sa.String(255), nullable=False, index=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("meta", Json, nullable=False),  # description, payload_schema, parameters_schema...
)

# A trigger is a trigger type with parameters (the webhook "github", a timer
# every 5 minutes). Rules name one; trigger instances are events of one.
triggers = sa.Table(
    "triggers",
    metadata,
    sa.Column("ref", sa.String(512), primary_key=True),
    sa.Column("id", sa.String(32), nullable=False, unique=True),
    sa.Column("type", sa.String(512), nullable=False, index=True),
    sa.Column("pack", sa.String(255), nullable=False),
    sa.Column("parameters", Json, nullable=False),
)

rules = sa.Table(
    "rules",
    metadata,
    sa.Column("ref", sa.String(512), primary_key=True),
    sa.Column("id", sa.String(32), nullable=False, unique=True),
    sa.Column("pack", sa.String(255), nullable=False, index=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("trigger_type", sa.String(512), nullable=False, index=True),
    sa.Column("trigger_ref", sa.String(512), nullable=False, index=True),
    sa.Column("meta", Json, nullable=False),  # the rule as loaded or created
    sa.Column("source", sa.String(16), nullable=False),  # "pack" | "api"
    sa.Column("updated_at", Ts, nullable=False),
    # Whose permissions its action runs with: the user who created or last
    # changed it (None: the system, for packs registered from disk).
    sa.Column("owner", sa.String(255)),
)

trigger_instances = sa.Table(
    "trigger_instances",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("trigger", sa.String(512), nullable=False, index=True),
    sa.Column("payload", Json, nullable=False),
    sa.Column("status", sa.String(32), nullable=False, index=True),
    sa.Column("occurrence_time", Ts, nullable=False, index=True),
    sa.Column("context", Json),  # where it came from: webhook caller, sensor, re-emit of...
)

rule_enforcements = sa.Table(
    "rule_enforcements",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("rule_ref", sa.String(512), nullable=False, index=True),
    sa.Column("rule_id", sa.String(32), nullable=False),
    sa.Column("trigger_instance_id", sa.String(32), nullable=False, index=True),
    sa.Column("execution_id", sa.String(32), index=True),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("failure_reason", sa.Text),
    sa.Column("enforced_at", Ts, nullable=False, index=True),
    sa.Column("details", Json),  # throttle/accumulate bookkeeping
)

# Open throttle and accumulate windows, one per rule and group of events.
rule_windows = sa.Table(
    "rule_windows",
    metadata,
    sa.Column("rule_ref", sa.String(512), primary_key=True),
    sa.Column("group_key", sa.String(512), primary_key=True),
    sa.Column("opened_at", Ts, nullable=False),
    sa.Column("closes_at", Ts, nullable=False),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("instances", Json, nullable=False),  # trigger instance ids kept for the action
)

sensors = sa.Table(
    "sensors",
    metadata,
    sa.Column("ref", sa.String(512), primary_key=True),
    sa.Column("id", sa.String(32), nullable=False, unique=True),
    sa.Column("pack", sa.String(255), nullable=False, index=True),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("meta", Json, nullable=False),
    # What the sensor container last reported about the process.
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("state_info", Json, nullable=False),
    sa.Column("state_at", Ts, nullable=False),
)

# A running (or finished) workflow: its kind, the definition it runs, and a
# version bumped by every step, so a process holding the conductor in memory
# knows whether another step (or a rolled-back one) changed it meanwhile.
workflows = sa.Table(
    "workflows",
    metadata,
    sa.Column("execution_id", sa.String(32), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),  # "orquesta" | "action-chain"
    sa.Column("spec_hash", sa.String(64), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", Ts, nullable=False),
    sa.Column("updated_at", Ts, nullable=False),
)

# Workflow definitions as they were when a run started, stored once per
# distinct text: a run keeps its definition even if the pack changes.
workflow_specs = sa.Table(
    "workflow_specs",
    metadata,
    sa.Column("hash", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("created_at", Ts, nullable=False),
)

# A conductor's state, one small record per row (core/workflow.py): task
# instances, staged tasks, published contexts, with-items items. A step
# writes only the records it changed.
workflow_records = sa.Table(
    "workflow_records",
    metadata,
    sa.Column("execution_id", sa.String(32), primary_key=True),
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("value", Json, nullable=False),
)

# One row per host of a remote execution, written as its result arrives, so
# progress is visible while the execution runs and a restarted worker knows
# which hosts are done. ``result`` is StackStorm's per-host result.
execution_hosts = sa.Table(
    "execution_hosts",
    metadata,
    sa.Column("execution_id", sa.String(32), primary_key=True),
    sa.Column("host", sa.String(255), primary_key=True),
    sa.Column("seq", sa.Integer, nullable=False),  # position in the target, for a stable order
    # pending, running, then one of core.hostresults.FINAL
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("result", Json, nullable=True),
    sa.Column("updated_at", Ts, nullable=False),
)

# Facts gathered from hosts (``squall inventory facts``), by inventory host
# name; targeting reads them under the facts the inventory declares.
host_facts = sa.Table(
    "host_facts",
    metadata,
    sa.Column("host", sa.String(255), primary_key=True),
    sa.Column("facts", Json, nullable=False),
    sa.Column("gathered_at", Ts, nullable=False),
)

# A rollout: its spec as given, its plan (budget, gates, concurrency; the
# hosts and batches are rows of rollout_hosts), and where it is.
rollouts = sa.Table(
    "rollouts",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),
    # planned, running, paused, succeeded, failed, aborted, rolled_back
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("spec", Json, nullable=False),
    sa.Column("plan", Json, nullable=False),
    sa.Column("batch", sa.Integer, nullable=False),  # the current batch
    sa.Column("gate", Json, nullable=True),  # the gate being waited on
    # Set when the rollout must stop (budget breached, aborted): the status it
    # ends with once no host is in flight.
    sa.Column("ending", sa.String(16), nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("user", sa.String(255), nullable=True),
    sa.Column("execution_id", sa.String(32), nullable=True),  # a core.rollout that started it
    # Undoing the change: {state: requested|running|done, reason, automatic,
    # batch (the batch being undone, last first), started_at, user}.
    sa.Column("rollback", Json, nullable=True),
    # Metric analysis runs: [{gate, name, after_batch, status, measurements}].
    sa.Column("analysis", Json, nullable=True),
    sa.Column("created_at", Ts, nullable=False),
    sa.Column("started_at", Ts, nullable=True),
    sa.Column("ended_at", Ts, nullable=True),
    sa.Column("updated_at", Ts, nullable=False),
)

# One row per host of a rollout's snapshot, in plan order.
rollout_hosts = sa.Table(
    "rollout_hosts",
    metadata,
    sa.Column("rollout_id", sa.String(32), primary_key=True),
    sa.Column("host", sa.String(255), primary_key=True),
    sa.Column("batch", sa.Integer, nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    # pending, running, succeeded, failed, unreachable, timeout, skipped, rolled_back, canceled
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("execution_id", sa.String(32), nullable=True),  # of the current phase
    # While running: preflight, pre_host, action, health, post_host.
    sa.Column("phase", sa.String(16), nullable=True),
    sa.Column("outcome", sa.String(16), nullable=True),  # kept while post_host runs
    sa.Column("tries", sa.Integer, nullable=False, server_default="0"),  # health check runs
    sa.Column("passes", sa.Integer, nullable=False, server_default="0"),  # in a row
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("started_at", Ts, nullable=True),
    sa.Column("ended_at", Ts, nullable=True),
    # The action was started on the host: a rollback undoes it.
    sa.Column("changed", sa.Boolean, nullable=False, server_default=sa.false()),
    # Its undo: pending, running, done, failed (None: nothing to undo).
    sa.Column("undo", sa.String(16), nullable=True),
    sa.Column("output", sa.Text, nullable=True),  # the action's output, short, for folding
    sa.Index("ix_rollout_hosts_batch", "rollout_id", "batch", "status"),
)

# What a rollout's controller decided and who steered it, in order.
rollout_log = sa.Table(
    "rollout_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("rollout_id", sa.String(32), nullable=False),
    sa.Column("at", Ts, nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("user", sa.String(255), nullable=True),
    sa.Index("ix_rollout_log_rollout", "rollout_id", "id"),
)


# The audit trail: append-only (the database refuses updates and deletes,
# see migration 0007) and hash-chained once sealed (squall/core/audit.py).
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
audit = sa.Table(
    "audit",
    metadata,
    sa.Column("seq", BigId, primary_key=True, autoincrement=True),
    sa.Column("at", Ts, nullable=False),
    sa.Column("actor", sa.String(255), nullable=False),  # a user, "rule:pack.name", "system"
    # api, sign_in, execution, inquiry, rollout, denied
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("action", sa.String(255), nullable=False),  # "POST /api/v1/rules", "pause", ...
    sa.Column("target", sa.String(255), nullable=True),  # the id or ref acted on
    sa.Column("outcome", sa.String(32), nullable=False),  # ok, failed, denied, an HTTP status
    sa.Column("source", sa.String(64), nullable=True),  # the client's address
    sa.Column("details", Json, nullable=True),  # secrets masked
    sa.Column("position", BigId, nullable=True, unique=True),  # in the chain, once sealed
    sa.Column("hash", sa.String(64), nullable=True),
    sa.Index("ix_audit_at", "at"),
    sa.Index("ix_audit_actor", "actor", "seq"),
    sa.Index("ix_audit_kind", "kind", "seq"),
)

# How far `squall up` has taken each webhook inbox (store/inbox.py): the last
# sequence number moved into this database, committed with what it made.
inbox_marks = sa.Table(
    "inbox_marks",
    metadata,
    sa.Column("inbox", sa.String(64), primary_key=True),
    sa.Column("seq", sa.BigInteger, nullable=False),
)
