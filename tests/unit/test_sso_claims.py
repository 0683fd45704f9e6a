"""Claim mapping without services: which claims match a rule, the highest role per org, and
the plan of changes that never touches a membership the provider does not manage."""

from __future__ import annotations

import pytest

from control_plane.db.models import Membership
from control_plane.db.sso_models import ClaimRule
from control_plane.sso.claims import Change, claim_values, granted_roles, plan_changes
from control_plane.sso.oidc import OidcProvider
from control_plane.sso.registry import check_kind, load_provider_class, provider_kinds
from orgplane_wire.problems import BadRequest

CLAIMS = {
    "email": "Ann@Corp.Example",
    "groups": ["eng", "ops", 7],
    "org": {"unit": "research", "level": 3},
    "manager": True,
}


@pytest.mark.parametrize(
    ("path", "values"),
    [
        ("email_domain", {"corp.example"}),
        ("groups", {"eng", "ops"}),
        ("org.unit", {"research"}),
        ("org.level", {"3"}),
        ("manager", {"true"}),
        ("org.missing", set()),
        ("email.domain", set()),
        ("org", set()),
    ],
)
def test_claim_values(path: str, values: set[str]) -> None:
    assert claim_values(CLAIMS, path) == values


def _rule(claim: str, value: str, org: str, role: str = "member") -> ClaimRule:
    return ClaimRule(provider_id="p", claim=claim, value=value, org_id=org, role=role)


def test_the_highest_role_of_the_matching_rules_wins() -> None:
    rules = [
        _rule("groups", "eng", "o1", "admin"),
        _rule("groups", "ops", "o1", "member"),
        _rule("email_domain", "corp.example", "o2"),
        _rule("groups", "sales", "o3", "admin"),
    ]
    assert granted_roles(rules, CLAIMS) == {"o1": "admin", "o2": "member"}


def test_only_the_providers_memberships_change() -> None:
    held = [
        Membership(user_id="u", org_id="managed", role="admin", source="idp:p"),
        Membership(user_id="u", org_id="gone", role="member", source="idp:p"),
        Membership(user_id="u", org_id="manual", role="owner", source=""),
        Membership(user_id="u", org_id="other-idp", role="member", source="idp:q"),
    ]
    granted = {"managed": "member", "manual": "member", "new": "admin", "other-idp": "member"}
    assert plan_changes(granted, held, "p") == [
        Change("managed", "change", "member", "admin"),
        Change("manual", "unmanaged", "member", "owner"),
        Change("new", "add", "admin"),
        Change("gone", "remove", None, "member"),
    ]
    assert plan_changes({}, held[2:], "p") == []


def test_the_oidc_type_is_found_by_name() -> None:
    assert "oidc" in provider_kinds()
    assert load_provider_class("oidc") is OidcProvider
    with pytest.raises(BadRequest) as refused:
        check_kind("saml")
    assert refused.value.code == "unknown_provider_kind"
