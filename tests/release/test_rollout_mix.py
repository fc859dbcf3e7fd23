"""The label mix in ``rollout check`` on both databases, with real runs recorded through the
SDK: a canary that routes a fifth of its requests to another label is aborted on label_mix
(once, alerted once), and one that labels like the stable is not."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import sqlalchemy as sa

from releasegate import Client
from releasegate.release import rollout
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
