"""Canonical hostnames, and the property that a generated configuration holds each host once."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from typing import Any

import idna
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import select

from control_plane.auth import Principal
from control_plane.db.models import Domain, Instance, Org, User
from control_plane.routing.domains import add_custom_domain
from control_plane.routing.hostnames import (
    InvalidHostname,
    canonical_hostname,
    claim_subdomain,
    display_hostname,
)
from control_plane.routing.traefik import collect_routes
from control_plane.routing.verify import CheckResult, apply_result
from orgplane_wire.problems import ProblemError
from provisioners.traefik import dynamic_config
from tests.routing.helpers import memory_db
from tests.routing.schemas import validate_dynamic

BASE = "orgs.example.net"


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("Example.COM", "example.com"),
        ("example.com.", "example.com"),
        ("  shop.example.com ", "shop.example.com"),
        ("BÜCHER.example", "xn--bcher-kva.example"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("XN--BCHER-KVA.EXAMPLE.", "xn--bcher-kva.example"),
        ("\uff53\uff48\uff4f\uff50\u3002example\u3002com", "shop.example.com"),  # full-width, 。
        ("faß.de", "xn--fa-hia.de"),  # IDNA 2008: ß is kept, not folded to ss
        ("r3---sn-abc.example", "r3---sn-abc.example"),  # real ASCII names with "--"
    ],
)
def test_canonical_hostname(raw: str, canonical: str) -> None:
    assert canonical_hostname(raw) == canonical


@pytest.mark.parametrize(
    "raw",
    [
        "",
        ".",
        "a..b",
        "exa mple.com",
        "*.example.com",
        "ex_ample.com",
        "-a.example",
        "a-.example",
        "xn--zz.example",
        "192.0.2.1",
        "a" * 64 + ".com",
        ("a" * 62 + ".") * 4 + "com",
        "a/b.com",
    ],
)
def test_what_is_not_a_hostname_is_refused(raw: str) -> None:
    with pytest.raises(InvalidHostname):
        canonical_hostname(raw)


def test_display_hostname_is_unicode() -> None:
    assert display_hostname("xn--bcher-kva.example") == "bücher.example"


# The property: whatever orgs claim, in whatever spelling, the configuration Traefik receives
# names each host once, and exactly the subdomains plus the verified custom domains.

NAMES = [
    "bücher.example",
    "shop.example.com",
    "münchen.de",
    "example.net",
    "straße.de",
    "acme.orgs.example.net",
    "www.beta.orgs.example.net",
    "shop.orgs.example.net",
    "orgs.example.net",
    "xn--mnchen-3ya.de",
]
SLUGS = ["acme", "beta", "gamma", "shop"]


def spell(name: str, variant: str) -> str:
    """One of the many spellings of ``name``."""
    if variant == "upper":
        return name.upper()
    if variant == "dot":
        return name + "."
    if variant == "punycode":
        return idna.encode(name, uts46=True).decode()
    if variant == "fullwidth":
        return "".join(chr(ord(c) + 0xFEE0) if c.isascii() and c.isalpha() else c for c in name)
    return name


claims = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=len(SLUGS) - 1),
        st.sampled_from(NAMES),
        st.sampled_from(["as-is", "upper", "dot", "punycode", "fullwidth"]),
        st.booleans(),
    ),
    max_size=12,
)


async def claim_and_render(
    org_count: int, wanted: list[tuple[int, str, str, bool]]
) -> dict[str, Any]:
    staff = Principal(user=User(email="staff@example.com", password_hash="-"), claims={})
    owners: dict[str, str] = {}
    async with memory_db() as db:
        orgs = [Org(slug=slug, name=slug, phase="running") for slug in SLUGS[:org_count]]
        for org in orgs:
            db.add(org)
            db.add(Instance(org_id=org.id, provisioner="local", endpoint=f"http://{org.slug}:8000"))
            await db.flush()
            await claim_subdomain(db, org=org, base_domain=BASE)
        await db.commit()
        for index, name, variant, verified in wanted:
            org = orgs[index % org_count]
            try:
                domain = await add_custom_domain(
                    db,
                    org=org,
                    hostname=spell(name, variant),
                    base_domain=BASE,
                    reserved=frozenset(),
                    claim_ttl=timedelta(days=7),
                    principal=staff,
                    ip="",
                )
            except ProblemError:
                continue
            if verified:  # by the verification's own rule: the first proof wins
                try:
                    await apply_result(
                        db,
                        domain=domain,
                        org=org,
                        result=CheckResult.VERIFIED,
                        claim_ttl=timedelta(days=7),
                    )
                except ProblemError:
                    continue
                await db.commit()
                owners[domain.hostname] = org.id
        routes = await collect_routes(db, base_domain=BASE)
        verified_hosts = set(
            (
                await db.exec(
                    select(Domain.hostname).where(Domain.kind == "custom", Domain.verified)
                )
            ).all()
        )
    config = dynamic_config(
        routes, entrypoints=["web"], tls=False, cert_resolver="", fallback_url="http://cp:8080"
    )
    return {
        "config": config,
        "owners": owners,
        "verified": verified_hosts,
        "subdomains": {f"{slug}.{BASE}" for slug in SLUGS[:org_count]},
    }


@settings(
    max_examples=30, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(org_count=st.integers(min_value=1, max_value=len(SLUGS)), wanted=claims)
def test_a_configuration_never_holds_a_host_twice(
    org_count: int, wanted: list[tuple[int, str, str, bool]]
) -> None:
    result = asyncio.run(claim_and_render(org_count, wanted))
    config = result["config"]
    validate_dynamic(config)
    hosts = [
        h
        for r in config["http"]["routers"].values()
        for h in re.findall(r"Host\(`([^`]+)`\)", r["rule"])
    ]
    assert len({canonical_hostname(h) for h in hosts}) == len(hosts), hosts
    assert set(hosts) == result["subdomains"] | result["verified"]
    assert all(not h.endswith(BASE) for h in result["owners"])  # never under the base domain
