"""Talking to an org instance's ``/internal/*`` backup routes.

The instance is the only thing that can reach its data on every backend (a local directory, a
Docker volume, a Kubernetes PVC), so archives travel through it. Each call carries a JWT signed
with the active signing key for *that* org's audience, subject ``orgplane:control-plane`` and
the operation's scope, valid for a minute; the instance verifies it against the JWKS like any
org token, so an instance refuses a token minted for another org.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final

import httpx
import structlog
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.db.models import Instance, Org
from control_plane.db.phases import OrgPhase
from control_plane.logs import forwarded_request_id
from control_plane.runtime import Runtime
from control_plane.signing.jws import sign
from orgplane_wire.backup.manifest import TOO_LARGE
from orgplane_wire.backup.protocol import (
    BACKUP_PATH,
    CONTROL_PLANE_SUBJECT,
    RESTORE_PATH,
)
from orgplane_wire.contract import org_audience
from orgplane_wire.problems import Conflict, ProblemError

log = structlog.get_logger("orgplane.backups")

INTERNAL_TOKEN_TTL: Final = 60
TIMEOUT: Final = httpx.Timeout(30.0, read=900.0)


class InstanceUnavailable(ProblemError):
    status, code, title = 503, "instance_unreachable", "Instance unreachable"


class RestoreRefused(ProblemError):
    status, code, title = 422, "restore_refused", "Restore refused"


class RestoreTooLarge(ProblemError):
    """The instance refused an archive over a bound: its size, or the org's storage quota."""

    status, code, title = 413, "archive_too_large", "Archive too large"


async def internal_token(runtime: Runtime, db: AsyncSession, *, org: Org, scope: str) -> str:
    """A one-minute token for ``org``'s instance allowing ``scope``."""
    claims: dict[str, Any] = {
        "iss": runtime.issuer,
        "sub": CONTROL_PLANE_SUBJECT,
        "aud": org_audience(org.id),
        "client_id": "orgplane-control-plane",
        "scope": scope,
        "org_id": org.id,
        "org_slug": org.slug,
        # The instance requires a role on every token; the least one, in case it leaks.
        "org_role": "member",
    }
    token, _ = sign(claims, await runtime.keyring.signing_key(db), ttl=INTERNAL_TOKEN_TTL)
    return token


async def running_endpoint(db: AsyncSession, org: Org) -> str:
    """The URL of ``org``'s instance, or 409 ``instance_not_running``."""
    instance = await db.get(Instance, org.id)
    if (
        org.phase not in (OrgPhase.RUNNING, OrgPhase.UNHEALTHY)
        or instance is None
        or not instance.endpoint
    ):
        raise Conflict(
            "The org's instance is not running; start it first.", code="instance_not_running"
        )
    return instance.endpoint.rstrip("/")


def _refusal(response: httpx.Response, *, what: str) -> ProblemError:
    try:
        body = response.json()
        code = str(body.get("code", ""))[:64] or "restore_refused"
        detail = str(body.get("detail", ""))[:500]
    except ValueError:
        code, detail = "", ""
    if response.status_code == 422:
        return RestoreRefused(detail or f"The instance refused the {what}.", code=code)
    if response.status_code == 409:
        return Conflict(detail or "The instance is busy.", code=code or "backup_busy")
    if response.status_code == 413:
        return RestoreTooLarge(
            detail or "The archive is too large.",
            code=code if code in TOO_LARGE else "archive_too_large",
        )
    log.warning("instance answered an internal call", status=response.status_code, what=what)
    return InstanceUnavailable(
        f"The instance could not complete the {what} ({response.status_code}).",
        code=code if response.status_code == 503 and code else "instance_unreachable",
    )


@asynccontextmanager
async def backup_stream(*, endpoint: str, token: str) -> AsyncIterator[httpx.Response]:
    """The instance's answer to ``POST /internal/backup``, status 200, body not yet read."""
    try:
        async with (
            httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False) as http,
            http.stream(
                "POST",
                endpoint + BACKUP_PATH,
                headers={"Authorization": f"Bearer {token}", **forwarded_request_id()},
            ) as response,
        ):
            if response.status_code != 200:
                await response.aread()
                raise _refusal(response, what="backup")
            yield response
    except httpx.HTTPError as exc:
        raise InstanceUnavailable(
            f"The instance did not answer the backup ({type(exc).__name__})."
        ) from None


async def send_restore(
    *, endpoint: str, token: str, chunks: AsyncIterator[bytes], size: int
) -> dict[str, Any]:
    """Send the archive (``size`` bytes, as ``chunks``) to ``POST /internal/restore``; the
    instance's answer on success."""
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False) as http:
            response = await http.post(
                endpoint + RESTORE_PATH,
                content=chunks,
                headers={
                    "Authorization": f"Bearer {token}",
                    "Content-Type": "application/gzip",
                    "Content-Length": str(size),
                    **forwarded_request_id(),
                },
            )
    except httpx.HTTPError as exc:
        raise InstanceUnavailable(
            "The instance stopped answering during the restore "
            f"({type(exc).__name__}); it rolls back an unfinished restore when it starts again.",
            code="restore_interrupted",
        ) from None
    if response.status_code != 200:
        raise _refusal(response, what="restore")
    answer: dict[str, Any] = response.json()
    return answer
