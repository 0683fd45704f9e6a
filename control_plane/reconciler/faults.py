"""A test hook that makes the control plane exit at a named provisioning step.

``ORGPLANE_FAULT_EXIT_AT=after_apply`` (say) kills the process the first time the reconciler
reaches that step, as a crash would (:mod:`orgplane_wire.faults`); ``ORGPLANE_FAULT_ORG=<slug>``
narrows it to one org, so a test knows which operation the crash interrupted. The crash tests
restart the control plane without it and check that the next pass converges. Never set it in
production.

``ORGPLANE_FAULT_BROKEN_VERSION=<version name>`` makes every instance of that registered
version unable to report: it starts with a credential the control plane refuses, so it never
sends an accepted heartbeat (the staged-rollout tests' broken version on the local backend).
"""

from __future__ import annotations

import os

from orgplane_wire.faults import exit_if_named

FAULT_ENV = "ORGPLANE_FAULT_EXIT_AT"
FAULT_ORG_ENV = "ORGPLANE_FAULT_ORG"
BROKEN_VERSION_ENV = "ORGPLANE_FAULT_BROKEN_VERSION"
STEPS = (
    "after_claim",
    "after_credential",
    "after_redis_user",
    "before_apply",
    "after_apply",
    "after_running",
    "before_remove",
    "after_remove",
    "after_redis_delete",
)


def fault_point(step: str, *, org_slug: str) -> None:
    """Exit the process at once if the fault hook names ``step`` (and this org, if it names one)."""
    if os.environ.get(FAULT_ORG_ENV, org_slug) == org_slug:
        exit_if_named(FAULT_ENV, step, org_slug=org_slug)


def broken_version(version: str) -> bool:
    """Whether the fault hook names ``version`` (a registered version's name) as broken."""
    return bool(version) and os.environ.get(BROKEN_VERSION_ENV) == version
