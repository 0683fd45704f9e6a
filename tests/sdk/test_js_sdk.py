"""The JavaScript SDK (``sdk/js``): its own test suite under Node's test runner (and Bun's,
when the ``bun`` dev dependency is installed), and its contract values and heartbeat timing
against ``org_instance``'s, so the two languages cannot drift apart.

Needs ``node`` and the SDK's dependencies (``cd sdk/js && npm ci``, done by ``.ci/run``):
missing, the tests fail under ``CI=true`` and are skipped elsewhere.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from org_instance import heartbeat
from orgplane_wire import contract
from tests.support.services import REDIS_URL, REPO, need, redis_available

SDK = REPO / "sdk" / "js"
TIMEOUT = 180.0


def node() -> str:
    """The node binary, with the SDK's dependencies installed (else fail under CI / skip)."""
    binary = shutil.which("node")
    need("node (Node.js 20+)", binary is not None)
    need("sdk/js/node_modules (run: cd sdk/js && npm ci)", (SDK / "node_modules" / "jose").is_dir())
    assert binary is not None
    return binary


def run(
    args: list[str], *, cwd: Path = SDK, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``args`` in ``cwd``; the output is in the assertion message when it fails."""
    done = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    assert done.returncode == 0, (
        f"{' '.join(args)} exited {done.returncode}:\n{done.stdout[-6000:]}\n{done.stderr[-3000:]}"
    )
    return done


def node_json(script: str) -> Any:
    """What an ES module run by node (in sdk/js) prints as JSON."""
    done = run([node(), "--input-type=module", "-e", script])
    return json.loads(done.stdout)


@pytest.mark.slow
def test_the_sdk_suite_passes_under_node() -> None:
    files = sorted(str(p.relative_to(SDK)) for p in (SDK / "test").glob("*.test.js"))
    assert len(files) >= 5, files
    done = run([node(), "--test", *files])
    assert "# fail 0" in done.stdout, done.stdout[-3000:]


@pytest.mark.slow
def test_the_sdk_suite_passes_under_bun() -> None:
    node()
    bun = SDK / "node_modules" / ".bin" / "bun"
    need("bun (the bun dev dependency of sdk/js)", bun.exists())
    done = run([str(bun), "test", "./test/"])
    summary = done.stdout + done.stderr
    assert " 0 fail" in summary, summary[-3000:]


def test_contract_values_are_org_instances() -> None:
    values = node_json(
        "import { contractValues } from './src/contract.js';"
        "console.log(JSON.stringify(contractValues()));"
    )
    env = {name: getattr(contract.Env, name) for name in vars(contract.Env) if name.isupper()}
    assert values["Env"] == env
    for name in (
        "CONTRACT_VERSION",
        "HEARTBEAT_PATH",
        "POOL_ASSIGN_PATH",
        "ASSIGNMENT_FILE",
        "DEFAULT_PORT",
        "DEFAULT_HEARTBEAT_INTERVAL",
        "HEARTBEAT_JITTER",
        "MAX_HEARTBEAT_BACKOFF_SECONDS",
        "TOKEN_TYP",
        "REVOCATION_FALLBACK_SECONDS",
    ):
        assert values[name] == getattr(contract, name), name
    assert values["ALLOWED_ALGORITHMS"] == list(contract.ALLOWED_ALGORITHMS)
    assert values["ROLE_SCOPES"] == {r: list(s) for r, s in contract.ROLE_SCOPES.items()}
    examples = values["examples"]
    assert examples["org_audience"] == contract.org_audience("o-1")
    assert examples["redis_namespace"] == contract.redis_namespace("o-1")
    intervals = [0.5, 2, 10, 30]
    assert examples["heartbeat_backoff_cap"] == [
        contract.heartbeat_backoff_cap(i) for i in intervals
    ]
    assert examples["longest_heartbeat_gap"] == pytest.approx(
        [contract.longest_heartbeat_gap(i) for i in intervals]
    )
    assert examples["heartbeat_key_ttl"] == [contract.heartbeat_key_ttl(i) for i in (0.1, 2, 10)]


class _Midpoint(random.Random):
    """Jitter at its midpoint (no jitter), so both languages' delays compare exactly."""

    def uniform(self, a: float, b: float) -> float:
        return (a + b) / 2


def test_heartbeat_delays_are_org_instances() -> None:
    intervals, failures = [0.2, 1, 2, 10, 30], list(range(12))
    delays = node_json(
        "import { backoffDelay, firstBeatDelay } from './src/heartbeat.js';"
        f"const I = {json.dumps(intervals)}, F = {json.dumps(failures)}, mid = () => 0.5;"
        "console.log(JSON.stringify({"
        " backoff: I.map((i) => F.map((f) => backoffDelay(i, f, mid))),"
        " first: I.map((i) => F.slice(1).map((f) => firstBeatDelay(i, f, mid))) }));"
    )
    rng = _Midpoint()
    backoff = [heartbeat.backoff_delay(i, f, rng=rng) for i in intervals for f in failures]
    first = [heartbeat.first_beat_delay(i, f, rng=rng) for i in intervals for f in failures[1:]]
    assert [d for row in delays["backoff"] for d in row] == pytest.approx(backoff)
    assert [d for row in delays["first"] for d in row] == pytest.approx(first)


REDIS_SCRIPT = """
import Redis from "ioredis";
import { RedisNamespace } from "./src/redis.js";

const { ORGPLANE_REDIS_URL: url, ORGPLANE_ORG_ID: orgId, OTHER_ORG_ID: other } = process.env;
const ns = new RedisNamespace(orgId);
const options = { maxRetriesPerRequest: 1, enableOfflineQueue: true };
const scoped = new Redis(url, { ...options, keyPrefix: ns.prefix });
const plain = new Redis(url, options);
const refusal = (promise) => promise.then(() => "", (err) => err.message);
await scoped.set("greeting", "hello");
await plain.hset(ns.key("settings"), "theme", "dark");
const answer = {
  scoped: await scoped.get("greeting"),
  outside: await refusal(plain.set("unprefixed", "x")),
  other: await refusal(plain.get(`org:${other}:canary`)),
  channel: await refusal(plain.publish(`org:${other}:events`, "x")),
};
console.log(JSON.stringify(answer));
await Promise.all([scoped.quit(), plain.quit()]);
"""


@pytest.mark.redis
async def test_the_namespace_fits_the_org_redis_user_the_control_plane_makes() -> None:
    """ioredis with ``keyPrefix: ns.prefix`` (and ``ns.key()`` by hand) works as the org's ACL
    user made by ``control_plane.redis_acl``; keys and channels outside are NOPERM."""
    need("Redis", redis_available())
    binary = node()
    need("ioredis (a dev dependency of sdk/js)", (SDK / "node_modules" / "ioredis").is_dir())
    from redis.asyncio import Redis

    from control_plane.redis_acl import delete_org_redis_user, ensure_org_redis_user

    admin = Redis.from_url(REDIS_URL)
    org, other = f"opsdkjs-{uuid.uuid4().hex[:10]}", f"opsdkjs-{uuid.uuid4().hex[:10]}"
    try:
        url = await ensure_org_redis_user(admin, org_id=org)
        await admin.set(f"org:{other}:canary", "B")
        env = {
            **os.environ,
            "ORGPLANE_REDIS_URL": url,
            "ORGPLANE_ORG_ID": org,
            "OTHER_ORG_ID": other,
        }
        done = await asyncio.to_thread(
            run, [binary, "--input-type=module", "-e", REDIS_SCRIPT], env=env
        )
        answer = json.loads(done.stdout)
        assert answer["scoped"] == "hello"
        assert await admin.get(f"org:{org}:greeting") == b"hello"
        assert await admin.hget(f"org:{org}:settings", "theme") == b"dark"
        for refused in ("outside", "other", "channel"):
            assert answer[refused].startswith("NOPERM"), answer
        assert await admin.get(f"org:{other}:canary") == b"B"
    finally:
        await delete_org_redis_user(admin, org_id=org)
        for name in (org, other):
            keys = [k async for k in admin.scan_iter(match=f"org:{name}:*", count=100)]
            if keys:
                await admin.delete(*keys)
        await admin.aclose()
