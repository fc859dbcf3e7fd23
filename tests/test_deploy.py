"""The service recipes in deploy/: the Dockerfile, the Compose stack (PostgreSQL, an init
one-shot, two replicas, nginx), the systemd unit and the scripts the image runs.

Always: each file parses, names what the others name, and every ``releasegate serve`` in
them is a command line the CLI accepts; ``init.sh`` and ``entrypoint.sh`` run for real
(on PostgreSQL). With a usable Docker: the image builds and the stack answers /readyz
through the proxy (skipped, saying why, where Docker cannot run)."""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer.main
import yaml

from releasegate.cli.app import app
from releasegate.release.tokens import authenticate
from releasegate.server.run import Launch
from releasegate.store.engine import Location, Store
from tests.conftest import PG_ADMIN, drop_pg_database, pg_database
from tests.helpers import REPO

DEPLOY = REPO / "deploy"
SERVE = typer.main.get_command(app).commands["serve"]  # type: ignore[attr-defined]
REPLICAS = ("api-1", "api-2")


def serve_options(argv: list[str]) -> dict[str, Any]:
    """The options of a ``releasegate serve ...`` command line, as the CLI parses them
    (an unknown option or a bad value fails the test)."""
    assert Path(argv[0]).name == "releasegate", argv
    assert argv[1] == "serve", argv
    context = SERVE.make_context("serve", list(argv[2:]))
    params = dict(context.params)
    Launch(
        params["host"],
        params["port"],
        params["workers"],
        params["log_format"],
        params["log_level"],
        params["access_log"],
        params["graceful_timeout"],
        params["forwarded_allow_ips"],
    ).check()
    return params


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


def seconds(value: str) -> float:
    m = re.fullmatch(r"(\d+)(s|m)?", value)
    assert m, value
    return int(m.group(1)) * (60 if m.group(2) == "m" else 1)


def test_the_compose_stack_is_postgresql_an_init_two_replicas_and_a_proxy() -> None:
    services = compose()["services"]
    assert set(services) == {"db", "init", *REPLICAS, "proxy"}
    assert services["init"]["command"] == ["releasegate-init"]
    for name in REPLICAS:
        replica = services[name]
        options = serve_options(replica["command"])
        assert options["host"] == "0.0.0.0" and options["port"] == 8080
        assert options["log_format"] == "json"
        assert seconds(replica["stop_grace_period"]) > options["graceful_timeout"]
        assert replica["depends_on"] == {
            "db": {"condition": "service_healthy"},
            "init": {"condition": "service_completed_successfully"},
        }
        assert "ports" not in replica  # reached through the proxy only
        env = replica["environment"]
        assert env["RELEASEGATE_DATABASE_URL"].startswith("postgresql+psycopg://releasegate@db")
        assert "PGPASSWORD" not in env and env["PGPASSWORD_FILE"].startswith("/run/secrets/")
        assert "secrets:/var/lib/releasegate/secrets:ro" in replica["volumes"]
        assert replica["build"]["dockerfile"] == "deploy/Dockerfile"
    assert services["db"]["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/db_password"
    assert services["proxy"]["ports"] == ["127.0.0.1:8080:8080"]
    mounted = services["proxy"]["volumes"][0].split(":")[0]
    assert (DEPLOY / mounted).resolve() == DEPLOY / "nginx.conf"


def test_nginx_balances_over_both_replicas_without_sticky_sessions() -> None:
    conf = (DEPLOY / "nginx.conf").read_text()
    upstream = re.search(r"upstream releasegate \{(.*?)\}", conf, re.DOTALL)
    assert upstream, "no upstream block"
    servers = re.findall(r"^\s*server\s+([\w.-]+):(\d+)", upstream.group(1), re.MULTILINE)
    assert sorted(servers) == [(name, "8080") for name in REPLICAS]
    assert not re.search(r"\b(ip_hash|hash|sticky)\b", upstream.group(1))
    assert "proxy_pass http://releasegate;" in conf
    assert "X-Request-ID $rid" in conf
    body = re.search(r"client_max_body_size (\d+)m;", conf)
    assert body and int(body.group(1)) * 1024 * 1024 > 16 * 1024 * 1024  # the 413 is ours


def test_the_dockerfile_runs_serve_as_a_non_root_user_with_a_health_check() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    lines = [line.strip() for line in text.replace("\\\n", " ").splitlines()]
    instructions = [line for line in lines if line and not line.startswith("#")]
    assert instructions[0] == "FROM python:3.11-slim"
    assert "pip install '.[server,postgres]'" in text
    (user,) = [line.split()[1] for line in instructions if line.startswith("USER ")]
    assert re.fullmatch(r"[1-9]\d*:[1-9]\d*", user), user  # numeric: runAsNonRoot can check it
    (health,) = [line for line in instructions if line.startswith("HEALTHCHECK ")]
    assert "http://127.0.0.1:8080/healthz" in health
    for line in instructions:
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                if not source.startswith("--"):
                    assert (REPO / source).exists(), source
    (cmd,) = [line for line in instructions if line.startswith("CMD ")]
    options = serve_options(json.loads(cmd[4:]))
    assert options["port"] == 8080 and options["host"] == "0.0.0.0"
    (entry,) = [line for line in instructions if line.startswith("ENTRYPOINT ")]
    assert json.loads(entry[11:]) == ["releasegate-entrypoint"]


def test_every_volume_the_server_writes_is_a_directory_the_image_gives_its_user() -> None:
    """A named volume mounted where the image has no directory starts owned by root, and
    the server's user cannot write it (the ``data`` volume at ``.releasegate`` was, until
    the image made that directory: found by running the image)."""
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    made = {path for run in re.findall(r"mkdir -p ((?:/\S+ ?)+)", text) for path in run.split()}
    assert "chown -R releasegate:releasegate /var/lib/releasegate" in text
    services = compose()["services"]
    for name in ("init", *REPLICAS):
        for volume in services[name]["volumes"]:
            source, target = volume.split(":")[:2]
            if not source.startswith("."):  # a named volume, not a file of the repository
                assert target.startswith("/var/lib/releasegate/"), volume
                assert target in made, f"{name}: {target} is not made by the Dockerfile"


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(DEPLOY / "releasegate.service")
    return parser


def test_the_systemd_unit_serves_hardened_and_restarts_on_failure() -> None:
    service = unit()["Service"]
    assert service["Type"] == "exec"
    assert service["Restart"] == "on-failure"
    assert service["RestartPreventExitStatus"] == "2"  # bad input or an outdated schema
    assert service["User"] not in ("root", "0")
    assert service["EnvironmentFile"] == "/etc/releasegate/releasegate.env"
    for option, value in (
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("CapabilityBoundingSet", ""),
    ):
        assert service[option] == value, option
    options = serve_options(shlex.split(service["ExecStart"]))
    assert seconds(service["TimeoutStopSec"]) > options["graceful_timeout"]
    assert "RELEASEGATE_AUDIT_KEY_FILE=%d/audit.key" in service["Environment"]
    assert service["LoadCredential"].startswith("audit.key:")
    assert unit()["Install"]["WantedBy"] == "multi-user.target"


def test_systemd_itself_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here")
    here = Path(sys.executable).parent / "releasegate"
    text = (DEPLOY / "releasegate.service").read_text()
    path = tmp_path / "releasegate.service"
    path.write_text(text.replace("/opt/releasegate/bin/releasegate", str(here)))
    done = subprocess.run([analyze, "verify", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", done.stderr


def script_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELEASEGATE_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(REPO)
    env.update(extra)
    return env


def test_init_upgrades_the_database_and_makes_the_key_and_one_admin_token(
    tmp_path: Path, pg_template: str
) -> None:
    name = pg_database(None)  # empty: init upgrades it from nothing
    url = f"{PG_ADMIN}/{name}"
    secrets = tmp_path / "secrets"
    env = script_env(
        tmp_path,
        RELEASEGATE_DATABASE_URL=url,
        RELEASEGATE_DIR=str(tmp_path),
        RELEASEGATE_AUDIT_KEY_FILE=str(secrets / "audit.key"),
        ADMIN_TOKEN_FILE=str(secrets / "admin.token"),
    )
    try:
        runs = [
            subprocess.run(["sh", str(DEPLOY / "init.sh")], env=env, capture_output=True, text=True)
            for _ in range(2)  # safe to run again: after an upgrade, on every deploy
        ]
        for done in runs:
            assert done.returncode == 0, done.stderr
        assert "created the admin token" in runs[0].stderr
        assert "(kept)" in runs[1].stderr
        token = (secrets / "admin.token").read_text().strip()
        for path in (secrets / "admin.token", secrets / "audit.key"):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        home = tmp_path / ".releasegate"
        store = Store.open(location=Location(url, home / "blobs", is_embedded=False, home=home))
        try:
            identity = authenticate(store, f"Bearer {token}")
        finally:
            store.close()
        assert (identity.name, identity.role.label) == ("admin", "admin")
    finally:
        drop_pg_database(name)


def test_the_entrypoint_reads_secrets_from_files(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("s3cret\n")
    (tmp_path / "url").write_text("postgresql://rg@db/rg")
    (tmp_path / "oidc").write_text("client-s3cret\n")
    env = script_env(
        tmp_path,
        PGPASSWORD_FILE=str(tmp_path / "pw"),
        RELEASEGATE_DATABASE_URL_FILE=str(tmp_path / "url"),
        RELEASEGATE_OIDC_CLIENT_SECRET_FILE=str(tmp_path / "oidc"),
    )
    done = subprocess.run(
        [
            "sh",
            str(DEPLOY / "entrypoint.sh"),
            "sh",
            "-c",
            'echo "$PGPASSWORD|$RELEASEGATE_DATABASE_URL|$RELEASEGATE_OIDC_CLIENT_SECRET"',
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert (done.returncode, done.stdout) == (
        0,
        "s3cret|postgresql://rg@db/rg|client-s3cret\n",
    )


# -- the stack itself, where Docker runs ---------------------------------------------------


def docker_unusable() -> str | None:
    """Why Docker cannot run the stack here, or None."""
    if shutil.which("docker") is None:
        return "docker is not installed"
    info = subprocess.run(["docker", "info"], capture_output=True, text=True)
    if info.returncode != 0:
        said = info.stderr.strip().splitlines() or ["docker info failed"]
        return f"the Docker daemon is not usable ({said[-1]})"
    plugin = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
    if plugin.returncode != 0:
        return "the docker compose plugin is not installed"
    return None


def test_the_stack_answers_readyz_through_the_proxy(tmp_path: Path) -> None:
    why = docker_unusable()
    if why:
        pytest.skip(why)
    secrets = DEPLOY / "secrets"
    secrets.mkdir(exist_ok=True)
    password = secrets / "db_password"
    if not password.exists():
        password.write_text(os.urandom(12).hex())
    project = f"rgtest{os.getpid()}"
    base = ["docker", "compose", "-p", project, "-f", str(DEPLOY / "compose.yaml")]
    try:
        up = subprocess.run(
            [*base, "up", "-d", "--build", "--wait"], capture_output=True, text=True
        )
        assert up.returncode == 0, up.stderr[-4000:]
        deadline = time.monotonic() + 120
        while True:
            try:
                r = httpx.get("http://127.0.0.1:8080/readyz", timeout=5)
                if r.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "no /readyz through the proxy"
            time.sleep(1)
        assert r.json()["schema"] == r.json()["expected"]
    finally:
        subprocess.run([*base, "down", "-v"], capture_output=True)
