"""Tests that print letters need the fonts the letters name (Korean: Debian's
fonts-noto-cjk, which the README's CI script installs). Without them a letter
is refused loudly (channels.letters.MissingFont), so these tests skip, saying why."""

from __future__ import annotations

import pytest

from channels.letters import font_problem

_PROBLEM = font_problem("ko")
needs_letter_fonts = pytest.mark.skipif(_PROBLEM is not None, reason=f"{_PROBLEM}; .ci/run installs it")


def require_letter_fonts() -> None:
    if _PROBLEM is not None:
        pytest.skip(f"{_PROBLEM}; .ci/run installs it")
