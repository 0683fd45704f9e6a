"""The SDKs' example instances pass the conformance kit, clause for clause, as orgplane's own
instance does (tests/conformance_kit/test_instance_image.py): what a team that starts from an
SDK gets is an image the kit accepts."""

from __future__ import annotations

from typing import Any

import pytest

from conformance_kit import run_conformance
from tests.conformance_kit.test_instance_image import IMAGE_CLAUSES

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def _passes(image: str) -> None:
    report = run_conformance(image=image)
    assert [r.clause for r in report.results] == IMAGE_CLAUSES, report.table()
    assert report.ok, report.table()


def test_the_python_example_passes_the_kit(example_python_image: str) -> None:
    _passes(example_python_image)


def test_the_javascript_example_passes_the_kit(example_js_image: Any) -> None:
    from tests.sdk.conftest import EXAMPLE_JS_IMAGE

    _passes(EXAMPLE_JS_IMAGE)
