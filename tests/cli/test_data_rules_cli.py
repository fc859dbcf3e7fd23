"""Data-handling rules on the command line: a warning at register, a refusing gate,
exit 2 for a bad rules file, and the texts a runs import kept out."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.helpers import Project, ok_json, rg


def test_rules_from_register_to_runs_import(tmp_path: Path) -> None:
    project = Project(root=tmp_path, meta={"data_class": "restricted"})
    d = project.root
    path = project.workflow("hosted")
    path.write_text(
        path.read_text().replace(
            f"provider: python\n  name: {project.fn}\n  revision: '1'",
            "provider: openai\n  name: gpt-4o-2024-08-06",
        )
    )
    checked = rg(d, "register", str(path), "--check")
    assert checked.returncode == 0 and "(nothing written)" in checked.stdout
    assert f"warning: {path}: restricted data would reach openai model" in checked.stderr
    done = rg(d, "register", str(path), "--json")
    hosted = ok_json(done)
    assert "warning: restricted data would reach openai model 'gpt-4o-2024-08-06' at " in (
        done.stderr
    )
    assert hosted["data_warnings"] and "local runtimes only" in hosted["data_warnings"][0]
    gated = rg(d, "gate", hosted["version_id"][:10], "--env", "staging")
    assert gated.returncode == 1
    assert "data-class" in gated.stdout and "local runtimes only" in gated.stdout

    (d / "data-rules.yaml").write_text("classes:\n  restricted:\n    runtimes: [gpu]\n")
    bad = rg(d, "register", str(project.workflow("v1")))
    assert bad.returncode == 2
    assert bad.stderr.startswith(
        "error: data-rules.yaml:3: field 'classes.restricted.runtimes[0]': unknown runtime 'gpu'"
    )
    assert len(ok_json(rg(d, "versions", "router", "--json"))) == 1  # nothing written

    (d / "data-rules.yaml").unlink()
    local = ok_json(rg(d, "register", str(project.workflow("v1")), "--json"))
    assert local["data_warnings"] == []
    now = time.time()
    runs = [
        {
            "run_id": f"r{i}",
            "workflow": "router",
            "version_id": local["version_id"],
            "env": "staging",
            "started_at": now - 100 + i,
            "latency_ms": 10,
            "status": "ok",
            "input": f"card {i} stolen",
            "output": "fraud",
        }
        for i in range(3)
    ]
    (d / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in runs))
    imported = rg(d, "runs", "import", "runs.jsonl")
    assert "3 runs stored without input and output" in imported.stdout
    shown = ok_json(rg(d, "runs", "show", "r1", "--json"))
    assert shown["input"] is None and shown["output"] is None
