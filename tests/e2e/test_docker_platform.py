"""End to end on a real Docker engine: the proof that the parts fit.

The control plane runs from its image in production mode (SQLite on a volume, Redis with ACLs,
the ``docker`` provisioner on the host's engine); three orgs are created through its API and run
as containers of the instance image on the run's network (the first one a claimed warm-pool
spare). A user switches into each org by token exchange and uses its instance at its network
address with its Host header; no org's token or Host is accepted by another org's instance; a
restart of the control plane does not interrupt the instances; containers removed or stopped by
hand are brought back with their data; deleting the orgs leaves no container, volume or Redis
user behind.

Each phase's duration is printed (docs/performance.md quotes them).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import httpx
import jwt
import pytest

from tests.e2e.api import ControlPlane, Org
from tests.e2e.platform import ADMIN_EMAIL, BASE_DOMAIN, PUBLIC_URL, DockerPlatform
from tests.support.wait import WaitTimeout, wait_until

pytestmark = [pytest.mark.docker, pytest.mark.slow]

SLUGS = ("alpha", "bravo", "charlie")
RUNNING_TIMEOUT = 90.0
RESTART_TIMEOUT = 60.0
DELETE_TIMEOUT = 60.0


class PhaseTimer:
    """Wall-clock seconds of each named phase, in order."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(time.perf_counter() - started, 2)

    def since(self, name: str, started: float) -> None:
        """Record a step inside a phase: seconds from ``started`` (``perf_counter``) to now."""
        self.seconds[f"  {name}"] = round(time.perf_counter() - started, 2)

    def table(self) -> str:
        rows = [f"  {name:<34} {seconds:7.2f} s" for name, seconds in self.seconds.items()]
        return "\n".join(["e2e docker platform, seconds per phase:", *rows])


def test_three_orgs_run_isolated_survive_a_restart_and_leave_nothing(
    platform: DockerPlatform, capsys: pytest.CaptureFixture[str], record_property: Any
) -> None:
    timer = PhaseTimer()
    try:
        with timer("start (redis, migrate, serve)"):
            platform.start()
        cp = ControlPlane(platform.control_plane_url, reach=platform.reachable)
        cp.login(ADMIN_EMAIL, platform.admin_password)
        with timer("warm spare ready"):
            cp.wait_pool_ready(timeout=RUNNING_TIMEOUT, why=platform.logs)
        with timer("three orgs to running"):
            orgs = [cp.create_org(slug, BASE_DOMAIN) for slug in SLUGS]
            cp.wait_running(orgs, timeout=RUNNING_TIMEOUT, why=platform.logs)
        kinds = {e["kind"] for e in cp.instance(orgs[0])["events"]}
        assert "pool.assigned" in kinds, kinds  # alpha is a claimed spare; the others cold
        with timer("exchange, use, isolation"):
            use_each_org_and_check_isolation(cp, orgs, platform)
        with timer("control-plane restart"):
            cp = restart_keeps_instances_serving(cp, orgs, platform, timer)
        with timer("drift repaired (removed, stopped by hand)"):
            drift_is_repaired(cp, orgs, platform, timer)
        with timer("delete to nothing left"):
            delete_leaves_nothing(cp, orgs, platform)
        cp.close()
    finally:
        with timer("teardown"):
            platform.teardown()
        for name, seconds in timer.seconds.items():
            record_property(f"seconds: {name}", seconds)
        with capsys.disabled():
            print(f"\n{timer.table()}")


def use_each_org_and_check_isolation(
    cp: ControlPlane, orgs: list[Org], platform: DockerPlatform
) -> None:
    """Each org's token works at its own instance only, and each instance answers only for
    its own Host; each instance's data and Redis keys are its own."""
    for org in orgs:
        org.token = cp.exchange(org)
        claims = jwt.decode(org.token, options={"verify_signature": False})
        assert (claims["iss"], claims["org_id"]) == (PUBLIC_URL, org.id)
        me = org.call("GET", "/api/v1/me")
        assert me.status_code == 200, me.text
        assert (me.json()["org_id"], me.json()["org_slug"]) == (org.id, org.slug)
        made = org.call("POST", "/api/v1/sessions", json={"title": f"canary-{org.slug}"})
        assert made.status_code == 201, made.text
        ready = httpx.get(f"{org.endpoint}/readyz", timeout=10)
        assert ready.status_code == 200, ready.text
        assert ready.json()["redis_ok"] is True  # through its own ACL user, over the network
    for org in orgs:
        assert canaries(org) == [f"canary-{org.slug}"]
    for org in orgs:
        for other in orgs:
            if other is org:
                continue
            foreign_token = other.call("GET", "/api/v1/sessions", token=org.token)
            assert foreign_token.status_code == 401, foreign_token.text
            assert foreign_token.json()["code"] == "invalid_token"
            foreign_host = other.call("GET", "/api/v1/sessions", host=org.host)
            assert foreign_host.status_code == 421, foreign_host.text
            assert foreign_host.json()["code"] == "misdirected_request"
    redis = platform.redis_admin()
    try:
        users = {str(u, "utf-8") if isinstance(u, bytes) else u for u in redis.acl_users()}
        assert {f"org-{org.id}" for org in orgs} <= users
        assert "default" in users  # present but off: compose/redis-entrypoint.sh
        for org in orgs:
            # Each instance counted its requests in its own namespace, as its own user.
            assert any(redis.scan_iter(match=f"org:{org.id}:*", count=1000)), org.slug
            assert f"org:{org.id}:*" in str(redis.acl_getuser(f"org-{org.id}")["keys"])
    finally:
        redis.close()


def canaries(org: Org, token: str = "") -> list[str]:
    """Titles of the sessions stored in the org's instance."""
    listed = org.call("GET", "/api/v1/sessions", token=token)
    assert listed.status_code == 200, listed.text
    return [item["title"] for item in listed.json()["items"]]


def restart_keeps_instances_serving(
    cp: ControlPlane, orgs: list[Org], platform: DockerPlatform, timer: PhaseTimer
) -> ControlPlane:
    """``docker restart`` of the control plane: instances answer throughout, are not recreated,
    and report in again (fresh heartbeats, ``running``). Returns a client of the restarted
    control plane, carrying the same access token (the signing key is in the database)."""
    before = {org.id: cp.instance(org)["last_heartbeat_at"] for org in orgs}
    containers = org_containers(platform, orgs)
    restart = threading.Thread(target=platform.control_plane.restart, kwargs={"timeout": 10})
    started = time.perf_counter()
    restart.start()
    served_while_down, refused = 0, []

    def restarted() -> bool:
        """One round of requests to every org; True once the restart is over."""
        nonlocal served_while_down
        up = control_plane_answers(platform)
        for org in orgs:
            answer = org.call("GET", "/api/v1/sessions")
            if answer.status_code != 200:
                refused.append((org.slug, answer.status_code, answer.text[:200]))
            elif not up:
                served_while_down += 1
        return up and not restart.is_alive()

    wait_until(restarted, what="the control plane restarted", timeout=RESTART_TIMEOUT, interval=0.2)
    restart.join(timeout=30)
    assert not restart.is_alive(), "docker restart did not return"
    assert not refused, refused
    # At least one full round of requests was served while the control plane was away.
    assert served_while_down >= len(orgs), "the control plane never went away: nothing proved"

    platform.wait_control_plane_ready()
    timer.since("control plane ready again", started)
    again = ControlPlane(platform.control_plane_url, reach=platform.reachable)
    again.headers = cp.headers
    cp.close()
    wait_fresh_heartbeats(again, orgs, after=before, why=platform.logs)
    timer.since("orgs running on fresh heartbeats", started)
    assert org_containers(platform, orgs) == containers, "instances were recreated or restarted"
    for org in orgs:
        fresh = again.exchange(org)
        assert canaries(org, token=fresh) == [f"canary-{org.slug}"]
    return again


def drift_is_repaired(
    cp: ControlPlane, orgs: list[Org], platform: DockerPlatform, timer: PhaseTimer
) -> None:
    """One org's container removed by hand and another's stopped by hand: the reconciler brings
    both back (a new container on the kept volume, the stopped one started), data intact, and
    leaves the third alone."""
    removed, stopped, untouched = orgs
    before = org_containers(platform, orgs)
    by_org = {
        org.id: platform.client.containers.list(
            all=True, filters={"label": [f"orgplane.org-id={org.id}"]}
        )[0]
        for org in orgs
    }
    runs = {org.id: started_runs(cp.instance(org)) for org in (removed, stopped)}
    started = time.perf_counter()
    by_org[removed.id].remove(force=True)
    by_org[stopped.id].stop(timeout=5)
    # A repaired instance is a new run, which registers with its first heartbeat. (Waiting for
    # the phase, or for any newer heartbeat, could end early: a heartbeat the instance left in
    # Redis just before it went is read up to a poll later.)
    wait_new_runs(cp, [removed, stopped], before=runs, why=platform.logs)
    timer.since("both running again", started)
    after = org_containers(platform, orgs)
    assert after[removed.id][0] != before[removed.id][0]  # recreated
    assert after[stopped.id][0] == before[stopped.id][0]  # the same container,
    assert after[stopped.id][1] != before[stopped.id][1]  # started again
    assert after[untouched.id] == before[untouched.id]
    for org in (removed, stopped):
        view = cp.instance(org)
        assert view["phase"] == "running", view
        assert view["endpoint"], view
        org.endpoint = cp.reach(view["endpoint"])
        fresh = cp.exchange(org)
        assert canaries(org, token=fresh) == [f"canary-{org.slug}"]  # the volume was kept


def control_plane_answers(platform: DockerPlatform) -> bool:
    """Whether the control plane answers ``/healthz`` right now."""
    try:
        url = platform.control_plane_url
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except (httpx.HTTPError, KeyError, IndexError, TypeError):
        return False  # down, or its port not published while it restarts


def org_containers(platform: DockerPlatform, orgs: list[Org]) -> dict[str, tuple[str, str]]:
    """Each org's container: org id -> (container id, start time)."""
    found = {}
    for org in orgs:
        for container in platform.client.containers.list(
            all=True, filters={"label": [f"orgplane.org-id={org.id}"]}, ignore_removed=True
        ):
            found[org.id] = (str(container.id), str(container.attrs["State"]["StartedAt"]))
    return found


def wait_fresh_heartbeats(
    cp: ControlPlane, orgs: list[Org], *, after: dict[str, str], why: Any
) -> None:
    """Until every org is ``running`` on a heartbeat newer than ``after`` (bounded)."""
    seen: dict[str, Any] = {}

    def reported_in() -> bool:
        nonlocal seen
        bodies = {org.id: cp.instance(org) for org in orgs}
        seen = {k: (b["phase"], b["last_heartbeat_at"]) for k, b in bodies.items()}
        return all(p == "running" and later(hb, than=after[k]) for k, (p, hb) in seen.items())

    try:
        wait_until(
            reported_in,
            what="every org reporting in after the restart",
            timeout=RESTART_TIMEOUT,
            interval=0.5,
        )
    except WaitTimeout as exc:
        raise WaitTimeout(f"{exc}; phases and heartbeats: {seen}\n{why()}") from None


def started_runs(view: dict[str, Any]) -> set[str]:
    """The runs an org's timeline shows started (``instance.started`` events)."""
    return {e["message"] for e in view["events"] if e["kind"] == "instance.started"}


def wait_new_runs(
    cp: ControlPlane, orgs: list[Org], *, before: dict[str, set[str]], why: Any
) -> None:
    """Until every org is ``running`` on a run its timeline did not show ``before`` (bounded)."""
    seen: dict[str, Any] = {}

    def back_as_new_runs() -> bool:
        nonlocal seen
        views = {org.id: cp.instance(org) for org in orgs}
        seen = {k: (v["phase"], started_runs(v) - before[k]) for k, v in views.items()}
        return all(phase == "running" and new for phase, new in seen.values())

    try:
        wait_until(
            back_as_new_runs,
            what="every org back as a new run",
            timeout=RESTART_TIMEOUT,
            interval=0.5,
        )
    except WaitTimeout as exc:
        raise WaitTimeout(f"{exc}; phases and new runs: {seen}\n{why()}") from None


def later(moment: str | None, *, than: str | None) -> bool:
    """Whether ISO timestamp ``moment`` is after ``than`` (no timestamp is before all)."""
    if moment is None:
        return False
    return than is None or datetime.fromisoformat(moment) > datetime.fromisoformat(than)


def delete_leaves_nothing(cp: ControlPlane, orgs: list[Org], platform: DockerPlatform) -> None:
    """Deleting the orgs removes their containers, volumes and Redis users (the warm spare the
    pool started since is no org's and stays)."""
    for org in orgs:
        cp.delete_org(org)
    redis = platform.redis_admin()
    try:
        left: dict[str, list[str]] = {}

        def nothing_left() -> bool:
            nonlocal left
            left = platform.managed_objects({org.id for org in orgs})
            users = [str(u, "utf-8") if isinstance(u, bytes) else u for u in redis.acl_users()]
            left["redis users"] = [u for u in users if u.startswith("org-")]
            return not any(left.values())

        try:
            wait_until(
                nothing_left, what="nothing left of the orgs", timeout=DELETE_TIMEOUT, interval=0.5
            )
        except WaitTimeout as exc:
            raise WaitTimeout(f"{exc}; left behind: {left}\n{platform.logs()}") from None
    finally:
        redis.close()
    for org in orgs:
        assert cp.org_status(org) == 404
