"""Eval suites: cases, scorers and thresholds, content-hashed like versions.

The suite id covers everything that changes what an eval measures (cases,
scorers and their params, thresholds), so "the current suite" is a fact the
gate and promotion can check, and a new case from an incident is a new suite.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
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

    def content(self) -> dict[str, Any]:
        return {
            "suite": self.name,
            "workflow": self.workflow,
            "cases": [case_content(c) for c in self.cases],
            "scorers": [s.content() for s in self.scorers],
            "thresholds": dict(self.thresholds),
        }

    @cached_property  # frozen: the content cannot change under it
    def suite_id(self) -> str:
        """Hash over each case's id and content hash: the same identity as hashing the
        whole content, without serialising every case a second time."""
        identity = {
            "suite": self.name,
            "workflow": self.workflow,
            "cases": [[c.case_id, c.case_hash] for c in self.cases],
            "scorers": [s.content() for s in self.scorers],
            "thresholds": dict(self.thresholds),
        }
        return content_hash(identity)

    @property
    def must_pass(self) -> tuple[Case, ...]:
        return tuple(c for c in self.cases if c.must_pass)


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


CASE_FIELDS = ("id", "input", "expected", "tags", "must_pass", "metadata")


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


def parse_suite(doc: Document, load_cases: CaseLoader) -> Suite:
    """Validate a suite document; ``cases`` may be inline or a JSONL path read by ``load_cases``."""
    top = Fields(doc, SuiteError).only(
        "suite", "workflow", "description", "cases", "scorers", "thresholds"
    )
    name = top.get("suite", str, required=True)
    workflow = top.get("workflow", str, required=True)
    raw_cases = top.get("cases", (list, str), required=True)
    cases: list[Case] = []
    seen: set[str] = set()
    if isinstance(raw_cases, str):
        for rec in load_cases(raw_cases):
            cases.append(parse_case(Fields(rec, SuiteError), f"line-{rec.base_line}"))
            _check_unique(cases[-1], seen, rec, ())
    else:
        for i, _ in enumerate(raw_cases):
            cases.append(parse_case(Fields(doc, SuiteError, ("cases", i)), f"case-{i + 1}"))
            _check_unique(cases[-1], seen, doc, ("cases", i, "id"))
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
            thresholds[str(metric)] = th.get(str(metric), float)
    return Suite(
        name=name,
        workflow=workflow,
        description=top.get("description", str, ""),
        cases=tuple(cases),
        scorers=tuple(scorers),
        thresholds=thresholds,
        source=doc.source,
    )


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
    return Suite(
        name=content["suite"],
        workflow=content["workflow"],
        description=description,
        cases=cases,
        scorers=scorers,
        thresholds=dict(content.get("thresholds", {})),
    )
