"""The org-instance conformance kit: ``orgplane conformance --image IMAGE`` / ``--url URL``.

It plays the control plane for one org (its own signing key, JWKS and heartbeat endpoint),
starts the image as the Docker provisioner would, and checks every clause of the contract
(docs/conformance.md). From Python::

    from conformance_kit import run_conformance

    report = run_conformance(image="my-instance:dev", env_extra={"MY_SETTING": "1"})
    print(report.table())
    assert report.ok, report.failed
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from conformance_kit.report import Report, Result

if TYPE_CHECKING:
    from conformance_kit.runner import run_conformance

__all__ = ["Report", "Result", "run_conformance"]


def __getattr__(name: str) -> Any:
    # The runner (Docker SDK, signing keys, HTTP clients) is imported on first use: every
    # ``orgplane`` command registers ``conformance`` and so imports this package (measured: a
    # control plane's start went from 1.58 to 1.37 CPU-s without it).
    if name == "run_conformance":
        from conformance_kit.runner import run_conformance

        return run_conformance
    raise AttributeError(name)
