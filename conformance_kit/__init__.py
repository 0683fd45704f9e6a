"""The org-instance conformance kit: ``orgplane conformance --image IMAGE`` / ``--url URL``.

It plays the control plane for one org (its own signing key, JWKS and heartbeat endpoint),
starts the image as the Docker provisioner would, and checks every clause of the contract
(docs/conformance.md). From Python::

    from conformance_kit import run_conformance

    report = run_conformance(image="my-instance:dev", env_extra={"MY_SETTING": "1"})
    print(report.table())
    assert report.ok, report.failed
"""

from conformance_kit.report import Report, Result
from conformance_kit.runner import run_conformance

__all__ = ["Report", "Result", "run_conformance"]
