"""What a second factor adds to a sign-in: checking and spending a TOTP code.

In-process on SQLite, one session per check (as a request gets): load the user, decrypt the
secret (Fernet), compute the codes of the accepted steps (HMAC-SHA1) and spend the step (one
conditional UPDATE), then commit. Each check uses the code of a later time step (``now``
advances 30 s per check), so every one is accepted and writes, as at a real sign-in. A wrong
code (no write) is timed too. The password check (scrypt) a sign-in also does is not included:
it is the same with or without MFA.

``BENCH_MFA_N`` sets the number of checks (default 500). The 1-minute load average at the
start is recorded: wall-clock figures on a busy machine include waiting for a core.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import pyotp

from benchmarks import Result
from benchmarks.bench_tokens import _environment
from control_plane.bootstrap import prepare_database
from control_plane.db.models import User, utcnow
from control_plane.identity.mfa import begin_enrolment, confirm_enrolment, spend_factor
from control_plane.runtime import Runtime
from control_plane.settings import Settings
from control_plane.users.service import create_user

CHECKS = int(os.environ.get("BENCH_MFA_N", "500"))
WARMUP = 20


async def _enrolled(runtime: Runtime, start: datetime) -> tuple[str, str]:
    """A user with TOTP on (confirmed at ``start``): their id and secret."""
    await prepare_database(runtime)
    async with runtime.sessions() as db:
        user = await create_user(db, email="bench@example.com", password="benchmark password")
        secret, _ = begin_enrolment(runtime.settings, user)
        await confirm_enrolment(db, runtime.settings, user, pyotp.TOTP(secret).at(start), start)
        await db.commit()
        return user.id, secret


async def _checks(
    runtime: Runtime, user_id: str, codes: list[tuple[str, datetime]], *, valid: bool
) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU milliseconds of each check."""
    wall: list[float] = []
    cpu: list[float] = []
    for n, (code, at) in enumerate(codes):
        cpu_started, started = time.process_time(), time.perf_counter()
        async with runtime.sessions() as db:
            user = await db.get(User, user_id)
            assert user is not None
            factor = await spend_factor(db, runtime.settings, user, code, at)
            await db.commit()
        if (factor == "totp") != valid:
            raise RuntimeError(f"check {n}: {factor!r}, expected valid={valid}")
        if n >= WARMUP:
            wall.append((time.perf_counter() - started) * 1000)
            cpu.append((time.process_time() - cpu_started) * 1000)
    return wall, cpu


def run() -> list[Result]:
    """Measure and answer the figures (see the module docstring)."""
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="orgplane-bench-") as tmp, _environment(Path(tmp)):

        async def measure() -> tuple[list[float], ...]:
            runtime = Runtime.build(Settings())
            start = utcnow()
            try:
                user_id, secret = await _enrolled(runtime, start)
                totp = pyotp.TOTP(secret)
                steps = [start + timedelta(seconds=30 * (n + 1)) for n in range(CHECKS + WARMUP)]
                good = [(totp.at(at), at) for at in steps]
                wrong = [(str((int(c) + 1) % 1_000_000).zfill(6), at) for c, at in good]
                ok_wall, ok_cpu = await _checks(runtime, user_id, good, valid=True)
                bad_wall, _ = await _checks(runtime, user_id, wrong, valid=False)
                return ok_wall, ok_cpu, bad_wall
            finally:
                await runtime.close()

        ok_wall, ok_cpu, bad_wall = asyncio.run(measure())
    return [
        Result("load average (1 min) at start, 2 cores shared", load, "load"),
        Result.distribution("TOTP check and spend, in-process SQLite (wall)", ok_wall, "ms"),
        Result.distribution(
            "TOTP check and spend, CPU time",
            ok_cpu,
            "ms",
            target="p99 < 10 ms",
            check=lambda _p50, _p95, p99: p99 < 10,
        ),
        Result.distribution("wrong TOTP code, in-process SQLite (wall)", bad_wall, "ms"),
    ]
