"""Fixtures shared by test modules in several folders.

As a conftest.py outside a package, this file also puts tests/ on ``sys.path`` (pytest's default import
mode), so test modules anywhere below import the shared code in tests/helpers/ as ``helpers``.
"""

from __future__ import annotations

import pytest

from helpers.signals import fallback_handlers as _fallback_handlers


@pytest.fixture
def fallback_handlers():
    """SIGINT and SIGTERM raise ``helpers.signals.Fallback`` while the test runs (a module that sends itself signals
    uses it for every test: ``pytestmark = pytest.mark.usefixtures("fallback_handlers")``)."""
    with _fallback_handlers() as fallback:
        yield fallback
