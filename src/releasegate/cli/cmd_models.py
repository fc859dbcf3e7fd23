"""``models check``: installed local models against the blessed list."""

from __future__ import annotations
