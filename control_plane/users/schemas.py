"""Request and response bodies of the identity API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from control_plane.db.models import User

Email = Annotated[str, msgspec.Meta(min_length=3, max_length=320)]
Password = Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
Name = Annotated[str, msgspec.Meta(max_length=200)]


class Strict(msgspec.Struct, forbid_unknown_fields=True):
    """Bodies refuse fields they do not know."""


OneTimeCode = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class LoginBody(Strict):
    email: Email
    password: Password
    #: With MFA on: the current TOTP code, or a recovery code.
    otp: OneTimeCode | None = None


class ConfirmBody(Strict):
    """The first code of a new TOTP secret."""

    code: OneTimeCode


class SecondFactorBody(Strict):
    """Re-authentication with both factors (turning MFA off, new recovery codes)."""

    password: Password
    #: The current TOTP code, or a recovery code.
    code: OneTimeCode


class MfaResetBody(Strict):
    """A platform admin turning off someone's MFA."""

    #: Why (for the audit log): e.g. how the person's identity was checked.
    reason: Annotated[str, msgspec.Meta(min_length=3, max_length=500, pattern=r"\S")]


class SignupBody(Strict):
    email: Email
    password: Password
    name: Name = ""
    #: An invite sent to ``email``: accepted with the sign-up, or nothing is created.
    invite_token: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None


class CreateUserBody(Strict):
    email: Email
    password: Password
    name: Name = ""
    is_platform_admin: bool = False


class UpdateUserBody(Strict):
    name: Name | None = None
    disabled: bool | None = None
    is_platform_admin: bool | None = None


class ChangePasswordBody(Strict):
    current_password: Password
    new_password: Password


class LogoutBody(Strict):
    refresh_token: Annotated[str, msgspec.Meta(max_length=200)] | None = None


class TokenAnswer(msgspec.Struct):
    access_token: str
    token_type: str
    expires_in: int
    refresh_token: str


class UserOut(msgspec.Struct):
    id: str
    email: str
    name: str
    is_platform_admin: bool
    disabled: bool
    created_at: datetime
    #: False for an account that signed up and has not followed its verification link yet.
    email_verified: bool = True
    #: Whether the user signs in with a second factor (TOTP).
    mfa_enabled: bool = False

    @classmethod
    def of(cls, user: User) -> UserOut:
        """The public view of ``user`` (never the password hash)."""
        return cls(
            id=user.id,
            email=user.email,
            name=user.name,
            is_platform_admin=user.is_platform_admin,
            disabled=user.disabled,
            created_at=user.created_at,
            email_verified=user.email_verified_at is not None,
            mfa_enabled=user.totp_enabled_at is not None,
        )


class ResetRequestBody(Strict):
    email: Email


class ResetPasswordBody(Strict):
    token: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    new_password: Password


class VerifyEmailBody(Strict):
    token: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class ChangeEmailBody(Strict):
    email: Email
    password: Password
