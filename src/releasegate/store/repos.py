"""The repositories under their old address, while callers move to ``store/<noun>.py``.

Each repository now lives in the module of its noun (``store.versions``,
``store.runs``, ...); this module only re-exports them and goes once no caller is left.
"""

from __future__ import annotations

from releasegate.domain.audit import GENESIS
from releasegate.store.alerts import (
    ALERT_FAILED,
    ALERT_PENDING,
    ALERT_ROUTED,
    AlertRecord,
    AlertRepo,
)
from releasegate.store.audit import AuditRepo, AuditState, KeysFor
from releasegate.store.decisions import ApprovalRepo, DecisionRecord, DecisionRepo
from releasegate.store.embeddings import EmbeddingRepo
from releasegate.store.environments import EnvironmentRepo, HistoryRecord
from releasegate.store.evals import EvalRecord, EvalRepo, OutputRepo, ScoreRepo, StoredOutput
from releasegate.store.policies import PolicyRepo
from releasegate.store.rows import now
from releasegate.store.runs import RUN_COLUMNS, RunRepo
from releasegate.store.suites import SuiteRecord, SuiteRepo
from releasegate.store.versions import VersionRecord, VersionRepo
from releasegate.store.workflows import WorkflowRecord, WorkflowRepo

__all__ = [
    "ALERT_FAILED",
    "ALERT_PENDING",
    "ALERT_ROUTED",
    "GENESIS",
    "RUN_COLUMNS",
    "AlertRecord",
    "AlertRepo",
    "ApprovalRepo",
    "AuditRepo",
    "AuditState",
    "DecisionRecord",
    "DecisionRepo",
    "EmbeddingRepo",
    "EnvironmentRepo",
    "EvalRecord",
    "EvalRepo",
    "HistoryRecord",
    "KeysFor",
    "OutputRepo",
    "PolicyRepo",
    "RunRepo",
    "ScoreRepo",
    "StoredOutput",
    "SuiteRecord",
    "SuiteRepo",
    "VersionRecord",
    "VersionRepo",
    "WorkflowRecord",
    "WorkflowRepo",
    "now",
]
