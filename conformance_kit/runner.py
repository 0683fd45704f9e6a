"""``run_conformance``: one run of the kit against an image (or a running server's URL)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from urllib.parse import urlsplit

import httpx
from docker.errors import DockerException

from conformance_kit.container import KitContainer
from conformance_kit.defaults import DEFAULT_INTERVAL, DEFAULT_PATH
from conformance_kit.fake_cp import JWKS_PATH, FakeControlPlane
from conformance_kit.heartbeats import NO_BEAT, check_backoff, check_heartbeats
from conformance_kit.http_checks import Target, check_http
from conformance_kit.lifecycle import STOP_DEADLINE, check_restart, check_stop
from conformance_kit.redis_check import RedisNamespace
from conformance_kit.report import Report
from conformance_kit.signer import Signer
from orgplane_wire.contract import Env, org_audience
from provisioners.base import instance_env

SLUG = "conformance"
#: The instance is started with this interval; the kit's answers then set the short one.
START_INTERVAL = 2.0


def url_env(
    *, org_id: str, jwks_host: str, jwks_port: int, hostnames: tuple[str, ...]
) -> dict[str, str]:
    """What a server checked with ``--url`` must be configured with (the kit's JWKS)."""
    issuer = f"http://{jwks_host}:{jwks_port}"
    return {
        Env.ORG_ID: org_id,
        Env.JWKS_URL: issuer + JWKS_PATH,
        Env.ISSUER: issuer,
        Env.AUDIENCE: org_audience(org_id),
        Env.HOSTNAMES: ",".join(hostnames),
    }


def run_conformance(
    *,
    image: str = "",
    url: str = "",
    env_extra: Mapping[str, str] | None = None,
    org_id: str = "",
    path: str = DEFAULT_PATH,
    hostnames: tuple[str, ...] = (),
    interval: float = DEFAULT_INTERVAL,
    outage: float = 8.0,
    start_timeout: float = 60.0,
    first_beat_timeout: float = 20.0,
    stop_deadline: float = STOP_DEADLINE,
    redis_url: str = "",
    redis_host: str = "",
    redis_network: str = "",
    jwks_host: str = "127.0.0.1",
    jwks_port: int = 0,
    cp_port: int = 0,
) -> Report:
    """Check ``image`` (started as the Docker provisioner would) or the server at ``url``
    against the org-instance contract; see docs/conformance.md for every clause."""
    if bool(image) == bool(url):
        raise ValueError("give exactly one of image and url")
    if url:
        if not jwks_port:
            raise ValueError("a run against a URL needs jwks_port: the server's JWKS URL")
        return _run_url(
            url=url,
            org_id=org_id or "conformance",
            path=path,
            hostnames=hostnames or (str(urlsplit(url).hostname),),
            jwks_host=jwks_host,
            jwks_port=jwks_port,
            start_timeout=start_timeout,
        )
    run_id = secrets.token_hex(4)
    report = Report(target=f"image {image}")
    try:
        box = KitContainer(run_id=run_id, image=image)
    except DockerException as exc:
        report.add("kit.run", "the kit can reach a Docker engine", False, f"{exc}"[:300])
        return report
    try:
        _run_image(
            report,
            box,
            org_id=org_id or f"kit-{run_id}",
            env_extra=dict(env_extra or {}),
            path=path,
            hostnames=hostnames or (f"{SLUG}-{run_id}.orgplane.test",),
            interval=interval,
            outage=outage,
            start_timeout=start_timeout,
            first_beat_timeout=first_beat_timeout,
            stop_deadline=stop_deadline,
            redis=RedisNamespace(redis_url, instance_host=redis_host) if redis_url else None,
            redis_network=redis_network,
            cp_port=cp_port,
        )
    except Exception as exc:  # the report says what broke; the kit cleans up either way
        report.add(
            "kit.run", "the kit could run every check", False, f"{type(exc).__name__}: {exc}"
        )
    finally:
        if report.failed and box.container is not None:
            report.notes.append("The end of the instance's log:\n" + box.logs(tail=30))
        box.close()
    return report


def _run_image(
    report: Report,
    box: KitContainer,
    *,
    org_id: str,
    env_extra: dict[str, str],
    path: str,
    hostnames: tuple[str, ...],
    interval: float,
    outage: float,
    start_timeout: float,
    first_beat_timeout: float,
    stop_deadline: float,
    redis: RedisNamespace | None,
    redis_network: str,
    cp_port: int,
) -> None:
    reserved = box.reserved_labels()
    report.add(
        "image.labels",
        "the image carries no label only the platform sets (traefik.*, orgplane.*)",
        not reserved,
        f"reserved labels: {', '.join(reserved)}" if reserved else "none",
    )
    credential = secrets.token_urlsafe(32)
    fake = FakeControlPlane(
        jwks={}, credential=credential, interval=interval, host=box.gateway, port=cp_port
    )
    with fake as cp:
        signer = Signer.create(issuer=cp.base_url, org_id=org_id, org_slug=SLUG)
        cp.jwks = signer.jwks()
        env = instance_env(
            org_id=org_id,
            slug=SLUG,
            instance_id=f"{box.name}-1",
            control_plane_url=cp.base_url,
            credential=credential,
            redis_url=redis.create_user(org_id) if redis else "",
            hostnames=hostnames,
            heartbeat_interval=START_INTERVAL,
        )
        since = time.monotonic()
        box.start(org_id=org_id, slug=SLUG, env={**env, **env_extra}, extra_network=redis_network)
        target = Target(box.endpoint(), hostnames, box.name, path)
        with httpx.Client(timeout=5.0) as client:
            check_http(report, client, target, signer, timeout=start_timeout)
        stopped = box.not_running()
        if stopped:  # nothing more to check, and no sense waiting for heartbeats
            report.add("container.running", "the container keeps running", False, stopped)
            return
        beating = check_heartbeats(
            report,
            cp,
            org_id=org_id,
            instance_id=f"{box.name}-1",
            since=since,
            first_timeout=first_beat_timeout,
        )
        if beating:
            check_backoff(report, cp, outage=outage)
        else:
            for clause in ("backoff", "recovery"):
                report.add(f"heartbeat.{clause}", "see heartbeat.arrival", False, NO_BEAT)
        if redis:
            redis.check(report, cp, org_id=org_id)
        check_restart(
            report,
            box,
            cp,
            timeout=start_timeout,
            heartbeats=beating,
            stop_deadline=stop_deadline,
        )
        check_stop(report, box, deadline=stop_deadline)


def _run_url(
    *,
    url: str,
    org_id: str,
    path: str,
    hostnames: tuple[str, ...],
    jwks_host: str,
    jwks_port: int,
    start_timeout: float,
) -> Report:
    report = Report(target=f"server {url}")
    env = url_env(org_id=org_id, jwks_host=jwks_host, jwks_port=jwks_port, hostnames=hostnames)
    fake = FakeControlPlane(
        jwks={}, credential=secrets.token_urlsafe(32), interval=1.0, host=jwks_host, port=jwks_port
    )
    with fake as cp:
        signer = Signer.create(issuer=env[Env.ISSUER], org_id=org_id, org_slug=SLUG)
        cp.jwks = signer.jwks()
        target = Target(url.rstrip("/"), hostnames, str(urlsplit(url).hostname), path)
        with httpx.Client(timeout=5.0) as client:
            check_http(report, client, target, signer, timeout=start_timeout)
    return report
