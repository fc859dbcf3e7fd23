"""The tests' ``rg`` forks each command from a process that imported it already
(``tests/forkrun.py``): what a test sees must be what a new interpreter shows."""

from __future__ import annotations

import os

import pytest

from tests.helpers import Project, register, rg


@pytest.mark.parametrize(
    "argv",
    [
        ("--version",),
        ("bogus",),  # a usage error: exit 2, Click's usage line naming `python -m releasegate`
        ("show", "nope"),  # bad input: exit 2, one line
        ("versions", "router", "--json"),
        ("resolve", "router", "--env", "staging"),  # the fast path, before Typer loads
        ("gate", "--help"),
    ],
    ids=" ".join,
)
def test_a_forked_command_answers_as_a_new_interpreter(
    project: Project, argv: tuple[str, ...]
) -> None:
    d = project.root
    register(d, project.workflow("v1"))
    forked, fresh = rg(d, *argv), rg(d, *argv, fresh=True)
    assert (forked.returncode, forked.stdout, forked.stderr) == (
        fresh.returncode,
        fresh.stdout,
        fresh.stderr,
    )


def test_a_forked_command_has_its_own_environment_directory_and_path(
    project: Project,
) -> None:
    d = project.root
    (d / "where.py").write_text(
        "import os, sys\n"
        "def route(message, manifest):\n"
        "    with open('seen.txt', 'w') as f:\n"
        "        f.write(os.environ.get('RG_PROBE', '') + ' ' + os.getcwd())\n"
        "    return message.rsplit('#', 1)[-1].strip()\n"
    )
    project.fn = "where:route"  # importable only from the project directory, as for a user
    vid = register(d, project.workflow("v1"))
    project.suite(n=1)
    done = rg(d, "eval", vid[:10], "--suite", "suite.yaml", env={"RG_PROBE": "given"})
    assert done.returncode == 0, done.stderr
    assert (d / "seen.txt").read_text() == f"given {os.path.realpath(d)}"
    assert "RG_PROBE" not in os.environ
