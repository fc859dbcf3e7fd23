"""The label mix and sampled quality in ``rollout check`` on both databases, with real runs
recorded through the SDK: a canary that routes a share of its requests to another label is
aborted on label_mix (once, alerted once), one whose outputs fail the suite's output-only
scorers is aborted on quality, and canaries that label and answer like the stable are not."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from releasegate import Client
from releasegate.monitor.quality import arm_quality
from releasegate.release import rollout
from releasegate.release.evaluate import evaluate
from releasegate.release.gate import gate
from releasegate.release.promote import promote
from releasegate.release.register import register
from releasegate.store.engine import Store
from tests.helpers import Project
from tests.release.test_rollout import RID, policy, shipped_pair

MIX = {"signals": {"error_rate": 0.05, "label_mix": 0.05}, "min_runs_per_step": 300}
LABELS = ["fraud", "billing", "lost-card", "other"]
WEIGHTS = [0.4, 0.3, 0.2, 0.1]


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(root=tmp_path)


def labelled_traffic(store: Store, n: int, *, canary_moved: float, seed: int) -> None:
    """``n`` requests of distinct users; the canary sends ``canary_moved`` of its requests
    to ``other`` whatever they were, the stable labels as drawn."""
    rng = random.Random(seed)
    with Client(store=store, ttl=60, flush_every=60) as client:
        for i in range(n):
            version = client.resolve("router", env="staging", key=f"user-{seed}-{i}")
            label = rng.choices(LABELS, WEIGHTS)[0]
            if version.arm == "canary" and rng.random() < canary_moved:
                label = "other"
            with client.run(version, input=f"message {i}") as run:
                run.output = label
                run.label = label
        client.flush()


def test_a_canary_that_labels_differently_is_aborted_on_the_label_mix(
    store: Store, project: Project
) -> None:
    assert policy(**MIX)["rollout"]["signals"]["label_mix"] == 0.05
    v1, v2 = shipped_pair(store, project, **MIX)
    rollout.start(store, v2, "staging", canary_pct=25, who="alice", rollout_id=RID)
    checked = None
    for seed in range(200, 215):
        labelled_traffic(store, 300, canary_moved=0.3, seed=seed)
        checked = rollout.check(store, "router", "staging", who="cron")
        if checked.rollout.state != "running":
            break
    assert checked is not None and checked.has_aborted and checked.wrote_abort
    assert checked.rollout.reason.startswith("label_mix: ")
    assert "most moved: other" in checked.rollout.reason
    data = rollout.rollout_dict(checked)
    (mix,) = [s for s in data["outcome"]["signals"] if s["signal"] == "label_mix"]
    assert mix["outcome"] == "abort" and mix["e_worse"] >= 1 / mix_alpha(data)
    with store.read() as conn:
        alerts = conn.execute(sa.text("SELECT count(*) FROM alerts")).scalar_one()
    assert alerts == 1


def mix_alpha(data: dict[str, object]) -> float:
    outcome = data["outcome"]
    assert isinstance(outcome, dict)
    return float(outcome["alpha_per_signal"])


def test_a_canary_that_labels_like_the_stable_is_not_aborted(
    store: Store, project: Project
) -> None:
    v1, v2 = shipped_pair(store, project, **MIX)
    rollout.start(store, v2, "staging", canary_pct=25, who="alice", rollout_id=RID)
    for seed in range(300, 306):
        labelled_traffic(store, 300, canary_moved=0.0, seed=seed)
        checked = rollout.check(store, "router", "staging", who="cron")
        assert not checked.has_aborted, checked.rollout.reason
        assert checked.outcome is not None
        assert any(r.startswith("label_mix: ") for r in checked.outcome.reasons)
    assert checked.rollout.evidence.mix is not None
    assert checked.rollout.evidence.mix.canary_runs > 300


QUALITY = {"signals": {"error_rate": 0.05, "quality": 0.05}, "min_runs_per_step": 300}


def suite_with_a_label_check(project: Project) -> Path:
    suite = project.suite()
    doc = yaml.safe_load(suite.read_text())
    doc["scorers"].append(
        {"type": "regex", "name": "valid_label", "params": {"pattern": "^(fraud|billing)$"}}
    )
    suite.write_text(yaml.safe_dump(doc, sort_keys=False))
    return suite


def quality_pair(store: Store, project: Project) -> tuple[str, str]:
    suite = suite_with_a_label_check(project)
    vids = []
    for name, extra in (("v1", {}), ("v2", {"temperature": 0.2})):
        path = project.workflow(name, policy=policy(**QUALITY), **extra)
        vid = register(store, path, who="alice").version_id
        evaluate(store, vid, suite, who="alice")
        assert gate(store, vid, "staging", who="ci").verdict == "pass"
        if name == "v1":
            promote(store, vid, "staging", who="alice")
        vids.append(vid)
    return vids[0], vids[1]


def answered_traffic(store: Store, n: int, *, canary_free_text: float, seed: int) -> None:
    """The canary answers in free text instead of a label ``canary_free_text`` of the time."""
    rng = random.Random(seed)
    with Client(store=store, ttl=60, flush_every=60) as client:
        for i in range(n):
            version = client.resolve("router", env="staging", key=f"user-{seed}-{i}")
            with client.run(version, input=f"message {i}") as run:
                run.output = "fraud"
                if version.arm == "canary" and rng.random() < canary_free_text:
                    run.output = "I think this is about fraud, maybe?"
        client.flush()


def test_sampled_quality_aborts_a_canary_whose_outputs_fail_the_suites_checks(
    store: Store, project: Project
) -> None:
    v1, v2 = quality_pair(store, project)
    rollout.start(store, v2, "staging", canary_pct=25, who="alice", rollout_id=RID)
    answered_traffic(store, 400, canary_free_text=0.4, seed=1)
    without = rollout.check(store, "router", "staging", who="cron")  # no sampler: not compared
    assert without.outcome is not None and "quality" not in without.rollout.evidence.states
    assert any(r.startswith("quality: no sampled run scored") for r in without.outcome.reasons)
    checked = None
    for seed in range(2, 12):
        answered_traffic(store, 400, canary_free_text=0.4, seed=seed)
        checked = rollout.check(store, "router", "staging", who="cron", quality=arm_quality)
        if checked.rollout.state != "running":
            break
    assert checked is not None and checked.has_aborted
    assert checked.rollout.reason.startswith("quality: canary ")
    state = checked.rollout.evidence.states["quality"]
    assert state.canary.runs <= 50 * 11 and state.stable.runs <= 50 * 11  # a sample per check
    assert state.canary.mean > 0.25 and state.stable.mean == 0.0


def test_sampled_quality_lets_a_canary_that_answers_alike_through(
    store: Store, project: Project
) -> None:
    v1, v2 = quality_pair(store, project)
    rollout.start(store, v2, "staging", canary_pct=25, who="alice", rollout_id=RID)
    for seed in range(20, 26):
        answered_traffic(store, 400, canary_free_text=0.0, seed=seed)
        checked = rollout.check(store, "router", "staging", who="cron", quality=arm_quality)
        assert not checked.has_aborted, checked.rollout.reason
    state = checked.rollout.evidence.states["quality"]
    assert state.canary.runs > 0 and state.canary.mean == 0.0
