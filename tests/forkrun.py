"""``python -m releasegate ARGS`` as a fresh process, without its second of start-up.

A test command used to start a new interpreter that imported Typer, Rich, SQLAlchemy,
numpy and the release services, then had Typer build its Click commands from the
annotations (about 1.5 s of a loaded 2-core CI machine, most of every CLI test). Here one
server process per test session does that once (``python -m tests.forkrun``); each
command is a child forked from it, with its own environment, working directory,
``sys.path``, stdin (``/dev/null``), stdout and stderr (files), exit status and module
state, so a test sees what the real command prints and returns, signals included.

What differs from a new interpreter: the modules of ``PRELOAD*`` are imported already (a
test of what a command imports must start its own: ``rg(..., fresh=True)``), and what
Python or those modules read only as they start (``STARTUP_ONLY``) is the server's: a
command whose environment differs there starts a new interpreter.
``RELEASEGATE_TEST_SUBPROCESS=1`` makes every command a new interpreter, to compare.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import importlib
import json
import locale
import os
import pkgutil
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

COMMAND = "releasegate"
REPO = Path(__file__).resolve().parents[1]
PRELOAD_PACKAGES = (  # flat packages: every module in them
    "releasegate.cli",
    "releasegate.release",
    "releasegate.store",
    "releasegate.monitor",
    "releasegate.reports",
    "releasegate.runner",
    "releasegate.runner.scorers",
)
PRELOAD = (
    "releasegate.providers.python_callable",
    "typer._adapters",  # Typer imports pydantic as a command runs
    "pydantic",
    "zoneinfo",
    "sqlalchemy.dialects.postgresql.psycopg",
    "httpx",
)
# read by the interpreter, or by a module above, only as it starts or is imported
STARTUP_ONLY = (
    "PYTHON",
    "LC_",
    "LANG",
    "TYPER_",
    "_TYPER_",
    "TERMINAL_WIDTH",
    "GITHUB_ACTIONS",
    "FORCE_COLOR",
    "PY_COLORS",
)


def _startup_env(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith(STARTUP_ONLY) and k != "PYTHONPATH"}


# -- the test's side ----------------------------------------------------------------------


class _Client:
    """The server process, started on first use and ended with the test session (it also
    ends when this process does: its stdin is a pipe from here)."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="rg-forkrun-")
        self.address = os.path.join(self.dir, "socket")
        self.log = os.path.join(self.dir, "server.log")
        self.env = {**os.environ, "PYTHONPATH": str(REPO)}
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.forkrun", self.address],
                cwd=REPO,
                env=self.env,
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=log,
            )
        assert self.process.stdout is None
        ready = self.process.stdin
        assert ready is not None
        deadline = 120.0
        while not os.path.exists(self.address + ".ready"):
            if self.process.poll() is not None or deadline <= 0:
                self.close()
                raise RuntimeError(f"the command server did not start:\n{self.logs()}")
            threading.Event().wait(0.05)
            deadline -= 0.05
        self.started_env = _startup_env(self.env)
        atexit.register(self.close)

    def logs(self) -> str:
        with open(self.log, encoding="utf-8", errors="replace") as f:
            return f.read()

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()  # the server's signal to stop
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        with contextlib.suppress(OSError):
            for name in os.listdir(self.dir):
                os.unlink(os.path.join(self.dir, name))
            os.rmdir(self.dir)

    def run(
        self, argv: list[str], cwd: Path, env: dict[str, str], timeout: float
    ) -> subprocess.CompletedProcess[str]:
        with tempfile.TemporaryDirectory(prefix="rg-cmd-") as tmp:
            out, err = os.path.join(tmp, "stdout"), os.path.join(tmp, "stderr")
            request = {
                "args": argv[3:],
                "cwd": os.path.abspath(cwd),
                "env": env,
                "out": out,
                "err": err,
            }
            with socket.socket(socket.AF_UNIX) as conn:
                conn.connect(self.address)
                conn.sendall(json.dumps(request).encode() + b"\n")
                replies = conn.makefile("r", encoding="utf-8")
                pid = int(replies.readline() or 0)
                if not pid:
                    raise RuntimeError(f"the command server failed:\n{self.logs()}")
                conn.settimeout(timeout)
                try:
                    code = int(replies.readline())
                except TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                    raise subprocess.TimeoutExpired(argv, timeout, _read(out), _read(err)) from None
            return subprocess.CompletedProcess(argv, code, _read(out), _read(err))


_CLIENT: _Client | None = None
_LOCK = threading.Lock()


def run(
    args: Sequence[str], *, cwd: Path, env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """``python -m releasegate ARGS`` in ``cwd`` with exactly ``env``, as
    ``subprocess.run(..., capture_output=True, text=True, timeout=timeout)`` returns it."""
    global _CLIENT
    argv = [sys.executable, "-m", COMMAND, *args]
    with _LOCK:
        if _CLIENT is None and os.environ.get("RELEASEGATE_TEST_SUBPROCESS") != "1":
            _CLIENT = _Client()
    if _CLIENT is None or _startup_env(env) != _CLIENT.started_env:
        return subprocess.run(
            argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
        )
    return _CLIENT.run(argv, cwd, env, timeout)


def _read(path: str) -> str:
    """As ``text=True`` decodes a pipe: the locale's encoding, universal newlines."""
    try:
        with open(path, encoding=locale.getpreferredencoding(False)) as f:
            return f.read()
    except FileNotFoundError:
        return ""


# -- the server's side --------------------------------------------------------------------


def _warm() -> None:
    """Import what the commands import, and build the Click command that Typer would
    build from the app's annotations on every run (0.6 s of each)."""
    for name in PRELOAD_PACKAGES:
        package = importlib.import_module(name)
        for info in pkgutil.iter_modules(package.__path__, f"{name}."):
            if not info.ispkg:
                importlib.import_module(info.name)
    for name in PRELOAD:
        importlib.import_module(name)
    import typer.main

    from releasegate.cli.app import app

    built, build = typer.main.get_command(app), typer.main.get_command

    def get_command(instance: typer.Typer) -> Any:
        return built if instance is app else build(instance)

    typer.main.get_command = get_command


def serve(address: str) -> dict[str, Any] | None:
    """Fork a child per connection until stdin closes. The child reads the request, forks
    the command (which returns from here with the request, to run it at the top level and
    end as an interpreter ends) and answers its pid, then its ``subprocess`` returncode."""
    _warm()
    gc.freeze()  # what the server holds: never traversed by a child's collections
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children reaped by the kernel
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(address)
    listener.listen(64)
    Path(address + ".ready").touch()
    while True:
        ready, _, _ = select.select([listener, sys.stdin], [], [])
        if sys.stdin in ready:
            return None
        conn, _ = listener.accept()
        if os.fork() != 0:
            conn.close()
            continue
        try:  # the child that answers
            listener.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            request: dict[str, Any] = json.loads(conn.makefile("rb").readline())
            pid = os.fork()
            if pid == 0:
                conn.close()
                return request  # the command
            conn.sendall(f"{pid}\n".encode())
            _, status = os.waitpid(pid, 0)
            conn.sendall(f"{os.waitstatus_to_exitcode(status)}\n".encode())
        except BaseException:
            traceback.print_exc()  # to the server's log; the test reads no pid or no code
        os._exit(0)


def command(
    args: list[str], cwd: str, env: dict[str, str], out: str, err: str, site_path: list[str]
) -> None:
    """Become ``python -m releasegate ARGS`` in ``cwd`` with ``env``, stdout to ``out``, stderr
    to ``err``. What it raises ends this process as it would end a new interpreter, and so
    does its return: threads joined, exit hooks run, objects finalized (SQLite closing
    its files, say)."""
    import runpy
    import time

    os.environ.clear()
    os.environ.update(env)
    time.tzset()
    os.chdir(cwd)
    pythonpath = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    sys.path[:] = [os.getcwd(), *pythonpath, *site_path]
    sys.stdout.flush()
    sys.stderr.flush()
    # the server's own streams (files, as a pipe is: not a terminal) now go to these
    for fd, name, mode in ((0, os.devnull, "rb"), (1, out, "wb"), (2, err, "wb")):
        with open(name, mode) as f:
            os.dup2(f.fileno(), fd)
    sys.argv = [COMMAND, *args]  # runpy puts the module's path first, as -m does
    runpy.run_module(COMMAND, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    pythonpath = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    site_path = sys.path[1 + len(pythonpath) :]  # sys.path but -m's directory and PYTHONPATH
    request = serve(sys.argv[1])
    if request is not None:
        command(**request, site_path=site_path)
