"""Signing keys: states, the rotation timeline, pruning, algorithms and the kid cache."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from sqlalchemy import event

from control_plane.bootstrap import prepare_database
from control_plane.runtime import Runtime
from control_plane.settings import Settings
from control_plane.signing.jws import sign, unverified_kid, verify
from control_plane.signing.keys import KeyRecord, KeyRing, create_key, key_state, rotation_times
from control_plane.tokens.rotation import (
    RotationPending,
    list_keys,
    publish_lead_seconds,
    rotate_if_due,
    rotate_keys,
)
from orgplane_wire.jose_header import InvalidToken
from orgplane_wire.secret_box import SecretBox

T0 = datetime(2030, 1, 1, tzinfo=UTC)
SECRET = "unit-test-deployment-secret"


@pytest.fixture
async def runtime(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> AsyncIterator[Runtime]:
    """A migrated SQLite control-plane runtime with its first key (no app, no server)."""
    monkeypatch.setenv("ORGPLANE_MODE", "embedded")
    monkeypatch.setenv("ORGPLANE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ORGPLANE_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'k.db'}")
    monkeypatch.setenv("ORGPLANE_SECRET_KEY", SECRET)
    rt = Runtime.build(Settings())
    await prepare_database(rt)
    yield rt
    await rt.close()


def record(**times: datetime | None) -> KeyRecord:
    values: dict[str, Any] = {
        "created_at": T0,
        "active_from": T0,
        "retire_after": None,
        "expires_at": None,
        **times,
    }
    return KeyRecord(kid="k", alg="ES256", public_jwk={}, private_key_enc="", **values)


def test_key_states_follow_the_timeline() -> None:
    times = rotation_times(now=T0, jwks_cache=300, max_token_ttl=900)
    assert times["active_from"] == T0 + timedelta(seconds=300)
    assert times["old_expires"] == T0 + timedelta(seconds=300 + 900 + 60)
    new = record(active_from=times["active_from"])
    old = record(retire_after=times["active_from"], expires_at=times["old_expires"])
    assert (key_state(new, T0), key_state(old, T0)) == ("pending", "retiring")
    switch = times["active_from"]
    assert (key_state(new, switch), key_state(old, switch)) == ("signing", "retired")
    end = times["old_expires"]
    assert (key_state(new, end), key_state(old, end)) == ("signing", "expired")


async def test_rotation_publishes_first_switches_later_and_prunes(runtime: Runtime) -> None:
    now = datetime.now(UTC)
    async with runtime.sessions() as db:
        assert await rotate_if_due(runtime, db, now=now) is False
        (first,) = await list_keys(db, now=now)
        due = now + timedelta(days=31)
        assert await rotate_if_due(runtime, db, now=due) is True
        assert await rotate_if_due(runtime, db, now=due) is False, "one rotation per due date"
        with pytest.raises(RotationPending):
            await rotate_keys(runtime, db, now=due)
        views = {v.kid: v for v in await list_keys(db, now=due)}
        new_kid = next(kid for kid in views if kid != first.kid)
        assert views[first.kid].state == "retiring"
        assert views[new_kid].state == "pending"
        lead = timedelta(seconds=publish_lead_seconds(runtime))
        assert views[new_kid].active_from == due + lead
        assert (await runtime.keyring.signing_key(db, now=due)).kid == first.kid

        switched = due + lead + timedelta(seconds=1)
        runtime.keyring.invalidate()
        assert (await runtime.keyring.signing_key(db, now=switched)).kid == new_kid
        states = {v.kid: v.state for v in await list_keys(db, now=switched)}
        assert states == {first.kid: "retired", new_kid: "signing"}

        gone = views[first.kid].expires_at
        assert gone is not None
        assert gone >= switched + timedelta(seconds=runtime.settings.tokens.access_token_ttl)
        assert await rotate_if_due(runtime, db, now=gone + timedelta(seconds=1)) is False
        assert [v.kid for v in await list_keys(db)] == [new_kid], "expired keys are deleted"


async def test_rotation_is_off_when_days_is_zero(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORGPLANE_KEY_ROTATION_DAYS", "0")
    runtime.settings = Settings()
    async with runtime.sessions() as db:
        assert (
            await rotate_if_due(runtime, db, now=datetime.now(UTC) + timedelta(days=999)) is False
        )
        assert len(await list_keys(db)) == 1


async def test_unknown_kids_reload_the_key_table_at_most_once_a_second(runtime: Runtime) -> None:
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "FROM signingkey" in statement:
            statements.append(statement)

    event.listen(runtime.engine.sync_engine, "before_cursor_execute", count)
    try:
        async with runtime.sessions() as db:
            await runtime.keyring.rows(db)
            statements.clear()
            for n in range(200):
                assert await runtime.keyring.public_key(db, f"made-up-{n}") is None
    finally:
        event.remove(runtime.engine.sync_engine, "before_cursor_execute", count)
    assert len(statements) <= 2, len(statements)


@pytest.mark.parametrize(("alg", "kty"), [("ES256", "EC"), ("EdDSA", "OKP")])
def test_both_algorithms_sign_and_verify_with_the_public_jwk(alg: str, kty: str) -> None:
    box = SecretBox(SECRET, purpose="t")
    row = create_key(box, alg=alg)
    assert row.public_jwk["kty"] == kty
    assert "d" not in row.public_jwk
    ring = KeyRing(box, alg=alg)
    token, _ = sign({"iss": "i", "aud": "a", "sub": "s"}, ring._decrypt(KeyRecord.of(row)), ttl=60)
    assert unverified_kid(token) == row.kid
    public = ring.public_key_for(row.kid, [KeyRecord.of(row)])
    assert verify(token, public, issuer="i", audience="a")["sub"] == "s"
    with pytest.raises(InvalidToken):
        verify(token, public, issuer="i", audience="other")
    other = create_key(box, alg="EdDSA" if alg == "ES256" else "ES256")
    with pytest.raises(InvalidToken):
        verify(
            token, ring.public_key_for(other.kid, [KeyRecord.of(other)]), issuer="i", audience="a"
        )


def test_private_keys_are_encrypted_under_the_deployment_secret() -> None:
    row = create_key(SecretBox(SECRET, purpose="p"), alg="ES256")
    assert "PRIVATE KEY" not in row.private_key_enc
    with pytest.raises(ValueError, match="wrong deployment secret"):
        SecretBox("another secret", purpose="p").decrypt(row.private_key_enc)
    pem = SecretBox(SECRET, purpose="p").decrypt(row.private_key_enc)
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert jwt.PyJWK(row.public_jwk).algorithm_name == "ES256"
