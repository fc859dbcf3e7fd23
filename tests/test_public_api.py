"""The SDK surface is what ``__all__`` says, sorted, and every name resolves."""

from __future__ import annotations

import releasegate


def test_all_is_sorted_and_every_name_resolves() -> None:
    assert releasegate.__all__ == sorted(releasegate.__all__)
    for name in releasegate.__all__:
        assert getattr(releasegate, name) is not None, name


def test_importing_releasegate_is_cheap() -> None:
    import subprocess
    import sys

    code = "import releasegate, sys; print('numpy' in sys.modules, 'sqlalchemy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
