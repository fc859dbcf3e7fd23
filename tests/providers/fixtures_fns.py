"""Functions the python provider tests name as 'tests.providers.fixtures_fns:...'."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from releasegate.domain.results import CaseOutput


def shout(case_input: str) -> str:
    return case_input.upper()


async def route_async(case_input: Mapping[str, Any]) -> dict[str, Any]:
    await asyncio.sleep(0)
    label = "fraud_report" if "not me" in case_input["message"] else "complaint"
    return {"label": label, "confidence": 0.9}


def with_manifest(case_input: str, manifest: Mapping[str, Any]) -> dict[str, Any]:
    return {"text": f"{manifest['prompts']['system']}: {case_input}"}


def no_text(case_input: str) -> dict[str, Any]:
    return {"score": 3, "words": case_input.split()}


def full_output(case_input: str) -> CaseOutput:
    return CaseOutput(text="done", tokens_in=7, tokens_out=1, cost_usd=0.002)


def boom(case_input: str) -> str:
    raise ValueError(f"cannot handle {case_input!r}")


async def boom_async(case_input: str) -> str:
    raise RuntimeError("upstream timed out")


NOT_CALLABLE = 42
