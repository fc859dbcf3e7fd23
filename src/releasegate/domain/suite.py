"""Eval suites: cases, scorers and thresholds, content-hashed like versions.

The suite id covers everything that changes what an eval measures (cases,
scorers and their params, thresholds, which cases share a cluster), so "the current
suite" is a fact the gate and promotion can check, and a new case from an incident is a
new suite.

A case's ``cluster`` (cases that are variants of one underlying item: paraphrases of one
incident, turns of one conversation) is in the suite id but not in the case hash. It
changes the statistics (the intervals, so the gate's evidence), not what the model is
asked, so relabelling clusters makes a new suite without calling the model again.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from releasegate.domain.document import Document, Fields
from releasegate.domain.identity import content_hash
from releasegate.domain.results import Case
from releasegate.errors import SuiteError

CaseLoader = Callable[[str], list[Document]]


@dataclass(frozen=True)
class ScorerSpec:
    kind: str
    name: str
    params: Mapping[str, Any] = field(default_factory=dict)
    line: int | None = None

    def content(self) -> dict[str, Any]:
        return {"type": self.kind, "name": self.name, "params": dict(self.params)}


@dataclass(frozen=True)
class Suite:
    name: str
    workflow: str
    description: str
    cases: tuple[Case, ...]
    scorers: tuple[ScorerSpec, ...]
    thresholds: Mapping[str, float] = field(default_factory=dict)
    source: str = ""
    clusters: Mapping[str, str] = field(default_factory=dict)
    """case id -> cluster label, for the cases that have one."""

    def content(self) -> dict[str, Any]:
        return {
            "suite": self.name,
            "workflow": self.workflow,
            "cases": [self._content_of(c) for c in self.cases],
            "scorers": [s.content() for s in self.scorers],
            "thresholds": dict(self.thresholds),
        }

    @cached_property  # frozen: the content cannot change under it
    def suite_id(self) -> str:
        """Hash over each case's id and content hash: the same identity as hashing the
        whole content, without serialising every case a second time. A cluster label is
        appended to its case's entry, so suites without clusters keep their ids."""
        identity = {
            "suite": self.name,
            "workflow": self.workflow,
            "cases": [
                [c.case_id, c.case_hash]
                + ([self.clusters[c.case_id]] if c.case_id in self.clusters else [])
                for c in self.cases
            ],
            "scorers": [s.content() for s in self.scorers],
            "thresholds": dict(self.thresholds),
        }
        return content_hash(identity)

    @property
    def must_pass(self) -> tuple[Case, ...]:
        return tuple(c for c in self.cases if c.must_pass)

    def cluster_labels(self) -> tuple[Hashable, ...] | None:
        """One label per case in suite order, or None when no two cases share a cluster.

        A case without a cluster is a cluster of its own; labels are tagged so a case id
        can never collide with a cluster name.
        """
        if not self.clusters:
            return None
        labels = tuple(
            ("cluster", self.clusters[c.case_id])
            if c.case_id in self.clusters
            else ("case", c.case_id)
            for c in self.cases
        )
        return labels if len(set(labels)) < len(labels) else None

    @property
    def n_clusters(self) -> int | None:
        """How many independent units the cases form, or None without shared clusters."""
        labels = self.cluster_labels()
        return None if labels is None else len(set(labels))

    def _content_of(self, case: Case) -> dict[str, Any]:
        content = case_content(case)
        if case.case_id in self.clusters:
            content["cluster"] = self.clusters[case.case_id]
        return content


def case_content(case: Case) -> dict[str, Any]:
    return {
        "id": case.case_id,
        "input": case.input,
        "expected": case.expected,
        "tags": list(case.tags),
        "must_pass": case.must_pass,
        "metadata": dict(case.metadata),
    }


def make_case(
    case_id: str,
    input: Any,
    expected: Any = None,
    tags: Sequence[str] = (),
    must_pass: bool = False,
    metadata: Mapping[str, Any] | None = None,
) -> Case:
    """A Case with its hash: what the input and expectation are, not where it sits in a file."""
    tags = tuple(tags)
    metadata = dict(metadata or {})
    body = {
        "input": input,
        "expected": expected,
        "tags": list(tags),
        "must_pass": must_pass,
        "metadata": dict(metadata),
    }  # case_content() without the id
    return Case(case_id, input, expected, tags, must_pass, metadata, content_hash(body))


CASE_FIELDS = ("id", "input", "expected", "tags", "must_pass", "metadata", "cluster")


def parse_case(f: Fields, fallback_id: str) -> Case:
    f.only(*CASE_FIELDS)
    if "input" not in f.value:
        f.fail("input", "is required")
    raw_id = f.get("id", (str, int), fallback_id)
    tags = f.get("tags", list, [])
    for i, t in enumerate(tags):
        if not isinstance(t, str):
            f.sub_fail("tags", i, t)
    return make_case(
        str(raw_id),
        f.value["input"],
        f.value.get("expected"),
        tags,
        f.get("must_pass", bool, False),
        f.get("metadata", dict, {}),
    )


def parse_cluster(f: Fields) -> str | None:
    """A case's ``cluster``: a non-empty string (a number is read as its text), or None."""
    raw = f.get("cluster", (str, int), None)
    if raw is None:
        return None
    label = str(raw).strip()
    if not label:
        f.fail("cluster", "must not be empty; leave it out for a case of its own")
    return label


def parse_suite(doc: Document, load_cases: CaseLoader) -> Suite:
    """Validate a suite document; ``cases`` may be inline or a JSONL path read by ``load_cases``."""
    top = Fields(doc, SuiteError).only(
        "suite", "workflow", "description", "cases", "scorers", "thresholds"
    )
    name = top.get("suite", str, required=True)
    workflow = top.get("workflow", str, required=True)
    raw_cases = top.get("cases", (list, str), required=True)
    cases: list[Case] = []
    clusters: dict[str, str] = {}
    seen: set[str] = set()
    if isinstance(raw_cases, str):
        for rec in load_cases(raw_cases):
            fields = Fields(rec, SuiteError)
            cases.append(parse_case(fields, f"line-{rec.base_line}"))
            _check_unique(cases[-1], seen, rec, ())
            _add_cluster(clusters, cases[-1], fields)
    else:
        for i, _ in enumerate(raw_cases):
            fields = Fields(doc, SuiteError, ("cases", i))
            cases.append(parse_case(fields, f"case-{i + 1}"))
            _check_unique(cases[-1], seen, doc, ("cases", i, "id"))
            _add_cluster(clusters, cases[-1], fields)
    if not cases:
        top.fail("cases", "a suite needs at least one case")

    scorers: list[ScorerSpec] = []
    for i, _ in enumerate(top.get("scorers", list, required=True)):
        s = Fields(doc, SuiteError, ("scorers", i)).only("type", "name", "params", "threshold")
        kind = s.get("type", str, required=True)
        params = dict(s.get("params", dict, {}))
        if s.has("threshold"):
            params["threshold"] = s.get("threshold", float)
        spec = ScorerSpec(
            kind=kind,
            name=s.get("name", str, kind),
            params=params,
            line=doc.line_of(("scorers", i)),
        )
        if any(x.name == spec.name for x in scorers):
            s.fail("name", f"two scorers are named '{spec.name}'; give one a 'name'")
        scorers.append(spec)
    if not scorers:
        top.fail("scorers", "a suite needs at least one scorer")

    thresholds: dict[str, float] = {}
    if top.has("thresholds"):
        th = top.sub("thresholds")
        for metric in th.value:
            if metric not in {s.name for s in scorers}:
                th.fail(
                    str(metric),
                    f"no scorer named '{metric}'",
                    hint="scorers: " + ", ".join(s.name for s in scorers),
                )
            value = th.get(str(metric), float)
            if not 0.0 <= value <= 1.0:
                th.fail(
                    str(metric),
                    f"must be between 0 and 1 (a share of cases), got {value:g}",
                    hint=f"write {value / 100:g} for {value:g}%" if 1 < value <= 100 else None,
                )
            thresholds[str(metric)] = value
    return Suite(
        name=name,
        workflow=workflow,
        description=top.get("description", str, ""),
        cases=tuple(cases),
        scorers=tuple(scorers),
        thresholds=thresholds,
        source=doc.source,
        clusters=clusters,
    )


def _add_cluster(clusters: dict[str, str], case: Case, fields: Fields) -> None:
    label = parse_cluster(fields)
    if label is not None:
        clusters[case.case_id] = label


def _check_unique(new: Case, seen: set[str], doc: Document, path: tuple[str | int, ...]) -> None:
    if new.case_id in seen:
        doc.fail(SuiteError, f"duplicate case id '{new.case_id}'", path or ("id",))
    seen.add(new.case_id)


def suite_from_content(content: Mapping[str, Any], description: str = "") -> Suite:
    """Rebuild a stored suite (its content is what was hashed)."""
    cases = tuple(
        make_case(
            c["id"],
            c["input"],
            c.get("expected"),
            c.get("tags", ()),
            c.get("must_pass", False),
            c.get("metadata"),
        )
        for c in content["cases"]
    )
    scorers = tuple(
        ScorerSpec(s["type"], s["name"], s.get("params", {})) for s in content["scorers"]
    )
    clusters = {
        str(c["id"]): str(c["cluster"]) for c in content["cases"] if c.get("cluster") is not None
    }
    return Suite(
        name=content["suite"],
        workflow=content["workflow"],
        description=description,
        cases=cases,
        scorers=scorers,
        thresholds=dict(content.get("thresholds", {})),
        clusters=clusters,
    )
