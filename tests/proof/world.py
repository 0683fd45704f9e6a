"""Two tenants, A and B, on one real control plane: each org has an owner and a member, a real
org instance (``python -m org_instance``) with data in it, and tokens of every kind.

The org's display name and its users' emails are *canaries*: no request ever carries them, so
one appearing in an answer to the other org's identity is a leak, whatever the status.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from control_plane.db.models import Membership, Org
from control_plane.users.service import create_user
from tests.instance.processes import ControlPlane, OrgInstance
from tests.integration.test_instance_cross_org import plant_canaries
from tests.support.api import PASSWORD

#: Tokens outlive a full-size run (the control-plane-down suite is where lifetimes are short).
LONG_TOKENS = {"ORGPLANE_ACCESS_TOKEN_TTL": "7200", "ORGPLANE_ORG_TOKEN_TTL": "7200"}


@dataclass
class Tenant:
    """One org with its people, instance, tokens and planted objects."""

    label: str
    org_id: str
    slug: str
    name: str
    owner_email: str
    member_email: str
    owner_id: str = ""
    member_id: str = ""
    instance: OrgInstance | None = None
    owner_access: str = field(default="", repr=False)
    member_access: str = field(default="", repr=False)
    owner_org_token: str = field(default="", repr=False)
    member_org_token: str = field(default="", repr=False)
    objects: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def hostname(self) -> str:
        assert self.instance is not None
        return self.instance.hostname

    def canaries(self) -> tuple[str, ...]:
        """Values no request carries: seen in an answer to another org, they were leaked."""
        return (self.name, self.owner_email, self.member_email, self.objects.get("canary", ""))

    def identifiers(self) -> tuple[str, ...]:
        """Ids and slug: a leak when answered to another org unless the request carried them."""
        return (self.org_id, self.slug, self.owner_id, self.member_id)


def leaked(tenant: Tenant, answer: str, request_text: str) -> list[str]:
    """The markers of ``tenant`` in ``answer`` that were not an echo of the request."""
    found = [c for c in tenant.canaries() if c and c in answer]
    found += [i for i in tenant.identifiers() if i and i in answer and i not in request_text]
    return found


async def _seed(cp: ControlPlane, label: str) -> Tenant:
    tag = uuid.uuid4().hex[:8]
    slug = f"proof-{label.lower()}-{tag}"
    seeded = await cp.seed_org(slug, f"owner-{tag}@{label.lower()}.proof.test")
    tenant = Tenant(
        label=label,
        org_id=seeded["org_id"],
        slug=slug,
        name=f"Canary Org {label} {tag}",
        owner_email=seeded["email"],
        member_email=f"member-{tag}@{label.lower()}.proof.test",
        objects={"credential": seeded["credential"]},
    )
    engine, db = cp.session()
    try:
        org = await db.get(Org, tenant.org_id)
        assert org is not None
        org.name = tenant.name
        # The largest plan: its rate limit (60,000 a minute) must not answer the fuzzers for
        # the handlers they are meant to reach.
        org.plan = "enterprise"
        member = await create_user(db, email=tenant.member_email, password=PASSWORD)
        db.add(Membership(user_id=member.id, org_id=tenant.org_id, role="member"))
        await db.commit()
        tenant.member_id = member.id
    finally:
        await db.close()
        await engine.dispose()
    return tenant


def login(cp: ControlPlane, email: str) -> tuple[str, str]:
    """A fresh access token of ``email``, and the user's id."""
    answer = httpx.post(
        cp.url + "/api/v1/auth/login", json={"email": email, "password": PASSWORD}, timeout=10
    )
    assert answer.status_code == 200, answer.text
    token = answer.json()["access_token"]
    me = httpx.get(cp.url + "/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    return str(token), str(me.json()["id"])


def _arm(cp: ControlPlane, tenant: Tenant, root: Path) -> None:
    """Start the tenant's instance, log its people in, exchange org tokens, plant data."""
    org = {
        "org_id": tenant.org_id,
        "slug": tenant.slug,
        "email": tenant.owner_email,
        "credential": tenant.objects["credential"],
    }
    tenant.instance = OrgInstance(org, cp, root / tenant.slug)
    tenant.instance.start()
    tenant.owner_access, tenant.owner_id = login(cp, tenant.owner_email)
    tenant.member_access, _ = login(cp, tenant.member_email)
    tenant.owner_org_token = cp.org_token(tenant.owner_email, tenant.slug)
    tenant.member_org_token = cp.org_token(tenant.member_email, tenant.slug)
    planted = plant_canaries(tenant.instance, tenant.owner_org_token, f"canary-{tenant.name}")
    tenant.objects.update(planted)


async def _staff(cp: ControlPlane) -> str:
    """A platform admin (internal staff): every route is open to them; returns the email."""
    email = f"staff-{uuid.uuid4().hex[:8]}@proof.test"
    engine, db = cp.session()
    try:
        await create_user(db, email=email, password=PASSWORD, is_platform_admin=True)
        await db.commit()
    finally:
        await db.close()
        await engine.dispose()
    return email


def staff_token(cp: ControlPlane) -> str:
    """An access token of a new platform admin."""
    return login(cp, asyncio.run(_staff(cp)))[0]


@contextmanager
def two_tenants(root: Path) -> Iterator[tuple[ControlPlane, Tenant, Tenant]]:
    """A control plane (SQLite, no reconciler) with tenants A and B and their instances."""
    cp = ControlPlane(root / "cp", extra_env=dict(LONG_TOKENS))
    cp.data_dir.mkdir(parents=True)
    cp.start()
    tenants: list[Tenant] = []
    try:
        for label in ("A", "B"):
            tenant = asyncio.run(_seed(cp, label))
            tenants.append(tenant)
            _arm(cp, tenant, root)
        yield cp, tenants[0], tenants[1]
    finally:
        for tenant in tenants:
            if tenant.instance is not None:
                tenant.instance.stop()
        cp.stop()
