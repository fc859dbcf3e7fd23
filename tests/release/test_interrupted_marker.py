"""An eval's ``running`` marker names its process by pid and start time: a server that
restarts in a container gets the same pid again (a fresh pid namespace counts from 1),
and an eval its previous process left "running" must read as interrupted, not run forever."""

from __future__ import annotations

from releasegate.release.interrupted import is_dead, running_marker


def test_this_process_is_alive() -> None:
    assert not is_dead(running_marker())


def test_the_same_pid_started_earlier_is_a_previous_process_that_died() -> None:
    before_restart = {**running_marker(), "process_start": "1"}
    assert is_dead(before_restart)
