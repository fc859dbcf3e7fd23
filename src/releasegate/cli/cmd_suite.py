"""Suite commands beyond ``add-case``: ``suite plan``."""

from __future__ import annotations
