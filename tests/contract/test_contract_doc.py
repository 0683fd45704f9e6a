"""docs/instance-contract.md against the code: every variable of ``contract.Env`` is in its
table, and each number it states is the one the code uses (a changed constant fails here until
the page says the new figure)."""

from __future__ import annotations

import inspect
import math
import re
from pathlib import Path

from org_instance import verifier
from orgplane_wire import contract
from orgplane_wire.contract import Env
from provisioners.docker import provisioner as docker_provisioner
from provisioners.kubernetes import objects as kube_objects
from provisioners.local import LocalProvisioner

ROOT = Path(__file__).resolve().parents[2]
DOC = " ".join((ROOT / "docs" / "instance-contract.md").read_text(encoding="utf-8").split())


def test_every_environment_variable_is_in_the_table() -> None:
    names = {v for k, v in vars(Env).items() if not k.startswith("_")}
    rows = set(re.findall(r"^\| `(ORGPLANE_[A-Z_]+)` \|", DOC.replace(" | `", "\n| `"), re.M))
    assert rows == names


def test_the_numbers_are_the_codes() -> None:
    refetch = inspect.signature(verifier.JWKSVerifier).parameters["refetch_interval"].default
    claims = [
        f"at most **{verifier.LEEWAY_SECONDS} s** leeway",
        f"at most {verifier.MAX_TOKEN_BYTES // 1024} KiB",
        f"within the last **{contract.REVOCATION_FALLBACK_SECONDS} s**",
        f"within **{docker_provisioner.STOP_TIMEOUT} s**",
        f"`HEARTBEAT_JITTER` = {contract.HEARTBEAT_JITTER}",
        f"`MAX_HEARTBEAT_BACKOFF_SECONDS` = {contract.MAX_HEARTBEAT_BACKOFF_SECONDS:g}",
        f"min({contract.MAX_HEARTBEAT_BACKOFF_SECONDS:g}, 8 \N{MULTIPLICATION SIGN} interval)",
        f"Default {contract.DEFAULT_HEARTBEAT_INTERVAL:g};",
        f"Default {contract.DEFAULT_PORT} (`DEFAULT_PORT`)",
        f"a refetch, at most one per {refetch:g} s",
        f"{verifier.DEFAULT_CACHE_SECONDS:g} s by default, capped at a day",
        f"`POST {{ORGPLANE_CONTROL_PLANE_URL}}{contract.HEARTBEAT_PATH}`",
        f"`POST {contract.POOL_ASSIGN_PATH}`",
        f"`{contract.ASSIGNMENT_FILE}` (mode 0600)",
        f"`typ` is `{contract.TOKEN_TYP}`",
        "`alg` is `{}` or `{}`".format(*contract.ALLOWED_ALGORITHMS),
        f"`{contract.org_audience('{org_id}')}`",
        f"`{contract.revocations_key('{org_id}')}`",
        f"`SET {contract.heartbeat_key('{org_id}')} <body JSON>`",
        f"`GET {contract.heartbeat_answer_key('{org_id}')}`",
    ]
    for claim in claims:
        assert claim in DOC, claim
    assert f"`CONTRACT_VERSION` (now **{contract.CONTRACT_VERSION}**)" in DOC
    for interval in (0.05, 1, 5, 10, 100):  # the formulas the page gives
        assert contract.heartbeat_backoff_cap(interval) == max(interval, min(60, 8 * interval))
        assert contract.heartbeat_key_ttl(interval) == max(2, math.ceil(3 * interval))
    assert "expiry of `max(2, ceil(3 \N{MULTIPLICATION SIGN} interval))` seconds" in DOC
    assert verifier.MAX_CACHE_SECONDS == 86_400  # "capped at a day"
    local_grace = inspect.signature(LocalProvisioner).parameters["stop_timeout"].default
    assert f"`SIGKILL` after {local_grace:g} s" in DOC
    source = inspect.getsource(kube_objects)
    for path, period, failures, words in (
        ("/healthz", 1, 120, "every 1 s, 120 failures"),
        ("/healthz", 10, 3, "every 10 s, 3 failures"),
        ("/readyz", 5, 2, "every 5 s, 2 failures"),
    ):
        assert f'_probe("{path}", period={period}, failures={failures})' in source
        assert words in DOC
