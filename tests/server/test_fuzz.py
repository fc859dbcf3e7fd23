"""The API fuzzed from its own OpenAPI spec (schemathesis, bounded examples, an admin
token): for input the spec allows and input it does not, the server never answers 5xx,
and every error it answers has the one shape."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable

from tests.server.conftest import Live

schemathesis = pytest.importorskip("schemathesis")

EXAMPLES = 15


def test_no_operation_answers_a_server_error(live: Live) -> None:
    import httpx

    spec = httpx.get(f"{live.url}/openapi.json").json()
    schema = schemathesis.openapi.from_dict(spec)
    headers = {"Authorization": f"Bearer {live.tokens['admin']}"}
    tried = 0
    for mode, result in itertools.product(
        schemathesis.GenerationMode, list(schema.get_all_operations())
    ):
        operation = result.ok()

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: object) -> None:
            response = case.call(base_url=live.url, headers=headers)  # type: ignore[attr-defined]
            assert response.status_code < 500, (case, response.text)
            if response.status_code >= 400:
                body = response.json()
                assert body["ok"] is False and body["status"] == response.status_code

        try:
            check()
        except Unsatisfiable:  # nothing to make invalid: an operation without parameters
            assert mode == schemathesis.GenerationMode.NEGATIVE
            continue
        tried += 1
    assert tried >= 35  # every operation with valid input, most with invalid input too
