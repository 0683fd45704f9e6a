"""Fixtures of the API tests beyond tests/conftest.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.smtp import Mailbox, smtp_server


@pytest.fixture
def smtp() -> Iterator[tuple[int, Mailbox]]:
    """A real SMTP server in the test process: (port, what it received)."""
    with smtp_server() as served:
        yield served
