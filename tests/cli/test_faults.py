"""Storage faults through the real CLI: one line naming the cause and the store, exit 2.

A read-only store is a read-only bind mount and a full disk is a small tmpfs, both in a
private mount namespace (``unshare -m``; the tests run as root, so ``chmod`` would not
stop a write). A locked store is another process holding SQLite's write lock; an
unreachable PostgreSQL is a closed port, a blackholed one a loopback socket that accepts
and never answers.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import PG_ADMIN, drop_pg_database, pg_database
from tests.helpers import REPO, Project, ok_json, rg

needs_namespaces = pytest.mark.skipif(
    shutil.which("unshare") is None or os.geteuid() != 0,
    reason="needs root and unshare for a private mount namespace",
)


def one_line_error(result: subprocess.CompletedProcess[str], says: str) -> None:
    """Exit 2, no traceback, the first line of stderr is the answer and says ``says``
    (``resolve`` words it as why it has no last known version to serve)."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    first = result.stderr.splitlines()[0]
    assert first.startswith("error: ") and says in first, result.stderr


def in_namespace(
    setup: str, cwd: Path, commands: list[list[str]], out: Path
) -> list[subprocess.CompletedProcess[str]]:
    """Run ``setup`` (mounts) then each releasegate command in one private mount namespace."""
    out.mkdir(parents=True, exist_ok=True)
    lines = ["set -e", setup, "set +e", f"cd {shlex.quote(str(cwd))}"]
    for i, args in enumerate(commands):
        cmd = shlex.join([sys.executable, "-m", "releasegate", *args])
        lines.append(f"{cmd} >{out}/{i}.out 2>{out}/{i}.err; echo $? >{out}/{i}.rc")
    env = {**os.environ, "PYTHONPATH": str(REPO), "RELEASEGATE_ACTOR": "alice"}
    env["COLUMNS"] = "200"
    env.pop("RELEASEGATE_DATABASE_URL", None)
    done = subprocess.run(
        ["unshare", "-m", "sh", "-c", "\n".join(lines)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    return [
        subprocess.CompletedProcess(
            args,
            int((out / f"{i}.rc").read_text()),
            (out / f"{i}.out").read_text(),
            (out / f"{i}.err").read_text(),
        )
        for i, args in enumerate(commands)
    ]


def every_command(vid: str) -> list[list[str]]:
    return [
        ["init"],
        ["versions", "router"],
        ["register", "v2.yaml"],
        ["eval", vid[:10], "--suite", "suite.yaml", "--no-cache"],
        ["gate", vid[:10], "--env", "production"],
        ["approve", vid[:10], "--env", "production", "--as", "bob"],
        ["promote", vid[:10], "--env", "production"],
        ["rollback", "router", "--env", "staging"],
        ["runs", "import", "runs.jsonl"],
        ["audit", "verify"],
        ["resolve", "router", "--env", "staging"],
    ]


@needs_namespaces
def test_read_only_store_is_one_line_for_every_command(
    shipped: tuple[Project, str], tmp_path: Path
) -> None:
    project, vid = shipped
    d = project.root
    before = (d / ".releasegate" / "releasegate.db").read_bytes()
    setup = f"mount --bind {d} {d} && mount -o remount,ro,bind {d}"
    results = in_namespace(setup, d, every_command(vid), tmp_path / "out")
    for result in results:
        assert "Traceback" not in result.stderr, (result.args, result.stderr)
        assert result.returncode == 2, (result.args, result.stderr)
        first = result.stderr.splitlines()[0]
        assert first.startswith("error: "), first
        assert "store is read-only: cannot write to" in first or "cannot write" in first, first
        assert "read-only" in first, first
    assert (d / ".releasegate" / "releasegate.db").read_bytes() == before


@needs_namespaces
def test_full_disk_is_one_line_and_nothing_half_written(
    shipped: tuple[Project, str], tmp_path: Path
) -> None:
    project, vid = shipped
    d = project.root
    small = tmp_path / "small"
    small.mkdir()
    store = d / ".releasegate"
    # the store moves onto a 4 MB tmpfs that a filler file then fills to the last block
    setup = (
        f"mount -t tmpfs -o size=4m tmpfs {small} && cp -a {store}/. {small}/ && "
        f"mount --bind {small} {store} && "
        f"(dd if=/dev/zero of={small}/filler bs=4k 2>/dev/null || true)"
    )
    results = in_namespace(setup, d, every_command(vid), tmp_path / "out")
    for result in results:
        assert "Traceback" not in result.stderr, (result.args, result.stderr)
        assert result.returncode == 2, (result.args, result.stderr)
        first = result.stderr.splitlines()[0]
        assert first.startswith("error: "), first
        assert "store is full: no space left" in first or "cannot write" in first, first
        assert "full" in first or "no space" in first, first
    verified = ok_json(rg(d, "audit", "verify", "--json"))  # the real store, untouched
    assert verified["ok"]


@pytest.fixture
def write_lock(tmp_path: Path) -> Iterator[Path]:
    """Another process holding the write lock of the store at ``tmp_path``/proj, until the end."""
    db = tmp_path / "proj" / ".releasegate" / "releasegate.db"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys\n"
            f"c = sqlite3.connect({str(db)!r}, isolation_level=None)\n"
            "c.execute('BEGIN IMMEDIATE')\n"
            "print('locked', flush=True)\n"
            "sys.stdin.read()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    yield db
    assert holder.stdin is not None
    holder.stdin.close()
    holder.wait(timeout=30)
    holder.stdout.close()


def test_locked_store_waits_its_lock_timeout_then_says_so(
    shipped: tuple[Project, str], write_lock: Path
) -> None:
    project, vid = shipped
    d = project.root
    short = {"RELEASEGATE_LOCK_TIMEOUT": "0.2"}
    for args in (
        ["register", "v2.yaml"],
        ["promote", vid[:10], "--env", "production"],
        ["rollback", "router", "--env", "staging"],
        ["runs", "import", "runs.jsonl"],
    ):
        result = rg(d, *args, env=short)
        one_line_error(result, "store locked: another process held the write lock")
        assert str(write_lock) in result.stderr and "RELEASEGATE_LOCK_TIMEOUT" in result.stderr
    reader = rg(d, "resolve", "router", "--env", "staging", env=short)
    assert reader.returncode == 0 and reader.stdout.strip() == vid  # readers never block


def test_a_locked_or_unreadable_store_is_never_migrated(tmp_path: Path) -> None:
    home = tmp_path / ".releasegate"
    home.mkdir()
    db = home / "releasegate.db"
    # somebody else's database, locked exclusively (rollback journal: readers block too)
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("CREATE TABLE t (a)")
    conn.execute("BEGIN EXCLUSIVE")
    conn.execute("INSERT INTO t VALUES (1)")
    try:
        locked = rg(tmp_path, "versions", "router", env={"RELEASEGATE_LOCK_TIMEOUT": "0.2"})
        one_line_error(locked, "store locked")
    finally:
        conn.rollback()
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    conn.close()
    assert tables == {"t"}  # no alembic_version, no releasegate tables

    foreign = rg(tmp_path, "init")  # unlocked now, and still somebody else's database
    one_line_error(foreign, "store is unreadable")
    assert "tables of its own (t)" in foreign.stderr

    Project(root=tmp_path).workflow("v1")
    db.write_bytes(b"not a database, but a text file someone saved here\n" * 100)
    before = db.read_bytes()
    for args in (["versions", "router"], ["init"], ["register", "v1.yaml"]):
        unreadable = rg(tmp_path, *args)
        one_line_error(unreadable, "store is unreadable")
        assert str(db) in unreadable.stderr
    assert db.read_bytes() == before


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_postgresql_names_the_store_with_its_password_masked(
    tmp_path: Path,
) -> None:
    url = f"postgresql://releasegate:s3cret-pw@127.0.0.1:{closed_port()}/releasegate"
    for args in (["versions", "router"], ["init"], ["resolve", "router", "--env", "prod"]):
        result = rg(tmp_path, *args, env={"RELEASEGATE_DATABASE_URL": url})
        one_line_error(result, "store unreachable: postgresql+psycopg://releasegate:***@127")
        assert "s3cret-pw" not in result.stderr + result.stdout
        assert "Connection refused" in result.stderr


@pytest.fixture
def blackhole() -> Iterator[int]:
    """A loopback port that accepts connections and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(server.getsockname()[1])
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def test_blackholed_postgresql_hits_the_connect_timeout(tmp_path: Path, blackhole: int) -> None:
    url = f"postgres://postgres@127.0.0.1:{blackhole}/test"
    result = rg(
        tmp_path,
        "versions",
        "router",
        env={"RELEASEGATE_DATABASE_URL": url, "RELEASEGATE_CONNECT_TIMEOUT": "1"},
        timeout=60,  # without a connect timeout this would hang far past it
    )
    one_line_error(result, "store unreachable: no answer within the connect timeout")
    assert f"127.0.0.1:{blackhole}" in result.stderr
    assert "RELEASEGATE_CONNECT_TIMEOUT" in result.stderr
    in_url = rg(
        tmp_path, "versions", "router", env={"RELEASEGATE_DATABASE_URL": f"{url}?connect_timeout=1"}
    )
    one_line_error(in_url, "store unreachable: no answer within the connect timeout")


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("releasegate", "RELEASEGATE_DATABASE_URL is not a database URL: 'releasegate'"),
        ("localhost:5432/db", "RELEASEGATE_DATABASE_URL is not a database URL"),
        ("mysql://me@db/rg", "RELEASEGATE_DATABASE_URL: releasegate stores in PostgreSQL or"),
        ("sqlite+aiosqlite:///x.db", "RELEASEGATE_DATABASE_URL: unknown SQLite driver"),
        ("postgresql://u:pw@h/db?connect_timeout=soon", "the URL parameter connect_timeout"),
    ],
)
def test_malformed_database_url_is_one_message_with_a_hint(
    tmp_path: Path, url: str, says: str
) -> None:
    result = rg(tmp_path, "versions", "router", env={"RELEASEGATE_DATABASE_URL": url})
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith(f"error: {says}"), result.stderr
    assert "hint:" in result.stderr


def test_malformed_timeout_in_the_environment(tmp_path: Path) -> None:
    result = rg(tmp_path, "init", env={"RELEASEGATE_LOCK_TIMEOUT": "forever"})
    one_line_error(result, "RELEASEGATE_LOCK_TIMEOUT must be a positive number of seconds")


@pytest.fixture
def pg_url(pg_template: str) -> Iterator[str]:
    name = pg_database(pg_template)
    yield f"{PG_ADMIN}/{name}"
    drop_pg_database(name)


@pytest.mark.parametrize("scheme", ["postgres", "postgresql"])
def test_postgres_urls_as_users_write_them(tmp_path: Path, pg_url: str, scheme: str) -> None:
    url = sa.make_url(pg_url).set(drivername=scheme).set(password="pw").render_as_string(False)
    ready = ok_json(rg(tmp_path, "init", "--json", env={"RELEASEGATE_DATABASE_URL": url}))
    assert ready["database"].startswith("postgresql+psycopg://postgres:***@127.0.0.1")


def test_postgresql_lock_timeout_is_an_answer(
    shipped: tuple[Project, str], pg_url: str, tmp_path: Path
) -> None:
    project, _ = shipped
    d = project.root
    env = {"RELEASEGATE_DATABASE_URL": pg_url, "RELEASEGATE_LOCK_TIMEOUT": "0.3"}
    engine = sa.create_engine(pg_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("LOCK TABLE audit_head IN ACCESS EXCLUSIVE MODE"))
            result = rg(d, "register", "v2.yaml", env=env)
            conn.rollback()
    finally:
        engine.dispose()
    one_line_error(result, "store locked: another transaction held a lock past the lock")
    assert f"({pg_url})" in result.stderr.splitlines()[0]  # names the store it waited on
    assert rg(d, "register", "v2.yaml", env=env).returncode == 0  # and fine once it is free
