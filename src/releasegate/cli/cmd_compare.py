"""``compare``: a pairwise judge between two versions on the same cases."""

from __future__ import annotations
