"""The audit chain attacked by someone who can write the database but does not hold the key.

Everything goes through the real ``releasegate`` command in a subprocess, on SQLite and
on PostgreSQL; the tampering is plain SQL, as an insider with database access would do it.
"""

from __future__ import annotations

import dataclasses
import json
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from releasegate.domain.audit import GENESIS, AuditEvent, chain_event, event_hash
from releasegate.domain.identity import canonical_json
from releasegate.store import tables
from releasegate.store.migrate import upgrade
from tests.conftest import PG_ADMIN, dialect_store, drop_pg_database, pg_database
from tests.helpers import Project, project_copy, rg


@dataclass
class Audited:
    """A project whose store ran the loop once: v1 in staging and production, bob approved."""

    project: Project
    url: str
    env: dict[str, str]
    v1: str = ""
    v2: str = ""

    @property
    def root(self) -> Path:
        return self.project.root

    def rg(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return rg(self.root, *args, env={**self.env, **env})

    def ok(self, *args: str) -> Any:
        result = self.rg(*args, "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def sql(self, statement: str, **params: Any) -> list[Any]:
        engine = sa.create_engine(self.url, poolclass=sa.pool.NullPool)
        try:
            with engine.begin() as conn:
                result = conn.execute(sa.text(statement), params)
                return list(result) if result.returns_rows else []
        finally:
            engine.dispose()

    def broken(self, *args: str) -> str:
        """Run ``audit verify``; it must exit 1 and say why on stderr (never a traceback)."""
        result = self.rg("audit", "verify", *args)
        assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
        assert result.stderr.startswith("audit log broken"), result.stderr
        return result.stderr.replace("\n", " ")

    def intact(self, *args: str) -> str:
        result = self.rg("audit", "verify", *args)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("audit log intact"), result.stdout
        return result.stdout


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def golden(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Audited]:
    """The loop run once per dialect; each test gets a copy (files, key and database)."""
    root = tmp_path_factory.mktemp(f"golden-{request.param}")
    with dialect_store(request, root) as (url, env):
        yield _golden(Audited(Project(root=root), url, env))


def _golden(a: Audited) -> Audited:
    """v1 evaluated, gated and promoted to both environments by the CLI; v2 registered."""
    a.project.suite(n=40)
    a.v1 = a.ok("register", str(a.project.workflow("v1")), "--reason", "honest")["version_id"]
    assert a.rg("eval", a.v1, "--suite", "suite.yaml").returncode == 0
    for env_name in ("staging", "production"):
        assert a.rg("gate", a.v1, "--env", env_name).returncode == 0
        assert a.rg("promote", a.v1, "--env", env_name).returncode == 0
    assert a.rg("approve", a.v1, "--env", "production", "--as", "bob").returncode == 0
    a.v2 = a.ok("register", str(a.project.workflow("v2", temperature=0.9)))["version_id"]
    return a


@pytest.fixture
def audited(golden: Audited, tmp_path: Path) -> Iterator[Audited]:
    root = tmp_path / "project"
    with project_copy(golden.root, golden.url, root) as (url, env):
        yield Audited(Project(root=root), url, env, golden.v1, golden.v2)


def plain_rehash(a: Audited, *, strip_keys: bool) -> None:
    """The insider's forgery: recompute every digest with the published unkeyed formula."""
    rows = a.sql("SELECT * FROM audit_events ORDER BY seq")
    prev = GENESIS
    for r in rows:
        at = r.at if isinstance(r.at, datetime) else datetime.fromisoformat(str(r.at))
        at = at if at.tzinfo else at.replace(tzinfo=UTC)
        payload = json.loads(r.payload_json)
        digest = event_hash(r.seq, at, r.kind, r.actor, r.workflow, r.subject, payload, prev)
        a.sql(
            "UPDATE audit_events SET prev_hash = :p, hash = :h"
            + (", key_id = NULL" if strip_keys else "")
            + " WHERE seq = :s",
            p=prev,
            h=digest,
            s=r.seq,
        )
        prev = digest
    a.sql("UPDATE audit_head SET hash = :h", h=prev)


def test_the_loop_verifies_and_states_its_head(audited: Audited) -> None:
    a = audited
    head = a.rg("audit", "head")
    assert head.returncode == 0
    seq, digest = head.stdout.strip().split(":")
    as_json = a.ok("audit", "head")
    assert as_json["head"] == head.stdout.strip() and as_json["key_id"].startswith("k")
    out = a.intact()
    assert f"chain verified to head {seq}:{digest}" in out
    verified = a.ok("audit", "verify")
    assert verified["ok"] and verified["head"] == {"seq": int(seq), "digest": digest}
    assert verified["key_ids"] == [as_json["key_id"]] and verified["unkeyed_events"] == 0
    assert a.ok("audit", "verify", "--against", head.stdout.strip())["ok"]


@pytest.mark.parametrize("strip_keys", [False, True], ids=["keyed", "unkeyed"])
def test_an_insider_rewrite_with_recomputed_digests_is_caught(
    audited: Audited, strip_keys: bool
) -> None:
    a = audited
    a.sql("UPDATE audit_events SET payload_json = replace(payload_json, 'honest', 'sneaky')")
    plain_rehash(a, strip_keys=strip_keys)
    err = a.broken()
    if strip_keys:
        assert "are not signed with an audit key and no signed event anchors them" in err
    else:
        assert "audit log broken at event 1: hash mismatch" in err
        assert "re-signed without the key" in err


def test_truncation_is_caught_against_an_exported_head(audited: Audited) -> None:
    a = audited
    assert a.rg("eval", a.v2, "--suite", "suite.yaml").returncode == 0  # eval.completed
    exported = a.rg("audit", "head").stdout.strip()
    seq = int(exported.split(":")[0])
    # the insider removes the newest event (the exported head) and moves the head record
    # back, so the shorter chain is consistent on its own
    a.sql("DELETE FROM audit_events WHERE seq >= :s", s=seq)
    (prev,) = a.sql("SELECT hash FROM audit_events WHERE seq = :s", s=seq - 1)
    a.sql("UPDATE audit_head SET seq = :s, hash = :h", s=seq - 1, h=prev.hash)
    a.intact()  # on its own a shorter log cannot be told from a younger one
    err = a.broken("--against", exported)
    assert f"at event {seq}: the exported head {seq} is gone" in err
    assert "truncated or wiped" in err


def test_a_rewrite_before_the_exported_head_is_caught(audited: Audited) -> None:
    a = audited
    exported = a.rg("audit", "head").stdout.strip()
    bad = a.rg("audit", "verify", "--against", "7:nothex")
    assert bad.returncode == 2 and "field '--against': expected SEQ:DIGEST" in bad.stderr
    a.sql("UPDATE audit_head SET hash = :h", h="f" * 64)
    err = a.broken("--against", exported)
    assert "head mismatch" in err


def test_a_wiped_log_is_caught(audited: Audited) -> None:
    a = audited
    a.sql("DELETE FROM audit_events")
    a.sql("DELETE FROM audit_head")
    err = a.broken()
    assert "router@production runs" in err and "the log was wiped" in err
    # the next write starts a new chain; the tables still give the wipe away
    assert a.rg("approve", a.v1, "--env", "staging", "--as", "carol").returncode == 0
    assert "the log was wiped" in a.broken()


def test_production_moved_by_sql_is_caught(audited: Audited) -> None:
    a = audited
    a.sql("UPDATE environments SET version_id = :v WHERE env = 'production'", v=a.v2)
    assert a.rg("resolve", "router", "--env", "production").stdout.strip() == a.v2
    err = a.broken()
    assert f"router@production runs {a.v2[:12]}, but the audit log last moved it to" in err
    assert a.v1[:12] in err and "moved outside releasegate" in err
    a.sql("UPDATE environments SET version_id = :v WHERE env = 'production'", v=a.v1)
    a.intact()
    a.sql(
        "INSERT INTO approvals (version_id, env, approver, workflow, role, note, created_at)"
        " VALUES (:v, 'production', 'dana', 'router', 'business', '', CURRENT_TIMESTAMP)",
        v=a.v2,
    )
    err = a.broken()
    assert f"dana's approval of {a.v2[:12]} for production (as business) is not in the" in err
    a.sql("DELETE FROM approvals WHERE approver = 'dana'")
    a.intact()
    a.sql("UPDATE approvals SET role = 'approver,business' WHERE approver = 'bob'")
    err = a.broken()
    assert f"bob's approval of {a.v1[:12]} for production (as approver,business) is not" in err


def test_a_forged_gate_decision_used_to_promote_is_caught(audited: Audited) -> None:
    a = audited
    a.sql(
        "INSERT INTO gate_decisions SELECT 'forged0000000000', CAST(:v2 AS VARCHAR(64)),"
        " workflow, env, suite_id, policy_id, version_id, verdict, checks_passed, change_class,"
        " report_json, created_at FROM gate_decisions WHERE version_id = :v1"
        " AND env = 'production'",
        v1=a.v1,
        v2=a.v2,
    )
    promoted = a.rg("promote", a.v2, "--env", "production")
    # promote asks the decision's own signed audit event, so the forged row moves nothing
    assert promoted.returncode == 1, promoted.stderr
    assert promoted.stderr.startswith(
        f"refused: gate decision forged0000000000 (pass for {a.v2[:12]} in production) "
        "is not in the audit log: it was written outside releasegate"
    ), promoted.stderr
    assert a.rg("resolve", "router", "--env", "production").stdout.strip() == a.v1
    err = a.broken()
    assert f"gate decision forged0000000000 (pass for {a.v2[:12]} in production)" in err
    assert "is not in the audit log: it was written outside releasegate" in err


def test_a_history_row_added_by_sql_is_caught(audited: Audited) -> None:
    """A fake past promotion would make `rollback --to` accept a version never gated there."""
    a = audited
    a.sql(
        "INSERT INTO env_history (workflow, env, version_id, previous_id, action, actor,"
        " reason, created_at) VALUES ('router', 'production', :v2, NULL, 'promote', 'mallory',"
        " '', CURRENT_TIMESTAMP)",
        v2=a.v2,
    )
    err = a.broken()
    assert "the history of router@production" in err and "edited outside releasegate" in err


def test_deleting_the_head_row_is_detected_and_the_next_write_says_so(audited: Audited) -> None:
    a = audited
    exported = a.rg("audit", "head").stdout.strip()
    seq = exported.split(":")[0]
    a.sql("DELETE FROM audit_head")
    assert "the head record is missing" in a.broken()
    write = a.rg("approve", a.v1, "--env", "staging", "--as", "carol")
    assert write.returncode == 1
    assert write.stderr.startswith(
        f"refused: the audit log's head record is missing, though events up to {seq} exist: "
        "it was deleted outside releasegate; nothing was written"
    ), write.stderr
    assert "another writer" not in write.stderr
    head = a.rg("audit", "head")
    assert head.returncode == 1 and "head record is missing" in head.stderr
    restored = a.rg("audit", "restore-head", exported)
    assert restored.returncode == 0, restored.stderr
    assert f"head restored: {exported}" in restored.stdout
    a.intact()
    assert a.rg("approve", a.v1, "--env", "staging", "--as", "carol").returncode == 0
    a.intact()


def test_a_corrupt_payload_is_exit_1_naming_the_event(audited: Audited) -> None:
    a = audited
    a.sql("UPDATE audit_events SET payload_json = '{not json' WHERE seq = 2")
    err = a.broken()
    assert "audit log broken at event 2: its payload is not valid JSON" in err
    log = a.rg("audit", "log")
    assert log.returncode == 1
    assert log.stderr.startswith("refused: audit event 2 cannot be read: its payload is not valid")
    assert "Traceback" not in log.stderr + err


def test_key_rotation_then_verify_passes(audited: Audited) -> None:
    a = audited
    before = a.ok("audit", "head")["key_id"]
    rotated = a.ok("audit", "rotate-key")
    assert rotated["previous_key_id"] == before and rotated["key_id"] != before
    assert a.rg("approve", a.v1, "--env", "staging", "--as", "carol").returncode == 0
    assert a.ok("audit", "head")["key_id"] == rotated["key_id"]
    verified = a.ok("audit", "verify")
    assert verified["ok"] and verified["key_ids"] == [before, rotated["key_id"]]
    key_file = a.root / ".releasegate" / "audit.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len([ln for ln in key_file.read_text().splitlines() if not ln.startswith("#")]) == 2
    # verifying needs every key: without the old one the events it signed cannot be checked
    newest = key_file.read_text().splitlines()[-1]
    only_new = a.root / "new-only.key"
    only_new.write_text(newest + "\n")
    result = a.rg("audit", "verify", RELEASEGATE_AUDIT_KEY_FILE=str(only_new))
    assert result.returncode == 1
    assert f"signed with audit key {before}, which is not among the keys here" in result.stderr
    # a key the chain never rotated to cannot sign: the writer refuses, naming the chain's key
    stranger = a.root / "stranger.key"
    stranger.write_text("a" * 64 + "\n")
    refused = a.rg(
        "approve", a.v1, "--env", "staging", "--as", "bob", RELEASEGATE_AUDIT_KEY_FILE=str(stranger)
    )
    assert refused.returncode == 2
    assert f"the audit log is signed with key {rotated['key_id']}" in refused.stderr


def test_init_creates_a_private_key_and_the_environment_can_hold_it(tmp_path: Path) -> None:
    init = rg(tmp_path, "init", "--json")
    assert init.returncode == 0, init.stderr
    key_file = tmp_path / ".releasegate" / "audit.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert json.loads(init.stdout)["audit_key"] == str(key_file)
    secret = "s3cret-" + "x" * 40
    env = {"RELEASEGATE_AUDIT_KEY": secret}
    project = Project(root=tmp_path)
    assert rg(tmp_path, "register", str(project.workflow("v1")), env=env).returncode == 0
    assert rg(tmp_path, "audit", "verify", env=env).returncode == 0
    result = rg(tmp_path, "audit", "verify")  # the file's key did not sign that event
    assert result.returncode == 1 and "which is not among the keys here" in result.stderr
    short = rg(tmp_path, "audit", "verify", env={"RELEASEGATE_AUDIT_KEY": "short"})
    assert short.returncode == 2
    assert "RELEASEGATE_AUDIT_KEY:1: an audit key must be at least 32 characters" in short.stderr


@pytest.fixture
def old_store(dialect: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    if dialect == "sqlite":
        (tmp_path / ".releasegate").mkdir()
        yield f"sqlite:///{tmp_path / '.releasegate' / 'releasegate.db'}"
        return
    request.getfixturevalue("pg_template")  # skips (or fails under CI) without PostgreSQL
    name = pg_database(None)
    yield f"{PG_ADMIN}/{name}"
    drop_pg_database(name)


def test_an_unkeyed_chain_from_an_older_release_stays_verifiable(
    old_store: str, tmp_path: Path
) -> None:
    """A store from before keying (0004) upgrades; the first keyed event anchors its chain."""
    engine = sa.create_engine(old_store, poolclass=sa.pool.NullPool)
    upgrade(engine, "0004")
    prev = None
    with engine.begin() as conn:
        for seq in (1, 2, 3):
            prev = chain_event(
                prev,
                seq=seq,
                at=datetime(2026, 1, seq, tzinfo=UTC),
                kind="policy.changed",
                actor="ana",
                workflow="router",
                subject=f"p{seq}",
                payload={"env": "staging", "n": seq},
            )
            conn.execute(sa.insert(tables.audit_events).values(**legacy_row(prev)))
        assert prev is not None
        conn.execute(sa.update(tables.audit_head).values(seq=3, hash=prev.hash))
    engine.dispose()
    env = {} if old_store.startswith("sqlite") else {"RELEASEGATE_DATABASE_URL": old_store}
    if env:
        refused = rg(tmp_path, "audit", "verify", env=env)
        assert refused.returncode == 2 and "releasegate db upgrade" in refused.stderr
        assert rg(tmp_path, "db", "upgrade", env=env).returncode == 0
    verified = json.loads(rg(tmp_path, "audit", "verify", "--json", env=env).stdout)
    assert verified["ok"], verified
    assert verified["unkeyed_events"] == 3 and verified["events"] == 4  # 4: the anchor
    log = json.loads(rg(tmp_path, "audit", "log", "--json", env=env).stdout)
    assert log[-1]["kind"] == "audit.keyed"
    assert log[-1]["payload"] == {"unkeyed_events": 3, "unkeyed_head": prev.hash}
    # an old event still cannot be edited, and an unkeyed event cannot be added after the anchor
    a = Audited(Project(root=tmp_path), old_store, env)
    a.sql("UPDATE audit_events SET payload_json = replace(payload_json, '2}', '9}') WHERE seq = 2")
    assert "at event 2: hash mismatch" in a.broken()
    a.sql("UPDATE audit_events SET payload_json = replace(payload_json, '9}', '2}') WHERE seq = 2")
    a.intact()
    [anchor] = a.sql("SELECT hash FROM audit_events WHERE seq = 4")
    forged = chain_event(
        dataclasses.replace(prev, seq=4, hash=anchor.hash),
        seq=5,
        at=datetime(2026, 2, 1, tzinfo=UTC),
        kind="env.promoted",
        actor="mallory",
        workflow="router",
        subject="f" * 64,
        payload={"env": "production"},
    )
    engine = sa.create_engine(old_store, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.execute(sa.insert(tables.audit_events).values(**legacy_row(forged)))
        conn.execute(sa.update(tables.audit_head).values(seq=5, hash=forged.hash))
    engine.dispose()
    assert "at event 5: not signed with the audit key, though the events before it" in a.broken()


def legacy_row(e: AuditEvent) -> dict[str, Any]:
    """An event as the unkeyed releases stored it (no key_id column yet)."""
    return {
        "seq": e.seq,
        "at": e.at,
        "kind": e.kind,
        "actor": e.actor,
        "workflow": e.workflow,
        "subject": e.subject,
        "payload_json": canonical_json(e.payload),
        "prev_hash": e.prev_hash,
        "hash": e.hash,
    }
