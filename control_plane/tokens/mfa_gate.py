"""Entering an org with a second factor: orgs that require MFA, and staff support access.

The subject token says how its sign-in was authenticated (RFC 8176 ``amr``): an access token
in its ``amr`` claim (kept across refreshes), a personal access token in what the session it
was made in carried. Without a second factor there (``otp``, or a passkey's ``hwk`` or ``swk``:
:data:`SECOND_FACTORS`), the exchange refuses

* any entry into an org with ``require_mfa`` (``orgplane_code`` ``mfa_required``), and
* every staff entry (``staff_mfa_required``): support access acts as an admin in someone
  else's org, so it always needs the stronger sign-in.

The same ``amr`` says whether the sign-in went through an identity provider (``fed``): a
member's entry into an org that requires single sign-on needs it (``sso_required``), so a
password session or a personal token made in one, opened before the org turned the requirement
on, stops entering the org at once rather than when it expires. Platform admins keep the
password as the way back in (``control_plane.sso.require``), and staff entries follow the
support-access rules instead.
"""

from __future__ import annotations

from typing import Any, Final

from control_plane.db.models import Org, PersonalToken
from control_plane.tokens.grants import OAuthError

SECOND_FACTOR: Final = "otp"
#: The ``amr`` value of a sign-in made through an identity provider (``control_plane.sso``).
FEDERATED: Final = "fed"
#: RFC 8176 methods that are a second factor: a one-time code, or proof of possession of a
#: passkey's key (hardware- or software-secured).
SECOND_FACTORS: Final = frozenset({SECOND_FACTOR, "hwk", "swk"})


def has_second_factor(amr: list[str]) -> bool:
    """Whether a sign-in with these ``amr`` values used a second factor."""
    return not SECOND_FACTORS.isdisjoint(amr)


def check_sso(org: Org, amr: list[str], *, platform_admin: bool) -> None:
    """Refuse a member's entry into an org requiring SSO without a federated sign-in."""
    if org.require_sso and not platform_admin and FEDERATED not in amr:
        raise OAuthError(
            "invalid_target",
            "This org requires single sign-on: sign in with your identity provider.",
            orgplane_code="sso_required",
        )


def subject_amr(claims: dict[str, Any] | None, personal: PersonalToken | None) -> list[str]:
    """The ``amr`` values of the exchange's subject token (``["pwd"]`` when it names none)."""
    if personal is not None:
        return personal.amr.split() or ["pwd"]
    amr = (claims or {}).get("amr")
    if isinstance(amr, list) and all(isinstance(m, str) for m in amr) and amr:
        return list(amr)
    return ["pwd"]


def check_mfa(org: Org, amr: list[str], *, staff: bool) -> None:
    """Refuse an entry that needs a second factor the subject's sign-in did not use."""
    if has_second_factor(amr):
        return
    if staff:
        raise OAuthError(
            "invalid_target",
            "Support access needs a sign-in with a second factor: turn on two-factor "
            "authentication (POST /api/v1/me/mfa/totp) and sign in with a one-time code.",
            orgplane_code="staff_mfa_required",
        )
    if org.require_mfa:
        raise OAuthError(
            "invalid_target",
            "This org requires two-factor authentication: sign in with a one-time code "
            "(turn it on with POST /api/v1/me/mfa/totp first).",
            orgplane_code="mfa_required",
        )
