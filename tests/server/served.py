"""A real ``releasegate serve`` in a subprocess, on a free loopback port, over the embedded
store of a project directory: for what only a process shows (its logs on stdout and
stderr, its signals, its exit code, its workers)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.helpers import REPO


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    port: int
    out: Path
    err: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, then its exit code (killed, and the test failed, if it does not stop)."""
        self.process.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def wait(self, timeout: float = 60) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"serve did not exit within {timeout} s\n{self.logs()}") from None

    def logs(self) -> str:
        return self.out.read_text() + self.err.read_text()

    def records(self) -> list[dict[str, Any]]:
        """Every line of stdout and stderr as JSON (each must be one object)."""
        lines = [line for line in self.logs().splitlines() if line.strip()]
        return [json.loads(line) for line in lines]


def serve(cwd: Path, *args: str, env: dict[str, str] | None = None) -> Served:
    """``releasegate serve --port P ARGS`` in ``cwd``, once ``/healthz`` answers."""
    port = free_port()
    out, err = cwd / f"serve-{port}.out", cwd / f"serve-{port}.err"
    full = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    full.pop("RELEASEGATE_DATABASE_URL", None)
    full.update(env or {})
    with out.open("wb") as o, err.open("wb") as e:
        process = subprocess.Popen(
            [sys.executable, "-m", "releasegate", "serve", "--port", str(port), *args],
            cwd=cwd,
            env=full,
            stdout=o,
            stderr=e,
        )
    served = Served(process, port, out, err)
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise AssertionError(f"serve exited {process.returncode}\n{served.logs()}")
        try:
            if httpx.get(f"{served.url}/healthz", timeout=5).status_code == 200:
                return served
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            served.process.kill()
            raise AssertionError(f"serve did not answer /healthz\n{served.logs()}")
        time.sleep(0.1)
