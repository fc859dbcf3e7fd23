"""Data-handling rules on real stores: register warns, the gate refuses naming the rule,
a bad rules file writes nothing, and restricted run texts never reach the store (the SDK
and HTTP path, and a JSONL import parsed here or by worker processes)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from releasegate.errors import PolicyError, PromotionRefusedError
from releasegate.monitor.ingest import import_jsonl, ingest_dicts
from releasegate.release.evaluate import evaluate
from releasegate.release.gate import gate
from releasegate.release.promote import promote
from releasegate.release.register import register
from releasegate.store.decisions import DecisionRepo
from releasegate.store.engine import Store
from releasegate.store.runs import RunRepo
from releasegate.store.versions import VersionRepo
from tests.helpers import Project

HOSTED = {"provider": "openai", "name": "gpt-4o-2024-08-06"}


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(root=tmp_path / "wf")


@pytest.fixture(autouse=True)
def _project_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The project directory where data-rules.yaml is looked for: the test's own."""
    (tmp_path / "wf").mkdir()
    monkeypatch.setenv("RELEASEGATE_DIR", str(tmp_path))
    monkeypatch.delenv("RELEASEGATE_DATA_RULES", raising=False)


def hosted(project: Project, data_class: str) -> Path:
    """A workflow file whose model is OpenAI's hosted API (no base_url)."""
    path = project.workflow(f"hosted-{data_class}")
    text = path.read_text().replace(
        f"model:\n  provider: python\n  name: {project.fn}\n  revision: '1'\n",
        "model:\n  provider: openai\n  name: gpt-4o-2024-08-06\n",
    )
    assert "provider: openai" in text
    path.write_text(text + f"data_class: {data_class}\n")
    return path


def test_register_warns_and_the_gate_refuses_naming_the_rule(
    store: Store, project: Project
) -> None:
    done = register(store, hosted(project, "confidential"))
    assert done.is_new
    (warning,) = done.data_warnings
    assert warning == (
        "confidential data would reach openai model 'gpt-4o-2024-08-06' at api.openai.com: "
        "runtime hosted is not allowed by the data rule 'confidential: local runtimes only' "
        "(the default data rules)"
    )
    outcome = gate(store, done.version_id, "staging")
    assert outcome.verdict == "fail"
    assert outcome.decision.reasons[0] == "data-class: " + warning
    checks = {c["name"]: c for c in outcome.report.to_json()["checks"]}
    assert checks["data-class"]["status"] == "fail"
    with pytest.raises(PromotionRefusedError, match="did not pass"):
        promote(store, done.version_id, "staging")


def test_the_same_model_is_fine_for_internal_data(store: Store, project: Project) -> None:
    done = register(store, hosted(project, "internal"))
    assert done.data_warnings == ()
    checks = {c.name: c for c in gate(store, done.version_id, "staging").decision.checks}
    assert checks["data-class"].status.value == "ok"
    assert "internal data stays within the data rule 'internal: any runtime'" in (
        checks["data-class"].detail
    )


def test_a_local_workflow_passes_the_data_class_check(store: Store, project: Project) -> None:
    project.meta = {"data_class": "restricted"}
    vid = register(store, project.workflow("v1")).version_id
    evaluate(store, vid, project.suite())
    outcome = gate(store, vid, "staging")
    assert outcome.verdict == "pass", outcome.reasons_text()


def test_a_rules_file_tightens_a_class(store: Store, project: Project, tmp_path: Path) -> None:
    (tmp_path / "data-rules.yaml").write_text(
        "classes:\n  restricted:\n    runtimes: [ollama]\n    store_texts: false\n"
    )
    project.meta = {"data_class": "restricted"}
    done = register(store, project.workflow("v1"))
    (warning,) = done.data_warnings
    assert "python model 'tests.release.fns:route' (in process)" in warning
    assert f"(data rule 'restricted: runtimes ollama' ({tmp_path / 'data-rules.yaml'}:2)" in (
        warning.replace("by the data rule", "(data rule")
    )
    assert gate(store, done.version_id, "staging").verdict == "fail"


def test_a_bad_rules_file_is_bad_input_and_writes_nothing(
    store: Store, project: Project, tmp_path: Path
) -> None:
    rules = tmp_path / "data-rules.yaml"
    rules.write_text("classes:\n  restricted:\n    runtimes: [python, cloud]\n")
    with pytest.raises(PolicyError) as err:
        register(store, project.workflow("v1"))
    assert (err.value.source, err.value.line, err.value.field) == (
        str(rules),
        3,
        "classes.restricted.runtimes[1]",
    )
    with store.read() as conn:
        assert VersionRepo(conn).list("router") == []
    rules.write_text("classes: {}\n")
    vid = register(store, project.workflow("v1")).version_id
    rules.write_text("classes: [1]\n")  # changed on disk: read again
    with pytest.raises(PolicyError, match="expected a mapping"):
        gate(store, vid, "staging")
    with store.read() as conn:
        assert DecisionRepo(conn).latest(vid, "staging") is None


def texts(vid: str, n: int, prefix: str) -> list[dict[str, Any]]:
    now = time.time()
    return [
        {
            "run_id": f"{prefix}-{i}",
            "workflow": "router",
            "version_id": vid,
            "env": "staging",
            "started_at": now - 60 + i,
            "latency_ms": 12.0,
            "status": "ok",
            "input": f"my card 4242 {i} was stolen",
            "output": "fraud",
            "label": "fraud",
        }
        for i in range(n)
    ]


def stored(store: Store, run_id: str) -> dict[str, Any]:
    with store.read() as conn:
        row = RunRepo(conn).get(run_id)
    assert row is not None
    return row


@pytest.mark.parametrize("data_class", ["restricted", "confidential"])
def test_restricted_run_texts_are_dropped_at_ingest_and_counted(
    store: Store, project: Project, data_class: str
) -> None:
    project.meta = {"data_class": data_class}
    vid = register(store, project.workflow("v1")).version_id
    result = ingest_dicts(store, texts(vid, 5, "sdk"), source="sdk", atomic=False)
    assert result.landed == 5
    row = stored(store, "sdk-3")
    if data_class == "restricted":
        assert result.texts_dropped == 5 and result.as_dict()["texts_dropped"] == 5
        assert (row["input"], row["output"], row["input_hash"], row["output_hash"]) == (
            None,
            None,
            None,
            None,
        )
        assert row["label"] == "fraud" and row["output_chars"] == 5  # facts stay
    else:
        assert result.texts_dropped == 0
        assert row["input"] == "my card 4242 3 was stolen" and row["output"] == "fraud"


@pytest.mark.parametrize("workers", [0, 1])
def test_a_jsonl_import_drops_restricted_texts(
    store: Store, project: Project, tmp_path: Path, workers: int
) -> None:
    project.meta = {"data_class": "restricted"}
    vid = register(store, project.workflow("v1")).version_id
    rows = texts(vid, 30, "imp")
    rows[7].pop("input")
    rows[7].pop("output")  # a run without texts is not counted
    path = tmp_path / "runs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = import_jsonl(store, path, workers=workers)
    assert (result.landed, result.texts_dropped) == (30, 29)
    assert stored(store, "imp-12")["input"] is None and stored(store, "imp-12")["output"] is None
    assert stored(store, "imp-12")["input_hash"] is None
    again = import_jsonl(store, path, workers=workers)  # a re-sent file: duplicates, not changed
    assert again.ok and (again.landed, again.duplicates) == (0, 30)


def test_the_sdk_stores_restricted_runs_without_their_texts(store: Store, project: Project) -> None:
    from releasegate import Client
    from tests.helpers import cases

    project.meta = {"data_class": "restricted"}
    vid = register(store, project.workflow("v1")).version_id
    evaluate(store, vid, project.suite())
    assert gate(store, vid, "staging").verdict == "pass"
    promote(store, vid, "staging")
    with Client(store=store, flush_every=60) as client:
        version = client.resolve("router", env="staging")
        for case in cases(4):
            with client.run(version, input=case["input"]) as r:
                r.output = r.label = case["expected"]
        with client.run(version) as quiet:  # no texts: nothing to drop
            quiet.label = "fraud"
        client.flush()
        assert (client.stats.stored, client.stats.texts_dropped) == (5, 4)
        run_id = r.run_id
    row = stored(store, run_id)
    assert row["input"] is None and row["output"] is None and row["label"] == "transfer"


def test_unreadable_rules_keep_every_text_out_of_application_runs(
    store: Store, project: Project, tmp_path: Path
) -> None:
    project.meta = {"data_class": "public"}
    vid = register(store, project.workflow("v1")).version_id
    (tmp_path / "data-rules.yaml").write_text("classes: {public: {store_texts: perhaps}}\n")
    result = ingest_dicts(store, texts(vid, 3, "bad-rules"), source="http", atomic=True)
    assert (result.landed, result.texts_dropped) == (3, 3)
    assert stored(store, "bad-rules-1")["input"] is None
    with pytest.raises(PolicyError, match="store_texts"):  # a file import says so instead
        path = tmp_path / "runs.jsonl"
        path.write_text(json.dumps(texts(vid, 1, "file")[0]) + "\n")
        import_jsonl(store, path, workers=0)


def test_promote_refuses_a_version_the_rules_forbid_since_its_gate(
    store: Store, project: Project, tmp_path: Path
) -> None:
    project.meta = {"data_class": "confidential"}
    vid = register(store, project.workflow("v1")).version_id
    evaluate(store, vid, project.suite())
    assert gate(store, vid, "staging").verdict == "pass"
    (tmp_path / "data-rules.yaml").write_text("classes:\n  confidential: {runtimes: [ollama]}\n")
    with pytest.raises(PromotionRefusedError, match="breaks the data rules in force now") as err:
        promote(store, vid, "staging")
    assert "data rule 'confidential: runtimes ollama'" in str(err.value)
    (tmp_path / "data-rules.yaml").unlink()
    assert promote(store, vid, "staging").changed
