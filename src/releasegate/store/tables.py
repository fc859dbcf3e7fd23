"""The schema, in SQLAlchemy Core: one table per noun, JSON kept as canonical text.

Every row that other rows point at is keyed by its content id (version, suite,
policy) so ids are the same on every machine; history tables carry an integer
``seq`` because "current" means "latest", and clocks are not an order.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

ID = String(64)
TS = DateTime(timezone=True)

workflows = Table(
    "workflows",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("description", Text, nullable=False, default=""),
    Column("stakes", String(10), nullable=False),
    Column("owners_json", Text, nullable=False),
    Column("environments_json", Text, nullable=False),
    Column("monitor_json", Text, nullable=True),  # alert rules: metadata, never in a version id
    # 0008: experiments expire after this many days (NULL: never); the data class rules apply
    Column("experiments_retention_days", Integer, nullable=True),
    Column("data_class", String(20), nullable=False, server_default="internal"),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
)

versions = Table(
    "versions",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("version_id", ID, nullable=False, unique=True),
    Column("workflow", String(200), ForeignKey("workflows.name"), nullable=False),
    Column("manifest_json", Text, nullable=False),
    Column("owner", String(200), nullable=True),
    Column("parent_id", ID, nullable=True),
    Column("reason", Text, nullable=False, default=""),
    Column("track", String(20), nullable=False),
    Column("source_commit", String(64), nullable=True),
    Column("created_at", TS, nullable=False),
    Index("ix_versions_workflow_seq", "workflow", "seq"),
)

suites = Table(
    "suites",
    metadata,
    Column("suite_id", ID, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("workflow", String(200), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("content_json", Text, nullable=False),
    Column("created_at", TS, nullable=False),
)

suite_history = Table(
    "suite_history",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("workflow", String(200), nullable=False),
    Column("suite_id", ID, ForeignKey("suites.suite_id"), nullable=False),
    Column("reason", Text, nullable=False, default=""),
    Column("created_at", TS, nullable=False),
    Index("ix_suite_history_workflow_seq", "workflow", "seq"),
)

policies = Table(
    "policies",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("policy_id", ID, nullable=False),
    Column("workflow", String(200), nullable=False),
    Column("env", String(100), nullable=False),
    Column("content_json", Text, nullable=False),
    Column("created_at", TS, nullable=False),
    Index("ix_policies_workflow_env_seq", "workflow", "env", "seq"),
)

# Policy changes proposed and approved through ``releasegate policy`` (0010): a
# proposal names the policy it changes (``base_policy_id``) and the one it makes.
policy_proposals = Table(
    "policy_proposals",
    metadata,
    Column("proposal_id", String(32), primary_key=True),
    Column("workflow", String(200), nullable=False),
    Column("env", String(100), nullable=False),
    Column("base_policy_id", ID, nullable=False),
    Column("policy_id", ID, nullable=False),
    Column("content_json", Text, nullable=False),
    Column("changes_json", Text, nullable=False),
    Column("proposer", String(200), nullable=False),
    Column("reason", Text, nullable=False),
    Column("state", String(12), nullable=False),
    Column("approver", String(200), nullable=True),
    Column("note", Text, nullable=True),
    Column("created_at", TS, nullable=False),
    Column("decided_at", TS, nullable=True),
    Index("ix_policy_proposals_workflow_env", "workflow", "env"),
)

eval_runs = Table(
    "eval_runs",
    metadata,
    Column("eval_id", String(32), primary_key=True),
    Column("version_id", ID, ForeignKey("versions.version_id"), nullable=False),
    Column("suite_id", ID, ForeignKey("suites.suite_id"), nullable=False),
    Column("epochs", Integer, nullable=False),
    Column("status", String(20), nullable=False),
    Column("n_cases", Integer, nullable=False, default=0),
    Column("n_errors", Integer, nullable=False, default=0),
    Column("n_cached", Integer, nullable=False, default=0),
    Column("summary_json", Text, nullable=False, default="{}"),
    Column("started_at", TS, nullable=False),
    Column("finished_at", TS, nullable=True),
    Index("ix_eval_runs_version_suite", "version_id", "suite_id"),
)

outputs = Table(
    "outputs",
    metadata,
    Column("version_id", ID, primary_key=True),
    Column("case_hash", ID, primary_key=True),
    Column("epoch", Integer, primary_key=True),
    Column("text", Text, nullable=False),
    Column("data_json", Text, nullable=True),
    Column("latency_ms", Float, nullable=False),
    Column("tokens_in", Integer, nullable=False),
    Column("tokens_out", Integer, nullable=False),
    Column("cost_usd", Float, nullable=False),
    Column("error", Text, nullable=True),
    Column("created_at", TS, nullable=False),
)

scores = Table(
    "scores",
    metadata,
    Column("version_id", ID, primary_key=True),
    Column("case_hash", ID, primary_key=True),
    Column("epoch", Integer, primary_key=True),
    Column("scorer_id", ID, primary_key=True),
    Column("value", Float, nullable=False),
    Column("passed", Boolean, nullable=False),
    Column("detail", Text, nullable=False, default=""),
)

gate_decisions = Table(
    "gate_decisions",
    metadata,
    Column("decision_id", String(32), primary_key=True),
    Column("version_id", ID, ForeignKey("versions.version_id"), nullable=False),
    Column("workflow", String(200), nullable=False),
    Column("env", String(100), nullable=False),
    Column("suite_id", ID, nullable=False),
    Column("policy_id", ID, nullable=False),
    Column("baseline_id", ID, nullable=True),
    Column("verdict", String(20), nullable=False),
    Column("checks_passed", Boolean, nullable=False),
    Column("change_class", String(20), nullable=True),
    Column("report_json", Text, nullable=False),
    Column("created_at", TS, nullable=False),
    Index("ix_gate_decisions_version_env", "version_id", "env"),
)

approvals = Table(
    "approvals",
    metadata,
    Column("version_id", ID, primary_key=True),
    Column("env", String(100), primary_key=True),
    Column("approver", String(200), primary_key=True),
    Column("workflow", String(200), nullable=False),
    Column("role", String(20), nullable=False),
    Column("note", Text, nullable=False, default=""),
    Column("created_at", TS, nullable=False),
)

environments = Table(
    "environments",
    metadata,
    Column("workflow", String(200), primary_key=True),
    Column("env", String(100), primary_key=True),
    Column("version_id", ID, nullable=False),
    Column("revision", Integer, nullable=False),
    Column("updated_at", TS, nullable=False),
    Column("paused_reason", Text, nullable=True),
    Column("paused_by", String(200), nullable=True),
    Column("paused_at", TS, nullable=True),
)

env_history = Table(
    "env_history",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("workflow", String(200), nullable=False),
    Column("env", String(100), nullable=False),
    Column("version_id", ID, nullable=False),
    Column("previous_id", ID, nullable=True),
    Column("action", String(20), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("decision_id", String(32), nullable=True),
    Column("reason", Text, nullable=False, default=""),
    Column("created_at", TS, nullable=False),
    Index("ix_env_history_workflow_env_seq", "workflow", "env", "seq"),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("at", TS, nullable=False),
    Column("kind", String(50), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("workflow", String(200), nullable=True),
    Column("subject", String(200), nullable=True),
    Column("payload_json", Text, nullable=False),
    Column("prev_hash", ID, nullable=False),
    Column("hash", ID, nullable=False),
    Column("key_id", String(64), nullable=True),  # None: written before the chain was keyed
)

audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", Integer, nullable=False),
    Column("hash", ID, nullable=False),
)

embeddings = Table(
    "embeddings",
    metadata,
    Column("key", String(120), primary_key=True),
    Column("vector", LargeBinary, nullable=False),
)

# Production runs. Times are epoch seconds (float) so windows are plain range scans and a
# million-row import does not pay for datetime conversion; texts are kept by hash too,
# so drift embeds each distinct text once.
runs = Table(  # names and counts as wide as domain/runs.py accepts (NAME_MAX, COUNT_MAX)
    "runs",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(256), nullable=False, unique=True),
    Column("workflow", String(256), nullable=False),
    Column("version_id", String(100), nullable=False),
    Column("env", String(256), nullable=False),
    Column("started_at", Float, nullable=False),
    Column("ended_at", Float, nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("tokens_in", BigInteger, nullable=False),
    Column("tokens_out", BigInteger, nullable=False),
    Column("cost_usd", Float, nullable=True),
    Column("model", String(256), nullable=True),
    Column("operation", String(256), nullable=True),
    Column("status", String(10), nullable=False),
    Column("failure_reason", Text, nullable=True),
    Column("retries", BigInteger, nullable=False),
    Column("escalated", Boolean, nullable=False),
    Column("edited", Boolean, nullable=False),
    Column("feedback", Float, nullable=True),
    Column("label", String(256), nullable=True),
    Column("output_chars", Integer, nullable=True),
    Column("input_hash", String(64), nullable=True),
    Column("output_hash", String(64), nullable=True),
    Column("input", Text, nullable=True),
    Column("output", Text, nullable=True),
    Column("attributes_json", Text, nullable=True),
    Column("source", String(10), nullable=False),
    Column("received_at", Float, nullable=False),
    Column("arm", String(10), nullable=True),  # 0006: stable | canary under a rollout, else NULL
    # 0017: the run's review-sample draw under the default seed (domain.review_queue)
    Column("sample_draw", Float, nullable=True),
    # 0016: a window of runs is read from the index alone, in time order (see the migration)
    Index(
        "ix_runs_window",
        "workflow",
        "env",
        "started_at",
        "arm",
        "status",
        "escalated",
        "edited",
        "feedback",
        "latency_ms",
        "cost_usd",
        "output_chars",
        "label",
        "version_id",
        "sample_draw",
    ),
)

# Runs per day (0015): what the dashboard's program numbers and trends read, so a page
# never scans the runs. One row per workflow, environment and UTC day (days since the
# epoch) of the served runs (shadow runs served nobody): counts and sums, kept up to date
# in the transaction that inserts or deletes runs (store/run_days.py).
run_days = Table(
    "run_days",
    metadata,
    Column("workflow", String(256), primary_key=True),
    Column("env", String(256), primary_key=True),
    Column("day", Integer, primary_key=True),
    Column("runs", BigInteger, nullable=False),
    Column("errors", BigInteger, nullable=False),
    Column("escalated", BigInteger, nullable=False),
    Column("edited", BigInteger, nullable=False),
    Column("costed", BigInteger, nullable=False),  # runs that have a cost
    Column("cost_usd", Float, nullable=False),
    Column("latency_ms", Float, nullable=False),  # the sum, for the mean
    Index("ix_run_days_day", "day"),
)

# Progressive rollouts (0006). ``active`` is ``workflow@env`` while running, NULL after:
# unique, so one environment runs one rollout at a time whoever starts it.
rollouts = Table(
    "rollouts",
    metadata,
    Column("rollout_id", String(32), primary_key=True),
    Column("workflow", String(200), nullable=False),
    Column("env", String(100), nullable=False),
    Column("stable_id", ID, nullable=False),
    Column("canary_id", ID, nullable=False),
    Column("mode", String(10), nullable=False),
    Column("steps_json", Text, nullable=False),
    Column("step", Integer, nullable=False),
    Column("weight", Float, nullable=False),
    Column("state", String(12), nullable=False),
    Column("active", String(320), nullable=True, unique=True),
    Column("policy_json", Text, nullable=False),
    Column("evidence_json", Text, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("reason", Text, nullable=False),
    Column("revision", Integer, nullable=False),
    Column("started_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    Column("step_started_at", TS, nullable=False),
    Index("ix_rollouts_workflow_env_started", "workflow", "env", "started_at"),
)

# Rollback rehearsals (0008). ``active`` is ``workflow@env`` while one runs, NULL after:
# unique, so two rehearsals never move one environment at once; ``state`` says what a
# crashed one left to undo (``deployed``: put ``original_id`` back).
rehearsals = Table(
    "rehearsals",
    metadata,
    Column("rehearsal_id", String(32), primary_key=True),
    Column("workflow", String(200), nullable=False),
    Column("env", String(100), nullable=False),
    Column("original_id", ID, nullable=False),
    Column("deployed_id", ID, nullable=True),
    Column("suite_id", ID, nullable=True),
    Column("state", String(12), nullable=False),
    Column("result", String(20), nullable=True),
    Column("active", String(320), nullable=True, unique=True),
    Column("mutation_score", Float, nullable=True),
    Column("time_to_detect_s", Float, nullable=True),
    Column("time_to_revert_s", Float, nullable=True),
    Column("is_restored", Boolean, nullable=True),
    Column("mutations_json", Text, nullable=False),
    Column("runner_json", Text, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("started_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    Column("finished_at", TS, nullable=True),
    Index("ix_rehearsals_workflow_env_started", "workflow", "env", "started_at"),
)

alerts = Table(
    "alerts",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("workflow", String(256), nullable=False),
    Column("env", String(256), nullable=False),
    Column("signal", String(100), nullable=False),
    Column("severity", String(20), nullable=False),
    Column("message", Text, nullable=False),
    Column("payload_json", Text, nullable=False),
    Column("routed_json", Text, nullable=False),
    Column("created_at", TS, nullable=False),
    # the outbox (0004): pending -> routed | failed; a lease keeps two monitors from both sending
    Column("status", String(10), nullable=False, server_default="routed"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", Text, nullable=True),
    Column("lease_until", TS, nullable=True),
    Column("routed_at", TS, nullable=True),
    Index("ix_alerts_workflow_env_signal_seq", "workflow", "env", "signal", "seq"),
    Index("ix_alerts_status_seq", "status", "seq"),
)

# Workflow stages (0011): experiment -> pilot -> routine, each from its handover date, with
# the two owners named then; "current" is the latest whose date has come.
workflow_stages = Table(
    "workflow_stages",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("workflow", String(200), ForeignKey("workflows.name"), nullable=False),
    Column("stage", String(20), nullable=False),
    Column("handover_date", Date, nullable=False),
    Column("change_owner", String(200), nullable=True),
    Column("care_owner", String(200), nullable=True),
    Column("actor", String(200), nullable=False),
    Column("reason", Text, nullable=False, default=""),
    Column("forced", Boolean, nullable=False),
    Column("failing_json", Text, nullable=False),  # the checklist lines that failed, if forced
    Column("created_at", TS, nullable=False),
    Index("ix_workflow_stages_workflow_seq", "workflow", "seq"),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("token_id", String(16), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("active_name", String(100), nullable=True, unique=True),  # NULL once revoked
    Column("role", String(20), nullable=False),
    Column("secret_hash", String(64), nullable=False),
    Column("created_at", TS, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("revoked_at", TS, nullable=True),
    Column("revoked_by", String(200), nullable=True),
)

# The human review queue (0013): one review per run and reviewer (a second is an update);
# ``run_started_at`` copies the run's start so a period's reviews need no join on runs.
run_reviews = Table(
    "run_reviews",
    metadata,
    Column("review_id", String(32), primary_key=True),
    Column("run_id", String(256), nullable=False),
    Column("workflow", String(256), nullable=False),
    Column("env", String(256), nullable=False),
    Column("version_id", String(100), nullable=False),
    Column("run_started_at", Float, nullable=False),
    Column("reviewer", String(200), nullable=False),
    Column("verdict", String(10), nullable=False),
    Column("expected", Text, nullable=True),
    Column("note", Text, nullable=False, default=""),
    Column("reasons_json", Text, nullable=False),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    Column("case_id", String(200), nullable=True),
    Column("case_suite_id", ID, nullable=True),
    UniqueConstraint("run_id", "reviewer"),
    Index("ix_run_reviews_workflow_env_started", "workflow", "env", "run_started_at"),
)

# Content-addressed blobs (0014): one row per blob, its bytes in chunks of at most
# ``blobs.CHUNK`` each, zlib-compressed where that pays (``encoding``: zlib or raw).
blobs = Table(
    "blobs",
    metadata,
    Column("digest", String(64), primary_key=True),  # sha256 of the bytes, hex
    Column("size", BigInteger, nullable=False),
    Column("stored_size", BigInteger, nullable=False),
    Column("chunks", Integer, nullable=False),
    Column("created_at", TS, nullable=False),
)

blob_chunks = Table(
    "blob_chunks",
    metadata,
    Column("digest", String(64), ForeignKey("blobs.digest"), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("encoding", String(8), nullable=False),
    Column("data", LargeBinary, nullable=False),
)

# Server jobs (0018): what a server runs for a caller after answering 202 (compare,
# rehearse, shadow-replay, a gate that evaluates first), so any replica answers a poll.
# ``result`` is the verb's ``--json`` text once completed; ``error_json`` the error shape.
jobs = Table(
    "jobs",
    metadata,
    Column("job_id", String(32), primary_key=True),
    Column("kind", String(20), nullable=False),
    Column("subject", String(320), nullable=False),
    Column("status", String(12), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("runner_json", Text, nullable=False),
    Column("result", Text, nullable=True),
    Column("error_json", Text, nullable=True),
    Column("created_at", TS, nullable=False),
    Column("finished_at", TS, nullable=True),
    Column("alive_at", TS, nullable=True),
)
