"""Interrupted evals: a killed eval is marked ``interrupted``, never left "running".

Ctrl-C already finishes an eval's row as interrupted; a ``kill -9``, an OOM kill or a
power cut cannot. So an eval records who runs it when it starts (the ``running``
marker in its summary: pid, host, the process's start time and the eval's), and any
later command that lists or resumes evals asks, for each eval still "running": is
that process alive on this host? A dead one is marked interrupted (its cached
outputs stay, so the next ``eval`` resumes where it stopped). An eval started on
another host is left alone: this machine cannot see its processes.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from releasegate.store.engine import Store
from releasegate.store.evals import EvalRepo
from releasegate.store.rows import now


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to tell a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2 :].startswith("Z")


def running_marker() -> dict[str, Any]:
    """Who runs an eval, stored in its summary while it runs."""
    pid = os.getpid()
    return {
        "pid": pid,
        "host": socket.gethostname(),
        "process_start": _process_start(pid),
        "started_at": now().isoformat(),
    }


def is_dead(marker: Mapping[str, Any]) -> bool:
    """True when the marker's process is gone from this host (or its pid was reused)."""
    pid, host = marker.get("pid"), marker.get("host")
    if not isinstance(pid, int) or host != socket.gethostname():
        return False  # another host's eval, or a row from before markers: cannot tell
    if pid == os.getpid():  # this process, or one before it that had its pid (a restart
        # in a container counts pids from 1 again): the start time tells which
        return marker.get("process_start") not in (None, _process_start(pid))
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, under another user
        pass
    if _is_zombie(pid):
        return True
    started = marker.get("process_start")
    return started is not None and _process_start(pid) not in (None, started)


def mark_interrupted(store: Store) -> list[str]:
    """Mark every eval whose process died on this host as interrupted; their ids."""
    with store.read() as conn:
        stale = [e for e in EvalRepo(conn).running() if is_dead(e.summary.get("running") or {})]
    if not stale:
        return []
    marked = []
    with store.write() as conn:
        for e in stale:
            summary = {
                **e.summary,
                "interrupted": {
                    "found_at": now().isoformat(),
                    "reason": "its process ended without finishing (killed or crashed)",
                },
            }
            if EvalRepo(conn).mark_interrupted(e.eval_id, summary):
                marked.append(e.eval_id)
    return marked
