"""Experiments' retention: parsed from workflow metadata, and when an experiment expires."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from releasegate.domain.document import Document, Fields
from releasegate.domain.experiments import Retention, parse_experiments
from releasegate.errors import ManifestError

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def parsed(value: object) -> Retention:
    doc = Document(data={"experiments": value}, source="wf.yaml", lines={("experiments",): 7})
    return parse_experiments(Fields(doc, ManifestError).sub("experiments"))


@pytest.mark.parametrize(
    ("days", "age", "expired"),
    [
        (14, timedelta(days=13, hours=23), False),
        (14, timedelta(days=14), True),
        (1, timedelta(days=2), True),
        (None, timedelta(days=10_000), False),  # no window: experiments never expire
    ],
)
def test_an_experiment_expires_once_its_window_has_passed(
    days: int | None, age: timedelta, expired: bool
) -> None:
    retention = Retention(days)
    assert retention.is_expired(T0, T0 + age) is expired
    assert retention.expires_at(T0) == (None if days is None else T0 + timedelta(days=days))


def test_retention_days_is_parsed() -> None:
    assert parsed({"retention_days": 14}) == Retention(14)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"retention_days": 0}, "whole number of days from 1"),
        ({"retention_days": -3}, "whole number of days from 1"),
        ({"retention_days": "14"}, "expected an integer"),
        ({"retention_days": True}, "expected an integer"),
        ({"retention_days": 1.5}, "expected an integer"),
        ({}, "is required"),
        ({"retention_days": 14, "keep": 1}, "unknown field 'keep'"),
    ],
)
def test_a_bad_retention_names_the_field(value: object, message: str) -> None:
    with pytest.raises(ManifestError, match=message) as err:
        parsed(value)
    assert err.value.source == "wf.yaml" and err.value.line == 7
    assert str(err.value.field).startswith("experiments")
