"""Governance review: does the release discipline still hold? Facts in, findings out.

Each check is a pure function over facts a service gathered from the store in a few
set-based reads (``release.review``), and returns ``Finding``s: what is wrong, where,
the evidence, and the exact command that fixes it. A finding ``needs_action`` unless it
is only shown (a paused environment is a decision someone took, not a fault); ``review``
exits 1 when any finding needs action. The checks:

- ``outside-gate``: a version seen in runs of an environment it never reached through
  the loop (never promoted or rolled back there, and its latest gate decision there is
  not a pass: the rule ``runs import`` and ``monitor`` alert on, ``admitted``).
- ``drifted-runs``: runs whose reported model, provider or prompt digest is not their
  version's (``reported_drift``): the definition drifted from what actually runs.
- ``stale-gate``: an environment's current version was gated on an older suite or policy
  than the current one (or has no passing decision there at all).
- ``policy-audit``: an environment's current policy is not the one the last
  ``policy.changed`` event records, or its content no longer hashes to its id: it was
  written or edited outside releasegate, and the gate reads it.
- ``owners``: a workflow without a change owner, a care owner or responders.
- ``models``: a running version whose model is not pinned, or not on the blessed list
  of the environment's policy.
- ``data-class``: a running version whose model or retrieval sends the workflow's data
  where its class forbids (``domain.data_class.violations`` under the project's rules).
- ``alert-tests``: an alert rule that never fired and reached its routes (``alert_tests``).
- ``rehearsal``: a workflow with something running whose rollback was never rehearsed,
  was last rehearsed before the period, or whose last rehearsal did not restore the
  original (``rehearsals``).
- ``experiments``: an experiment past its retention window that still holds outputs and
  scores; ``review --fix`` collects it as ``gc`` does (``expired_experiments``).
- ``paused``: a paused environment (shown; needs no action).
- ``ratchet``: a floor that lags what the running version stably shows
  (``domain.ratchet``), as the policy change that raises it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from releasegate.domain.data_class import DataRules, violations
from releasegate.domain.identity import content_hash, sha256_bytes
from releasegate.domain.identity import short as _short
from releasegate.domain.monitoring import parse_duration
from releasegate.domain.pinning import blessing_for, pin_of, runtime_of, same_model_name
from releasegate.domain.policy import Policy
from releasegate.errors import InputError

CHECKS: Mapping[str, str] = {
    "outside-gate": "versions seen in runs of an environment they never passed the gate for",
    "drifted-runs": "runs whose reported model, provider or prompt digest is not their version's",
    "stale-gate": "environments whose version was gated on an older suite or policy",
    "policy-audit": "policies in force that the audit log does not record (written by SQL)",
    "owners": "workflows without a change owner, a care owner or responders",
    "models": "running models that are not pinned, or not blessed by the policy",
    "data-class": "running versions that send data where the workflow's data class forbids",
    "alert-tests": "alert rules that never fired and reached their routes",
    "rehearsal": "rollbacks not rehearsed within the period, or whose last rehearsal failed",
    "experiments": "experiments past their retention window that still hold eval data",
    "paused": "paused environments (shown, no action needed)",
    "ratchet": "floors that lag what the running version stably shows",
}
"""Every check ``review`` runs, by name, in the order findings are listed."""

DEFAULT_PERIOD = timedelta(days=90)
PROMPT_DIGEST = "prompt_digest"
"""The run attribute an application reports the digest of the prompt it sent under."""


def parse_period(text: str | None) -> timedelta:
    """``--period``: ``90d``, ``12w``, ``30d``; the default when None."""
    if text is None:
        return DEFAULT_PERIOD
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise InputError(str(exc), field="--period") from None


@dataclass(frozen=True)
class Finding:
    """One thing ``review`` found: where, what, the evidence, and the command that fixes it."""

    check: str
    workflow: str | None
    env: str | None
    subject: str
    message: str
    fix: str
    evidence: tuple[str, ...] = ()
    needs_action: bool = True
    fixable: bool = False
    """``review --fix`` applies the fix itself."""

    @property
    def where(self) -> str:
        if self.workflow is None:
            return "project"
        return self.workflow + (f"@{self.env}" if self.env else "")

    def as_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "workflow": self.workflow,
            "env": self.env,
            "subject": self.subject,
            "message": self.message,
            "evidence": list(self.evidence),
            "fix": self.fix,
            "needs_action": self.needs_action,
            "fixable": self.fixable,
        }


def ordered(findings: Iterable[Finding]) -> list[Finding]:
    """Findings in the order of ``CHECKS``, then by place and subject."""
    rank = {name: i for i, name in enumerate(CHECKS)}
    return sorted(
        findings,
        key=lambda f: (rank.get(f.check, len(rank)), f.workflow or "", f.env or "", f.subject),
    )


def _listed(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


# -- outside the gate ----------------------------------------------------------------------


class Seen(NamedTuple):
    """A version seen in the runs of one environment within the period."""

    workflow: str
    env: str
    version_id: str
    runs: int
    first_at: datetime
    last_at: datetime
    registered: bool


Place = tuple[str, str, str]
"""(workflow, env, version_id)."""


def admitted(moved: Collection[Place], latest_verdicts: Mapping[Place, str]) -> set[Place]:
    """Where each version reached through the loop: moved there by promote, rollout or
    rollback (``env_history``), the candidate of a rollout there (``moved`` carries those
    too: a canary or shadow serves before the alias moves, and its start checked the gate
    decision and the approvals as promote does), or holding a passing latest gate decision
    there. The rule ``monitor.alerts.gated`` applies to one."""
    return set(moved) | {p for p, verdict in latest_verdicts.items() if verdict == "pass"}


def outside_gate(seen: Iterable[Seen], allowed: Collection[Place]) -> list[Finding]:
    out = []
    for s in seen:
        if (s.workflow, s.env, s.version_id) in allowed:
            continue
        short = _short(s.version_id)
        evidence: tuple[str, ...] = (
            f"{s.runs:,} run(s) of {short} in {s.env} from {s.first_at:%Y-%m-%d %H:%M} "
            f"to {s.last_at:%Y-%m-%d %H:%M} UTC",
            "never promoted or rolled back to there, and no passing gate decision there",
        )
        if s.registered:
            fix = f"releasegate gate {short} --env {s.env}"
            what = "a version"
        else:
            evidence += (f"{short} is not registered: nobody can say what it is",)
            fix = f"releasegate resolve {s.workflow} --env {s.env}"
            what = "an unregistered version"
        out.append(
            Finding(
                "outside-gate",
                s.workflow,
                s.env,
                s.version_id,
                f"{what} ran in {s.env} without passing the gate there: {short}",
                fix,
                evidence
                + (
                    "the application must serve what "
                    f"`releasegate resolve {s.workflow} --env {s.env}` names",
                ),
            )
        )
    return out


# -- what runs against what was registered -------------------------------------------------


class Reported(NamedTuple):
    """Runs of one version in one environment that reported the same model, provider and
    prompt digest (None: not reported), with how many and one run id to look at."""

    workflow: str
    env: str
    version_id: str
    model: str | None
    provider: str | None
    prompt_digest: str | None
    runs: int
    example_run: str


def prompt_digests(manifest: Mapping[str, Any]) -> frozenset[str]:
    """The prompt digests a run of this manifest may report (hex sha256, no prefix): of the
    whole ``prompts`` section as canonical JSON, of the system prompt's text, and of each
    template's text; an application hashes the text it loaded, before filling it in."""
    prompts = manifest.get("prompts") or {}
    out = {content_hash(prompts)}
    texts = [prompts.get("system")] + list((prompts.get("templates") or {}).values())
    for text in texts:
        if isinstance(text, str):
            out.add(sha256_bytes(text.encode("utf-8")))
    return frozenset(out)


def _digest_matches(reported: str, known: Collection[str]) -> bool:
    """A reported digest (``sha256:HEX``, bare hex, or a prefix of 12+ digits) is known."""
    hex_part = reported.strip().lower().removeprefix("sha256:")
    return len(hex_part) >= 12 and any(k.startswith(hex_part) for k in known)


def _model_matches(model: Mapping[str, Any], reported: str) -> bool:
    runtime = runtime_of(model)
    names = [model.get("name"), model.get("revision")]
    return any(isinstance(n, str) and same_model_name(runtime, n, reported) for n in names)


def _provider_matches(model: Mapping[str, Any], reported: str) -> bool:
    return reported.strip().lower() in {str(model.get("provider", "")).lower(), runtime_of(model)}


def reported_drift(
    reported: Iterable[Reported],
    manifests: Mapping[str, Mapping[str, Any]],
    origins: Mapping[str, str] | None = None,
) -> list[Finding]:
    """Runs that say they ran another model, provider or prompt than their version's
    manifest: one finding per version and environment, each mismatch counted in its
    evidence. ``origins`` maps a version id to the workflow file it was registered from."""
    found: dict[Place, dict[tuple[str, str], list[Reported]]] = {}
    for r in reported:
        manifest = manifests.get(r.version_id)
        if manifest is None:  # unregistered: ``outside-gate`` says so
            continue
        model = manifest.get("model") or {}
        for what, value, ok in (
            ("model", r.model, r.model is None or _model_matches(model, r.model)),
            ("provider", r.provider, r.provider is None or _provider_matches(model, r.provider)),
            (
                "prompt digest",
                r.prompt_digest,
                r.prompt_digest is None
                or _digest_matches(r.prompt_digest, prompt_digests(manifest)),
            ),
        ):
            if not ok:
                place = (r.workflow, r.env, r.version_id)
                found.setdefault(place, {}).setdefault((what, str(value)), []).append(r)
    out = []
    for (workflow, env, vid), mismatches in sorted(found.items()):
        manifest = manifests[vid]
        model = manifest.get("model") or {}
        expected = {
            "model": f"model {model.get('name')}",
            "provider": f"provider {model.get('provider')}",
            "prompt digest": "digest of its prompts section "
            f"({content_hash(manifest.get('prompts') or {})[:12]}), its system prompt "
            "or a template",
        }
        evidence = []
        for (what, value), rows in sorted(mismatches.items()):
            n = sum(r.runs for r in rows)
            evidence.append(
                f"{n:,} run(s) in {env} reported {what} '{value}', not the version's "
                f"{expected[what]} (e.g. run {rows[0].example_run})"
            )
        whats = sorted({what for what, _ in mismatches})
        n = sum(r.runs for r in {r for rows in mismatches.values() for r in rows})
        file = (origins or {}).get(vid, "WORKFLOW_FILE")
        out.append(
            Finding(
                "drifted-runs",
                workflow,
                env,
                vid,
                f"{n:,} run(s) of {_short(vid)} in {env} report another "
                f"{_listed(whats)} than the version's manifest",
                f"releasegate register {file} --reason 'describe what runs in {env}'",
                (
                    *evidence,
                    "either the application runs something else than the version it names "
                    "(fix the application), or the workflow file is out of date (change it "
                    "to what runs, then register, gate and promote it)",
                ),
            )
        )
    return out


# -- gated on what is current --------------------------------------------------------------


class Serving(NamedTuple):
    """What an environment runs, and the gate decision that admitted it there (the latest
    passing one; None when there is none) against the current suite and policy."""

    workflow: str
    env: str
    version_id: str
    decision_id: str | None
    decided_suite: str | None
    decided_policy: str | None
    current_suite: str | None
    current_policy: str
    decided_rules: str | None = None
    """``policy.gate_rules_id`` of the decision's policy (None: not known)."""
    current_rules: str | None = None
    """The same of the current policy: a change only to what the gate never reads (a
    rollout's ramp, the pause rule) leaves the two equal, and the decision stands."""


def stale_gates(serving: Iterable[Serving]) -> list[Finding]:
    out = []
    for s in serving:
        short = _short(s.version_id)
        gate_again = f"releasegate gate {short} --env {s.env}"
        if s.decision_id is None:
            out.append(
                Finding(
                    "stale-gate",
                    s.workflow,
                    s.env,
                    s.version_id,
                    f"{short} runs in {s.env} with no passing gate decision there",
                    gate_again,
                    ("no gate decision that cleared its checks, for this version in this env",),
                )
            )
            continue
        old = []
        if s.current_suite is not None and s.decided_suite != s.current_suite:
            old.append(
                f"suite: gated on {(s.decided_suite or '?')[:12]}, current {s.current_suite[:12]}"
            )
        same_rules = s.decided_rules is not None and s.decided_rules == s.current_rules
        if s.decided_policy != s.current_policy and not same_rules:
            old.append(
                f"policy: gated on {(s.decided_policy or '?')[:12]}, current "
                f"{s.current_policy[:12]}"
            )
        if old:
            what = " and ".join(o.split(":")[0] for o in old)
            out.append(
                Finding(
                    "stale-gate",
                    s.workflow,
                    s.env,
                    s.version_id,
                    f"{short} in {s.env} was gated on an older {what}",
                    gate_again,
                    (f"decision {s.decision_id}", *old),
                )
            )
    return out


# -- policies the audit log records -----------------------------------------------------


class StoredPolicy(NamedTuple):
    """An environment's current stored policy, and what the audit log last recorded."""

    workflow: str
    env: str
    policy_id: str
    content_id: str
    """The hash of the stored content: equal to ``policy_id`` unless it was edited."""
    recorded: str | None
    """The policy id of the last ``policy.changed`` event of this environment (None: none)."""


def unaudited_policies(stored: Iterable[StoredPolicy]) -> list[Finding]:
    out = []
    for p in stored:
        if p.content_id != p.policy_id:
            problem = (
                f"its content no longer hashes to its id {p.policy_id[:12]} "
                f"(it hashes to {p.content_id[:12]}): it was edited in the database"
            )
        elif p.recorded != p.policy_id:
            problem = (
                f"the audit log last recorded {(p.recorded or 'no policy')[:12]} there, "
                f"not {p.policy_id[:12]}: it was written outside releasegate"
            )
        else:
            continue
        out.append(
            Finding(
                "policy-audit",
                p.workflow,
                p.env,
                p.policy_id,
                f"the {p.env} policy of {p.workflow} that the gate reads is not the audited one",
                "releasegate audit verify",
                (problem, "restore it, then register the workflow file to record its policy"),
            )
        )
    return out


# -- owners -------------------------------------------------------------------------------


class WorkflowOwners(NamedTuple):
    workflow: str
    owners: Mapping[str, Any]


OWNER_ROLES = (
    ("change", "a change owner (who changes it)"),
    ("care", "a care owner (who answers for it in production)"),
    ("responders", "responders (who are alerted)"),
)


def missing_owners(
    workflows: Iterable[WorkflowOwners], files: Mapping[str, str] | None = None
) -> list[Finding]:
    """``files``: the workflow file each workflow was last registered from."""
    out = []
    for w in workflows:
        missing = [label for key, label in OWNER_ROLES if not w.owners.get(key)]
        if not missing:
            continue
        named = [f"{k}: {w.owners[k]}" for k, _ in OWNER_ROLES if w.owners.get(k)]
        out.append(
            Finding(
                "owners",
                w.workflow,
                None,
                "owners",
                f"{w.workflow} has no " + ", no ".join(missing),
                f"releasegate register {(files or {}).get(w.workflow, 'WORKFLOW_FILE')}  "
                "# after adding owners.change, "
                "owners.care and owners.responders to the file",
                ("owners on record: " + ("; ".join(named) if named else "none"),),
            )
        )
    return out


# -- models ------------------------------------------------------------------------------


class RunningModel(NamedTuple):
    """What an environment runs: its version's manifest and the environment's policy."""

    workflow: str
    env: str
    version_id: str
    manifest: Mapping[str, Any]
    policy: Policy


def model_problems(
    running: Iterable[RunningModel], origins: Mapping[str, str] | None = None
) -> list[Finding]:
    """``origins``: the workflow file each version was registered from."""
    out = []
    for r in running:
        pin = pin_of(r.manifest.get("model") or {})
        short = _short(r.version_id)
        if not pin.is_pinned:
            out.append(
                Finding(
                    "models",
                    r.workflow,
                    r.env,
                    f"{r.version_id}:unpinned",
                    f"{short} in {r.env} runs an unpinned model: {pin.label()}",
                    f"releasegate register {(origins or {}).get(r.version_id, 'WORKFLOW_FILE')}"
                    "  # with the model pinned",
                    (pin.detail,),
                )
            )
        blessed = r.policy.blessed
        if blessed is not None and blessing_for(pin, blessed) is None:
            listed = ", ".join(b.label() for b in blessed) or "nothing"
            out.append(
                Finding(
                    "models",
                    r.workflow,
                    r.env,
                    f"{r.version_id}:unblessed",
                    f"{short} in {r.env} runs a model the {r.env} policy does not bless: "
                    f"{pin.label()}",
                    f"releasegate rollback {r.workflow} --env {r.env}",
                    (f"the {r.env} policy blesses: {listed}",),
                )
            )
    return out


# -- data classes --------------------------------------------------------------------------


class RunningData(NamedTuple):
    """What an environment runs, and the data class of its workflow."""

    workflow: str
    env: str
    version_id: str
    manifest: Mapping[str, Any]
    data_class: str


def data_class_violations(
    running: Iterable[RunningData], rules: DataRules, origins: Mapping[str, str] | None = None
) -> list[Finding]:
    """The versions serving now that the gate would refuse under today's rules (one gated
    before the rules tightened still serves). ``origins``: the files they came from."""
    out = []
    for r in running:
        found = violations(r.manifest, r.data_class, rules)
        if not found:
            continue
        file = (origins or {}).get(r.version_id, "WORKFLOW_FILE")
        out.append(
            Finding(
                "data-class",
                r.workflow,
                r.env,
                r.version_id,
                f"{_short(r.version_id)} in {r.env} sends {r.data_class} data where its "
                "class forbids",
                f"releasegate register {file}  # with a model and retrieval the "
                f"{r.data_class} class allows, then gate and promote it",
                tuple(f"{v.field}: {v.message()}" for v in found),
            )
        )
    return out


# -- alert rules ---------------------------------------------------------------------------


class AlertRuleFacts(NamedTuple):
    """A workflow's alert rule, and whether an alert of its signal ever reached its routes."""

    workflow: str
    signal: str
    delivered: int
    """How many alerts of this signal the outbox holds as routed, in any environment."""
    environments: tuple[str, ...]


def alert_tests(rules: Iterable[AlertRuleFacts]) -> list[Finding]:
    """A rule counts as tested once an alert of its signal was delivered (``routed`` in
    the outbox) in any of the workflow's environments: a firing in staging is the test
    that proves the rule, its threshold and its routes work. There is no ``alerts test``
    command; a monitor run against a staging window that crosses the rule is the test."""
    out = []
    for r in rules:
        if r.delivered:
            continue
        env = r.environments[0] if r.environments else "staging"
        out.append(
            Finding(
                "alert-tests",
                r.workflow,
                None,
                r.signal,
                f"the {r.signal} alert rule of {r.workflow} never fired and reached its routes",
                f"releasegate monitor {r.workflow} --env {env}  # over a window that crosses "
                "the rule",
                ("no routed alert of this signal in the outbox, in any environment",),
            )
        )
    return out


# -- rollback rehearsals ------------------------------------------------------------------


PROVEN = ("passed", "suite-too-weak")
"""Results of a rehearsal that restored the original: the rollback works (a too-weak
suite is its own lesson, shown in the evidence)."""


class LastRehearsal(NamedTuple):
    """A workflow with something running, and its last finished rehearsal (None: never)."""

    workflow: str
    env: str
    """Where to rehearse: the workflow's first environment that is not production."""
    rehearsal_id: str | None = None
    rehearsed_env: str | None = None
    result: str | None = None
    finished_at: datetime | None = None
    mutation_score: float | None = None


def rehearsals(last: Iterable[LastRehearsal], *, period: timedelta, at: datetime) -> list[Finding]:
    out = []
    for r in last:
        fix = f"releasegate rehearse {r.workflow} --env {r.env}"
        if r.rehearsal_id is None or r.finished_at is None:
            out.append(
                Finding(
                    "rehearsal",
                    r.workflow,
                    None,
                    "never",
                    f"the rollback of {r.workflow} was never rehearsed",
                    fix,
                    ("no finished rehearsal on record, in any environment",),
                )
            )
            continue
        when = f"{r.finished_at:%Y-%m-%d %H:%M} UTC"
        evidence = [
            f"last rehearsal {r.rehearsal_id} in {r.rehearsed_env}, finished {when}: {r.result}"
        ]
        if r.mutation_score is not None:
            evidence.append(f"its suite caught {r.mutation_score:.0%} of the gated mutations")
        age = at - r.finished_at
        if r.result not in PROVEN:
            message = (
                f"the last rehearsal of {r.workflow}'s rollback did not restore the original "
                f"({r.result})"
            )
        elif age > period:
            days = period.total_seconds() / 86400
            message = (
                f"the rollback of {r.workflow} was last rehearsed {age.days} days ago, "
                f"over the {days:g}-day period"
            )
        else:
            continue
        out.append(
            Finding("rehearsal", r.workflow, None, r.rehearsal_id, message, fix, tuple(evidence))
        )
    return out


# -- expired experiments -------------------------------------------------------------------


class Expired(NamedTuple):
    """An experiment past its retention window that still holds eval data."""

    workflow: str
    version_id: str
    expired_at: datetime
    retention_days: int
    outputs: int
    scores: int
    kept_because: str | None
    """Why ``gc`` would keep it (it serves somewhere, an eval runs); None: it collects it."""


def expired(experiments: Iterable[Expired]) -> list[Finding]:
    out = []
    for e in experiments:
        short = _short(e.version_id)
        evidence: tuple[str, ...] = (
            f"expired {e.expired_at:%Y-%m-%d} ({e.retention_days}-day retention), still "
            f"holding {e.outputs:,} output(s) and {e.scores:,} score(s)",
        )
        if e.kept_because is not None:
            evidence += (f"gc keeps it: it {e.kept_because}",)
        out.append(
            Finding(
                "experiments",
                e.workflow,
                None,
                e.version_id,
                f"experiment {short} of {e.workflow} is past its retention window",
                f"releasegate gc {e.workflow}",
                evidence,
                fixable=e.kept_because is None,
            )
        )
    return out


# -- paused environments -------------------------------------------------------------------


class Paused(NamedTuple):
    workflow: str
    env: str
    version_id: str
    reason: str
    by: str
    at: datetime


def paused(pauses: Iterable[Paused]) -> list[Finding]:
    return [
        Finding(
            "paused",
            p.workflow,
            p.env,
            "paused",
            f"{p.workflow}@{p.env} is paused: every request goes to the human fallback",
            f"releasegate resume {p.workflow} --env {p.env}",
            (f"paused by {p.by} since {p.at:%Y-%m-%d %H:%M} UTC: {p.reason}",),
            needs_action=False,
        )
        for p in pauses
    ]


# -- the whole review ----------------------------------------------------------------------


@dataclass(frozen=True)
class Review:
    """What ``review`` found over the workflows it looked at; exit 1 when ``needs_action``."""

    workflows: tuple[str, ...]
    period: timedelta
    at: datetime
    findings: tuple[Finding, ...]
    checks: tuple[str, ...] = tuple(CHECKS)
    fixed: tuple[str, ...] = ()
    """What ``--fix`` did, one line each."""
    counts: Mapping[str, int] = field(default_factory=dict)

    @property
    def needs_action(self) -> bool:
        return any(f.needs_action for f in self.findings)

    def as_dict(self) -> dict[str, Any]:
        by_check = {name: 0 for name in self.checks}
        for f in self.findings:
            by_check[f.check] = by_check.get(f.check, 0) + 1
        return {
            "ok": not self.needs_action,
            "needs_action": self.needs_action,
            "at": self.at.isoformat(),
            "period_days": self.period.total_seconds() / 86400,
            "workflows": list(self.workflows),
            "checks": list(self.checks),
            "by_check": by_check,
            "findings": [f.as_dict() for f in self.findings],
            "fixed": list(self.fixed),
            "counts": dict(self.counts),
        }
