"""Developer commands: ``orgplane login``, ``orgs``, ``switch``, ``token``, ``whoami``, ``logout``.

A login keeps the control plane's URL, the refresh token, the current access token and the
current org's token (see :mod:`control_plane.cli.credentials`). ``orgplane token`` prints a
valid org token for the current org, refreshing the login and exchanging (RFC 8693) as needed,
so ``curl -H "Authorization: Bearer $(orgplane token)" ...`` works. Refresh tokens rotate on
every use, so the stored login is rewritten after each refresh.
"""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx

from control_plane.cli.credentials import Session, credentials_path, exclusive_login
from control_plane.cli.main import CliError

CLIENT_ID = "orgplane"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
#: A cached token is used only while it has at least this many seconds left.
MARGIN_SECONDS = 30
EXPIRED_LOGIN = "your login has expired or was revoked; run `orgplane login --url {url}` again"


def one_at_a_time(
    command: Callable[[argparse.Namespace], None],
) -> Callable[[argparse.Namespace], None]:
    """``command`` run while holding the login (see :func:`exclusive_login`)."""

    def locked(args: argparse.Namespace) -> None:
        with exclusive_login():
            command(args)

    locked.__doc__ = command.__doc__
    return locked


class ControlPlane:
    """HTTP calls to one control plane, with failures turned into clear CLI errors."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.http = httpx.Client(base_url=self.url, timeout=15.0)

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send one request; an unreachable control plane is a CliError."""
        try:
            return self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            reason = str(exc) or type(exc).__name__
            raise CliError(f"cannot reach the control plane at {self.url} ({reason})") from None

    def token_request(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """POST /oauth/token: the status and the JSON answer."""
        answer = self.call("POST", "/oauth/token", data={**form, "client_id": CLIENT_ID})
        return answer.status_code, _json(answer)


def platform_words(plane: ControlPlane) -> dict[str, str]:
    """The platform's word for an org; {} (the default words) from a control plane without it."""
    answer = plane.call("GET", "/api/v1/platform/words")
    if answer.status_code != 200:
        return {}
    try:
        body = answer.json()
    except ValueError:
        return {}
    if not isinstance(body, dict):
        return {}
    return {k: v for k, v in body.items() if isinstance(k, str) and isinstance(v, str)}


def no_current_org(session: Session) -> CliError:
    """The error of a command that needs a current org."""
    one = session.tenant.one
    return CliError(f"no current {one}; run `orgplane switch SLUG` first")


def _json(answer: httpx.Response) -> dict[str, Any]:
    try:
        body = answer.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise CliError(f"unexpected answer from the control plane (HTTP {answer.status_code})")
    return body


def access_token(session: Session, plane: ControlPlane) -> str:
    """A valid access token, refreshing the login (and saving the new refresh token) if due."""
    if session.access_token and session.access_expires_at - time.time() > MARGIN_SECONDS:
        return session.access_token
    status, body = plane.token_request(
        {"grant_type": "refresh_token", "refresh_token": session.refresh_token}
    )
    if status != 200:
        if body.get("error") == "invalid_grant":
            raise CliError(EXPIRED_LOGIN.format(url=session.url))
        raise CliError(f"refreshing the login failed: {body.get('error_description', status)}")
    session.access_token, session.refresh_token = body["access_token"], body["refresh_token"]
    session.access_expires_at = time.time() + int(body["expires_in"])
    session.save()
    return session.access_token


def _exchange(session: Session, plane: ControlPlane, slug: str) -> dict[str, Any]:
    status, body = plane.token_request(
        {
            "grant_type": TOKEN_EXCHANGE,
            "subject_token": access_token(session, plane),
            "subject_token_type": ACCESS_TOKEN_TYPE,
            "audience": f"org:{slug}",
        }
    )
    if status == 200:
        return body
    error, detail = body.get("error"), body.get("error_description", "")
    if error == "invalid_target":
        if detail.startswith("No such org"):
            raise CliError(f"unknown {session.tenant.one} or no access: {slug}")
        raise CliError(f"cannot enter {slug}: {session.tenant.reword(detail)}")
    if error == "invalid_request" and "subject_token" in detail:
        # The access token was refused (user disabled, key retired early): log in again.
        session.access_token, session.access_expires_at = "", 0.0
        session.save()
        raise CliError(EXPIRED_LOGIN.format(url=session.url))
    reason = session.tenant.reword(str(detail or error or status))
    raise CliError(f"switching to {slug} failed: {reason}")


def org_token(session: Session, plane: ControlPlane, slug: str) -> str:
    """A valid token for org ``slug``: the cached one, or a fresh exchange (then cached)."""
    fresh = session.org_token_expires_at - time.time() > MARGIN_SECONDS
    if session.current_org == slug and session.org_token and fresh:
        return session.org_token
    body = _exchange(session, plane, slug)
    session.current_org = slug
    session.org_token = body["access_token"]
    session.org_token_expires_at = time.time() + int(body["expires_in"])
    session.save()
    return session.org_token


def _read_credentials(args: argparse.Namespace) -> tuple[str, str]:
    email = args.email or input("Email: ").strip()
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("Password: ")
    if not email or not password:
        raise CliError("an email and a password are needed")
    return email, password


def cmd_login(args: argparse.Namespace) -> None:
    """Log in with email and password (or ``--sso``: through the browser); keep the refresh
    token."""
    if args.sso:
        from control_plane.cli.sso_login import sso_login

        sso_login(args)
        return
    plane = ControlPlane(args.url)
    email, password = _read_credentials(args)
    form = {"email": email, "password": password, **({"otp": args.otp} if args.otp else {})}
    answer = plane.call("POST", "/api/v1/auth/login", json=form)
    body = _json(answer)
    if answer.status_code == 401 and body.get("code") == "mfa_required":
        # The password was right; the account has two-factor authentication on.
        form["otp"] = input("One-time code: ").strip()
        answer = plane.call("POST", "/api/v1/auth/login", json=form)
        body = _json(answer)
    if answer.status_code == 429:
        retry = answer.headers.get("retry-after", "a few")
        raise CliError(f"too many login attempts; try again in {retry} seconds")
    if answer.status_code != 200:
        raise CliError(f"login failed: {body.get('detail', answer.status_code)}")
    Session(
        url=plane.url,
        email=email.strip().lower(),
        refresh_token=body["refresh_token"],
        access_token=body["access_token"],
        access_expires_at=time.time() + int(body["expires_in"]),
        words=platform_words(plane),
    ).save()
    print(f"logged in to {plane.url} as {email.strip().lower()}")


def cmd_orgs(_: argparse.Namespace) -> None:
    """List my orgs and my role in each; the current one is starred."""
    session = Session.load()
    plane = ControlPlane(session.url)
    headers = {"Authorization": f"Bearer {access_token(session, plane)}"}
    answer = plane.call("GET", "/api/v1/me/orgs", headers=headers)
    if answer.status_code == 404:
        raise CliError(
            f"this control plane does not list {session.tenant.many} (GET /api/v1/me/orgs is "
            "missing); use `orgplane switch SLUG` with a slug you know"
        )
    if answer.status_code == 401:
        raise CliError(EXPIRED_LOGIN.format(url=session.url))
    items = _json(answer).get("items", [])
    if not items:
        print(f"you belong to no {session.tenant.one} yet")
    for org in items:
        mark = "*" if org.get("slug") == session.current_org else " "
        state = " (suspended)" if org.get("suspended") else ""
        print(
            f"{mark} {org.get('slug', ''):<40} {org.get('role', ''):<7} {org.get('name', '')}"
            f"{state}"
        )


def cmd_switch(args: argparse.Namespace) -> None:
    """Make SLUG the current org (checked by getting a token for it)."""
    session = Session.load()
    slug = args.slug.strip().lower()
    session.org_token, session.org_token_expires_at = "", 0.0
    org_token(session, ControlPlane(session.url), slug)
    print(f"switched to {slug}")


def cmd_token(_: argparse.Namespace) -> None:
    """Print a valid org token for the current org."""
    session = Session.load()
    if not session.current_org:
        raise no_current_org(session)
    print(org_token(session, ControlPlane(session.url), session.current_org))


def cmd_whoami(_: argparse.Namespace) -> None:
    """Who I am, where, and in which org."""
    session = Session.load()
    plane = ControlPlane(session.url)
    answer = plane.call(
        "GET", "/api/v1/me", headers={"Authorization": f"Bearer {access_token(session, plane)}"}
    )
    if answer.status_code == 401:
        raise CliError(EXPIRED_LOGIN.format(url=session.url))
    me = _json(answer)
    staff = " (platform admin)" if me.get("is_platform_admin") else ""
    print(f"{me.get('email')}{staff} at {session.url}")
    print(f"current {session.tenant.one}: {session.current_org or '(none)'}")


def cmd_logout(_: argparse.Namespace) -> None:
    """Revoke the refresh token and forget the login."""
    session = Session.load()
    plane = ControlPlane(session.url)
    revoked = True
    try:
        headers = {"Authorization": f"Bearer {access_token(session, plane)}"}
        answer = plane.call(
            "POST",
            "/api/v1/auth/logout",
            headers=headers,
            json={"refresh_token": session.refresh_token},
        )
        revoked = answer.status_code == 200
    except CliError:
        revoked = False
    credentials_path().unlink(missing_ok=True)
    print("logged out" if revoked else "logged out locally (the control plane was not told)")


def register(sub: Any) -> None:
    """Add the developer session commands."""
    login = sub.add_parser("login", help="log in to a control plane")
    login.add_argument("--url", required=True, help="base URL of the control plane")
    login.add_argument("--email", help="the account's email (prompted if missing)")
    login.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from standard input instead of prompting",
    )
    login.add_argument(
        "--otp",
        help="the one-time code (TOTP or recovery code) of an account with two-factor "
        "authentication (prompted when needed if missing)",
    )
    login.add_argument(
        "--sso",
        action="store_true",
        help="log in through the browser (the control plane's sign-in page, any method it "
        "offers), with a loopback redirect to this command",
    )
    login.add_argument(
        "--no-browser",
        action="store_true",
        help="with --sso: print the URL to open instead of opening a browser",
    )
    login.add_argument(
        "--port",
        type=int,
        default=0,
        help="with --sso: the loopback port to receive the browser on (default: any free one)",
    )
    login.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        help="with --sso: seconds to wait for the browser (default 300)",
    )
    login.set_defaults(func=one_at_a_time(cmd_login))
    sub.add_parser("orgs", help="my orgs and roles").set_defaults(func=one_at_a_time(cmd_orgs))
    switch = sub.add_parser("switch", help="make an org the current one")
    switch.add_argument("slug")
    switch.set_defaults(func=one_at_a_time(cmd_switch))
    sub.add_parser("token", help="print a valid token for the current org").set_defaults(
        func=one_at_a_time(cmd_token)
    )
    sub.add_parser("whoami", help="who and where I am").set_defaults(func=one_at_a_time(cmd_whoami))
    sub.add_parser("logout", help="revoke the login and forget it").set_defaults(
        func=one_at_a_time(cmd_logout)
    )
