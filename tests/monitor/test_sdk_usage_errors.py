"""SDK usage errors are typed InputErrors naming what to pass, in the application's own
process (a subprocess here), never a bare error a front would report as a bug (exit 70)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import yaml

from tests.helpers import REPO, Project, ok_json, rg

APP = textwrap.dedent(
    """
    from releasegate import Client, InputError
    from releasegate.cli._errors import exit_code  # what every front reports it as

    with Client(project_dir=".") as client:
        version = client.resolve("router", env="staging")
        for call in (lambda: client.run(version.version_id, input="hi"),
                     lambda: version.render("user", name="Ada")):
            try:
                call()
            except InputError as exc:
                print(type(exc).__name__, exit_code(exc), exc.field, "|", exc.message)
    """
)


def test_sdk_usage_errors_are_input_errors_that_say_what_to_pass(tmp_path: Path) -> None:
    project = Project(root=tmp_path)
    d = project.root
    path = project.workflow("v1")
    doc = yaml.safe_load(path.read_text())
    doc["prompts"]["templates"] = {"user": "Dear {name}, about {topic}:"}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    vid = ok_json(rg(d, "register", str(path), "--json"))["version_id"]
    project.suite()
    assert rg(d, "eval", vid, "--suite", "suite.yaml").returncode == 0
    assert rg(d, "gate", vid, "--env", "staging").returncode == 0
    assert rg(d, "promote", vid, "--env", "staging").returncode == 0
    (d / "app.py").write_text(APP)
    app = subprocess.run(
        [sys.executable, "app.py"],
        cwd=d,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert app.returncode == 0, app.stderr
    lines = app.stdout.splitlines()
    assert (
        lines[0] == "SDKUsageError 2 workflow | field 'workflow': "
        "a run of a version id needs workflow= and env="
    )
    assert lines[1].startswith(
        "SDKUsageError 2 prompts.templates.user | field 'prompts.templates.user'"
    )
    assert lines[1].endswith("needs topic")
