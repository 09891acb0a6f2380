"""Reviewers of the session's Argilla: annotators of the review workspace, created once."""

from __future__ import annotations

import pytest

from tests.support.argilla import add_reviewer
from twin_lib.settings import TwinSettings


@pytest.fixture(scope="session")
def reviewers(argilla_stack: TwinSettings) -> list[str]:
    """The API keys of two annotators, ``reviewer-ana`` and ``reviewer-bo``."""
    return [add_reviewer(argilla_stack, name) for name in ("reviewer-ana", "reviewer-bo")]
