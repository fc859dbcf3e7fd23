"""Back up, wipe, restore, verify: on SQLite through ``releasegate db backup|restore``, on
PostgreSQL through pg_dump and pg_restore (docs/backup.md). After a restore the audit log
verifies against the head exported before, resolve answers what it answered, and the
version's prompt file (a blob, in the database) comes back; without the audit key the
restore is caught by ``audit verify`` with a message that says so."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from releasegate.store.engine import SCHEMA_HEAD
from tests.conftest import _admin
from tests.helpers import Project, ok_json, rg

PROMPT = "Route the customer's message to one of: fraud, card_lost, complaint, transfer.\n"


def _populate(root: Path, env: dict[str, str]) -> dict[str, Any]:
    """A store built through the loop: v1 with a prompt file registered, evaluated, gated,
    promoted to staging. What a restore must give back."""
    project = Project(root=root)
    path = project.workflow("v1")
    doc = yaml.safe_load(path.read_text())
    (root / "system.txt").write_text(PROMPT)
    doc["prompts"]["system"] = {"file": "system.txt"}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    vid = ok_json(rg(root, "register", "v1.yaml", "--json", env=env))["version_id"]
    project.suite()
    for argv in (("eval", vid, "--suite", "suite.yaml"), ("gate", vid, "--env", "staging")):
        done = rg(root, *argv, env=env)
        assert done.returncode == 0, done.stdout + done.stderr
    assert rg(root, "promote", vid, "--env", "staging", env=env).returncode == 0
    return _state(root, env)


def _state(root: Path, env: dict[str, str]) -> dict[str, Any]:
    return {
        "resolve": ok_json(rg(root, "resolve", "router", "--env", "staging", "--json", env=env)),
        "head": ok_json(rg(root, "audit", "head", "--json", env=env))["head"],
        "prompt": rg(root, "db", "blob", hashlib.sha256(PROMPT.encode()).hexdigest(), env=env),
    }


def _verified(root: Path, env: dict[str, str], before: dict[str, Any]) -> None:
    verify = rg(root, "audit", "verify", "--against", before["head"], env=env)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert verify.stdout.startswith("audit log intact: ")
    after = _state(root, env)
    assert after["resolve"] == before["resolve"]
    assert after["head"] == before["head"]
    assert after["prompt"].stdout == PROMPT


def _no_key(root: Path, env: dict[str, str]) -> None:
    verify = rg(root, "audit", "verify", env=env)
    assert verify.returncode == 1
    said = " ".join(verify.stderr.split())
    assert said.startswith("audit log broken at event 1: signed with audit key k"), said
    key = root / ".releasegate" / "audit.key"
    assert said.endswith(f"which is not among the keys here (no audit key: {key})"), said


def test_sqlite_backup_wipe_restore_verifies(tmp_path: Path) -> None:
    root, keep = tmp_path / "app", tmp_path / "backups"
    root.mkdir()
    keep.mkdir()
    before = _populate(root, {})
    backup = ok_json(rg(root, "db", "backup", str(keep / "rg.db"), "--json"))
    assert (backup["schema"], backup["blobs"]) == (SCHEMA_HEAD, 1)
    assert backup["audit_key"] == str(root / ".releasegate" / "audit.key")
    shutil.copy(root / ".releasegate" / "audit.key", keep / "audit.key")
    again = rg(root, "db", "backup", str(keep / "rg.db"))
    assert again.returncode == 2
    assert f"error: {keep / 'rg.db'} already exists; a backup never overwrites a file" in (
        again.stderr.replace("\n", "")
    )

    shutil.rmtree(root / ".releasegate")  # wiped: database, key, everything
    restored = rg(root, "db", "restore", str(keep / "rg.db"))
    assert restored.returncode == 0, restored.stderr
    _no_key(root, {})  # restored without its key: caught, and said why
    shutil.copy(keep / "audit.key", root / ".releasegate" / "audit.key")
    _verified(root, {}, before)

    refused = rg(root, "db", "restore", str(keep / "rg.db"))
    assert refused.returncode == 2
    assert "already holds data; restoring would replace it" in refused.stderr.replace("\n", "")
    assert rg(root, "db", "restore", str(keep / "rg.db"), "--replace").returncode == 0
    _verified(root, {}, before)


def test_sqlite_restore_refuses_a_file_that_is_not_a_backup(tmp_path: Path) -> None:
    (tmp_path / "notes.db").write_text("not a database, just notes\n" * 100)
    done = rg(tmp_path, "db", "restore", "notes.db")
    assert done.returncode == 2
    assert done.stderr.startswith(
        f"error: the backup {Path('notes.db')} is not a releasegate SQLite backup ("
    )
    assert not (tmp_path / ".releasegate").exists()  # nothing written


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def test_postgresql_dump_wipe_restore_verifies(
    pg_template: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    from tests.conftest import PG_ADMIN, drop_pg_database, pg_database

    if shutil.which("pg_dump") is None or shutil.which("pg_restore") is None:
        pytest.skip("pg_dump / pg_restore are not installed")
    name = pg_database(pg_template)
    request.addfinalizer(lambda: drop_pg_database(name))
    url = f"{PG_ADMIN}/{name}"
    env = {"RELEASEGATE_DATABASE_URL": url}
    root, keep = tmp_path / "app", tmp_path / "backups"
    root.mkdir()
    keep.mkdir()
    before = _populate(root, env)
    refused = rg(root, "db", "backup", str(keep / "rg.db"), env=env)
    assert refused.returncode == 2
    assert "hint: back up PostgreSQL with pg_dump -Fc" in refused.stderr
    dump = keep / "rg.dump"
    subprocess.run(["pg_dump", "-Fc", "-d", _libpq(url), "-f", str(dump)], check=True)
    shutil.copy(root / ".releasegate" / "audit.key", keep / "audit.key")

    drop_pg_database(name)  # wiped: the database and the project's key
    shutil.rmtree(root / ".releasegate")
    with _admin().connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    subprocess.run(
        ["pg_restore", "--no-owner", "-d", _libpq(url), str(dump)], check=True, capture_output=True
    )
    _no_key(root, env)
    (root / ".releasegate").mkdir()
    shutil.copy(keep / "audit.key", root / ".releasegate" / "audit.key")
    _verified(root, env, before)
    runs = json.loads(rg(root, "versions", "router", "--json", env=env).stdout)
    assert [v["version_id"] for v in runs] == [before["resolve"]["version_id"]]


def test_sqlite_backups_taken_while_a_writer_runs_are_each_consistent(tmp_path: Path) -> None:
    """``db backup`` does not stop writers: backups taken while another process registers
    versions (blobs, versions and audit events in each transaction) each restore to a
    store whose audit log verifies and whose every version has its prompt file."""
    import threading

    from releasegate.release.register import register
    from releasegate.store.engine import Store

    root, keep = tmp_path / "app", tmp_path / "backups"
    root.mkdir()
    keep.mkdir()
    _populate(root, {})
    store = Store.open(root)
    project = Project(root=root)
    stop = threading.Event()
    written: list[str] = []

    def writer() -> None:
        i = 0
        while not stop.is_set() and i < 200:
            i += 1
            (root / "system.txt").write_text(f"{PROMPT}variant {i}\n" + "x" * 50_000)
            doc = yaml.safe_load(project.workflow(f"w{i}", temperature=i / 1000).read_text())
            doc["prompts"]["system"] = {"file": "system.txt"}
            path = root / f"w{i}.yaml"
            path.write_text(yaml.safe_dump(doc, sort_keys=False))
            written.append(register(store, path, who="alice").version_id)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for n in range(3):
            done = rg(root, "db", "backup", str(keep / f"rg{n}.db"))
            assert done.returncode == 0, done.stderr
    finally:
        stop.set()
        thread.join()
        store.close()
    assert written  # the writer ran while the backups were taken
    for n in range(3):
        copy = tmp_path / f"restored{n}"
        (copy / ".releasegate").mkdir(parents=True)
        shutil.copy(root / ".releasegate" / "audit.key", copy / ".releasegate" / "audit.key")
        assert rg(copy, "db", "restore", str(keep / f"rg{n}.db")).returncode == 0
        verify = rg(copy, "audit", "verify")
        assert verify.returncode == 0, verify.stderr
        restored = Store.open(copy, create=False)
        try:
            with restored.read() as conn:
                manifests = conn.execute(sa.text("SELECT manifest_json FROM versions")).all()
            assert len(manifests) >= 1
            for (manifest,) in manifests:
                text = json.loads(manifest)["prompts"]["system"].encode()
                assert restored.blobs.get(hashlib.sha256(text).hexdigest()) == text
        finally:
            restored.close()
