"""Log lines go to the stderr of the moment they are written, not of the configuration.

Seen before the fix in a full run: an org instance app made in-process while a test had swapped
``sys.stderr`` (pytest's ``capsys`` closes its stream afterwards) kept that stream in its
cached loggers, and a later test's request failed with "I/O operation on closed file" when the
instance logged a refused Host. Run against the old code, this test failed the same way.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator

import pytest
import structlog

from orgplane_wire.logs import configure_logging


@pytest.fixture
def restore_logging() -> Iterator[None]:
    yield
    structlog.reset_defaults()


def test_a_stream_swapped_at_configuration_is_not_kept(
    monkeypatch: pytest.MonkeyPatch, restore_logging: None
) -> None:
    swapped = io.StringIO()
    monkeypatch.setattr(sys, "stderr", swapped)
    configure_logging(fmt="json", bound={"org_id": "o1"}, cache_loggers=True)
    logger = structlog.get_logger("orgplane.test")
    logger.warning("while swapped")
    assert "while swapped" in swapped.getvalue()
    swapped.close()
    after = io.StringIO()
    monkeypatch.setattr(sys, "stderr", after)
    logger.warning("after the swap")
    assert "after the swap" in after.getvalue()
