"""The production side: ``runs import``, ``monitor``, ``report memo``."""

from __future__ import annotations
