"""Data classes: how sensitive the data a workflow handles is.

A workflow file says ``data_class: public | internal | confidential | restricted``
(metadata, never in a version id; ``internal`` when it says nothing).
"""

from __future__ import annotations

from releasegate.domain.document import Fields

DATA_CLASSES = ("public", "internal", "confidential", "restricted")
DEFAULT_DATA_CLASS = "internal"


def parse_data_class(f: Fields, key: str = "data_class") -> str:
    value = str(f.get(key, str, DEFAULT_DATA_CLASS))
    if value not in DATA_CLASSES:
        f.fail(key, f"unknown data class '{value}'", hint="one of: " + ", ".join(DATA_CLASSES))
    return value
