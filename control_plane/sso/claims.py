"""Claim mapping: which memberships a provider's rules give a set of claims, and what that
changes for a user. Pure functions: no database, no clock.

A rule names a claim by a dotted path into the claims (``groups``, ``org.department``) or the
pseudo-claim ``email_domain`` (the part of ``email`` after the ``@``, lower case). A claim
holding a string matches a rule whose value equals it; a list matches when one of its strings
does. Several matching rules for one org give the highest of their roles.

Only memberships the provider manages (``source`` = ``idp:<provider id>``) are changed or
removed; a membership granted in orgplane (an invite, an admin, the org's creator) or managed by
another provider is left as it is, even when the rules would give another role.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from control_plane.db.models import Membership
from control_plane.db.sso_models import ClaimRule

EMAIL_DOMAIN: Final = "email_domain"
#: Roles a rule may give (never ``owner``: an org's owners are chosen in orgplane).
RULE_ROLES: Final = ("member", "admin")
_RANK: Final = {role: n for n, role in enumerate(RULE_ROLES)}

Action = Literal["add", "change", "remove", "unmanaged"]


def source_of(provider_id: str) -> str:
    """The ``Membership.source`` of memberships the provider manages."""
    return f"idp:{provider_id}"


def claim_values(claims: Mapping[str, Any], path: str) -> set[str]:
    """The strings at ``path`` in ``claims`` (empty when absent or of another type)."""
    if path == EMAIL_DOMAIN:
        email = claims.get("email")
        if isinstance(email, str) and "@" in email:
            return {email.rsplit("@", 1)[1].strip().lower()}
        return set()
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return set()
        value = value[part]
    if isinstance(value, str):
        return {value}
    if isinstance(value, list):
        return {item for item in value if isinstance(item, str)}
    if isinstance(value, bool | int):
        return {str(value).lower()}
    return set()


def granted_roles(rules: Iterable[ClaimRule], claims: Mapping[str, Any]) -> dict[str, str]:
    """{org id: role} the rules give these claims (the highest role per org)."""
    granted: dict[str, str] = {}
    for rule in rules:
        if rule.value in claim_values(claims, rule.claim):
            held = granted.get(rule.org_id)
            if held is None or _RANK[rule.role] > _RANK[held]:
                granted[rule.org_id] = rule.role
    return granted


@dataclass(frozen=True)
class Change:
    """One membership the sign-in adds, changes or removes (or would, but does not own)."""

    org_id: str
    action: Action
    role: str | None
    previous_role: str | None = None


def plan_changes(
    granted: Mapping[str, str], current: Iterable[Membership], provider_id: str
) -> list[Change]:
    """What a sign-in changes: ``granted`` (from :func:`granted_roles`) against the user's
    ``current`` memberships. ``unmanaged``: the rules give a role in an org where the user's
    membership is not the provider's; it is kept as it is."""
    source = source_of(provider_id)
    held = {m.org_id: m for m in current}
    changes: list[Change] = []
    for org_id, role in sorted(granted.items()):
        membership = held.get(org_id)
        if membership is None:
            changes.append(Change(org_id, "add", role))
        elif membership.source != source:
            if membership.role != role:
                changes.append(Change(org_id, "unmanaged", role, membership.role))
        elif membership.role != role:
            changes.append(Change(org_id, "change", role, membership.role))
    for org_id, membership in sorted(held.items()):
        if membership.source == source and org_id not in granted:
            changes.append(Change(org_id, "remove", None, membership.role))
    return changes
