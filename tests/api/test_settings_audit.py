"""Every control-plane setting is audited: a test sets it and observes its effect.

The list of settings is generated from the settings classes (``tests/deploy/settings_names``),
so a new setting fails :func:`test_every_setting_is_audited` until it is placed in one of:

* ``OBSERVED_HERE``: this module sets it and asserts on what changes;
* ``OBSERVED_IN``: another test module sets it and asserts on its effect (the module must be a
  ``test_*`` module and name the variable or the field, checked below; that it asserts on the
  effect was reviewed by reading each module);
* ``NOT_YET_OBSERVED``: no test observes it yet, with the reason. This list should shrink.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import MutableMapping
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import structlog
from litestar.testing import AsyncTestClient
from sqlmodel import select
from structlog.testing import capture_logs

from control_plane.app import create_app
from control_plane.db.models import Backup, Instance, RefreshToken, SigningKey
from control_plane.reconciler.spec import provisioner_options
from orgplane_wire.secret_box import SecretBox
from provisioners.kubernetes.manifests import desired_objects
from provisioners.naming import MANAGED_BY_LABEL
from tests.conftest import TEST_SECRET
from tests.deploy.settings_names import setting_names
from tests.provisioners.harness import make_spec
from tests.support.api import add_user, direct_db, login, runtime_of
from tests.support.services import REPO
from tests.support.tokens import exchange, login_body, make_org

OBSERVED_HERE = {
    "ORGPLANE_TENANT_PLACEHOLDER": "test_tenant_placeholder_and_column",
    "ORGPLANE_TENANT_COLUMN": "test_tenant_placeholder_and_column",
    "ORGPLANE_MAX_BODY_BYTES": "test_max_body_bytes",
    "ORGPLANE_LOGIN_RATE_LIMIT": "test_login_rate_limit_and_window",
    "ORGPLANE_LOGIN_RATE_WINDOW": "test_login_rate_limit_and_window",
    "ORGPLANE_INVITE_TTL_DAYS": "test_invite_ttl_days",
    "ORGPLANE_ACCESS_TOKEN_TTL": "test_token_lifetimes",
    "ORGPLANE_REFRESH_TOKEN_TTL": "test_token_lifetimes",
    "ORGPLANE_JWKS_CACHE_SECONDS": "test_jwks_cache_seconds",
    "ORGPLANE_PUBLIC_URL": "test_public_url_is_the_issuer",
    "ORGPLANE_ADMIN_EMAIL": "test_admin_from_environment",
    "ORGPLANE_ADMIN_PASSWORD": "test_admin_from_environment",
    "ORGPLANE_SIGNING_ALG": "test_signing_alg",
    "ORGPLANE_LOG_LEVEL": "test_log_level",
    "ORGPLANE_DATABASE_ECHO": "test_database_echo",
    "ORGPLANE_ACCESS_APPROVAL_TTL": "test_access_approval_ttl",
    "ORGPLANE_KUBERNETES_CONTROL_PLANE_PORT": "test_kubernetes_objects_from_settings",
    "ORGPLANE_KUBERNETES_REDIS_PORT": "test_kubernetes_objects_from_settings",
    "ORGPLANE_DEPLOYMENT_ID": "test_kubernetes_objects_from_settings",
    "ORGPLANE_BACKUP_MAX_BYTES": "test_backup_max_bytes_and_dir",
    "ORGPLANE_BACKUP_DIR": "test_backup_max_bytes_and_dir",
    "ORGPLANE_LOG_FORMAT": "test_log_format",
    "ORGPLANE_SECRET_KEY": "test_secret_key",
    "ORGPLANE_COOKIE_SECURE": "test_cookie_secure",
    "ORGPLANE_PROVISIONER": "test_provisioner",
    "ORGPLANE_ORG_TOKEN_TTL": "test_org_token_ttl",
}

OBSERVED_IN = {
    "ORGPLANE_PASSKEY_RP_ID": "tests/passkeys/test_passkey_settings.py",
    "ORGPLANE_PASSKEY_USER_VERIFICATION": "tests/passkeys/test_passkey_settings.py",
    "ORGPLANE_LOGIN_RATE_LIMIT_IP": "tests/api/test_login_throttle.py",
    "ORGPLANE_LOGIN_RATE_LIMIT_ACCOUNT": "tests/api/test_login_throttle.py",
    "ORGPLANE_TRUSTED_PROXIES": "tests/api/test_client_ip.py",
    "ORGPLANE_MODE": "tests/unit/test_settings_and_schema.py",
    "ORGPLANE_HOST": "tests/integration/test_keep_alive.py",
    "ORGPLANE_PORT": "tests/integration/test_keep_alive.py",
    "ORGPLANE_DATA_DIR": "tests/unit/test_settings_and_schema.py",
    "ORGPLANE_DATABASE_URL": "tests/integration/test_two_processes.py",
    "ORGPLANE_DATABASE_POOL_SIZE": "tests/integration/test_database_connections.py",
    "ORGPLANE_DATABASE_POOL_TIMEOUT": "tests/integration/test_database_connections.py",
    "ORGPLANE_ALLOW_SIGNUP": "tests/api/test_invites_signup.py",
    "ORGPLANE_DELETION_GRACE_SECONDS": "tests/reconciler/test_lifecycle_local.py",
    "ORGPLANE_KEY_ROTATION_DAYS": "tests/unit/test_keys.py",
    "ORGPLANE_REDIS_URL": "tests/integration/test_heartbeats_redis.py",
    "ORGPLANE_BASE_DOMAIN": "tests/reconciler/test_settings_effects.py",
    "ORGPLANE_RECONCILE_INTERVAL": "tests/reconciler/test_settings_effects.py",
    "ORGPLANE_RECONCILER_ENABLED": "tests/reconciler/test_settings_effects.py",
    "ORGPLANE_LEASE_SECONDS": "tests/reconciler/test_settings_effects.py",
    "ORGPLANE_UNHEALTHY_RESTART_AFTER": "tests/reconciler/test_settings_effects.py",
    "ORGPLANE_ORPHAN_GRACE_SECONDS": "tests/provisioners/test_orphans.py",
    "ORGPLANE_MAX_CONCURRENT_PROVISIONING": "tests/reconciler/test_admission.py",
    "ORGPLANE_HEARTBEAT_INTERVAL": "tests/reconciler/test_settings_effects.py",
    "ORGPLANE_HEARTBEAT_TRANSPORT": "tests/scale/test_heartbeats_redis_reader.py",
    "ORGPLANE_HEARTBEAT_POLL_SECONDS": "tests/scale/test_heartbeats_redis_reader.py",
    "ORGPLANE_WARM_POOL_SIZE": "tests/pool/test_pool_local.py",
    "ORGPLANE_HIBERNATE_AFTER": "tests/hibernation/test_lifecycle_local.py",
    "ORGPLANE_DOCKER_NETWORK": "tests/provisioners/test_docker.py",
    "ORGPLANE_DOCKER_PUBLISH_PORTS": "tests/provisioners/test_docker.py",
    "ORGPLANE_DOCKER_HEALTH_INTERVAL": "tests/provisioners/test_docker.py",
    "ORGPLANE_KUBERNETES_NAMESPACE_MODE": "tests/provisioners/test_kubernetes_flows.py",
    "ORGPLANE_KUBERNETES_NAMESPACE": "tests/provisioners/test_kubernetes_flows.py",
    "ORGPLANE_KUBERNETES_INGRESS": "tests/provisioners/test_kubernetes_objects.py",
    "ORGPLANE_KUBERNETES_INGRESS_CLASS": "tests/provisioners/test_kubernetes_objects.py",
    "ORGPLANE_KUBERNETES_INGRESS_NAMESPACE": "tests/provisioners/test_kubernetes_objects.py",
    "ORGPLANE_KUBERNETES_CONTROL_PLANE_NAMESPACE": "tests/provisioners/test_kubernetes_objects.py",
    "ORGPLANE_KUBERNETES_REDIS_NAMESPACE": "tests/provisioners/test_kubernetes_objects.py",
    "ORGPLANE_KUBERNETES_STORAGE_CLASS": "tests/provisioners/test_kubernetes_objects.py",
    "ORGPLANE_ROUTING_TOKEN": "tests/routing/test_traefik_endpoint.py",
    "ORGPLANE_METRICS_TOKEN": "tests/routing/test_metrics_api.py",
    "ORGPLANE_ENTRYPOINTS": "tests/routing/test_traefik_endpoint.py",
    "ORGPLANE_TLS": "tests/routing/test_traefik_endpoint.py",
    "ORGPLANE_CERT_RESOLVER": "tests/routing/test_traefik_endpoint.py",
    "ORGPLANE_DNS_RESOLVER": "tests/reconciler/test_settings_effects.py",
    "ORGPLANE_ROUTING_FALLBACK_URL": "tests/hibernation/test_wake_routes.py",
    "ORGPLANE_ORG_URL_PORT": "tests/ui/test_browser.py",
    "ORGPLANE_WAKE_URL": "tests/hibernation/test_wake_routes.py",
    "ORGPLANE_PROXY_URL": "tests/hibernation/test_handover_traefik.py",
    "ORGPLANE_EMBEDDED_ROUTING": "tests/routing/test_embedded_routing.py",
    "ORGPLANE_TENANT_SINGULAR": "tests/api/test_tenant_word.py",
    "ORGPLANE_TENANT_PLURAL": "tests/api/test_tenant_word.py",
    "ORGPLANE_WAKE_HOLD_TIMEOUT": "tests/hibernation/test_wake_routes.py",
    "ORGPLANE_BACKUP_INTERVAL": "tests/backups/test_interrupted_and_scheduled.py",
    "ORGPLANE_BACKUP_KEEP": "tests/backups/test_interrupted_and_scheduled.py",
    "ORGPLANE_BACKUP_KEY": "tests/backups/test_key_rotation.py",
    "ORGPLANE_BACKUP_PREVIOUS_KEYS": "tests/backups/test_key_rotation.py",
    "ORGPLANE_BACKUP_READ_PLAINTEXT": "tests/backups/test_key_rotation.py",
    "ORGPLANE_BACKUP_RETENTION_AFTER_DELETE": "tests/backups/test_shredding.py",
    "ORGPLANE_INSTANCE_IMAGE": "tests/reconciler/test_settings_effects.py",
    "ORGPLANE_INSTANCE_CONTROL_PLANE_URL": "tests/reconciler/test_settings_effects.py",
    "ORGPLANE_KEEP_ALIVE_TIMEOUT": "tests/integration/test_keep_alive.py",
    "ORGPLANE_ALLOWED_IMAGES": "tests/reconciler/test_image_policy.py",
    "ORGPLANE_RESERVED_SLUGS": "tests/api/test_reserved_slugs.py",
    "ORGPLANE_REDIS_ORG_USERS": "tests/reconciler/test_settings_effects.py",
    "ORGPLANE_INSTANCE_REDIS_HOST": "tests/reconciler/test_settings_effects.py",
    "ORGPLANE_START_TIMEOUT": "tests/reconciler/test_settings_effects.py",
    "ORGPLANE_DOMAIN_RECHECK_HOURS": "tests/reconciler/test_settings_effects.py",
    "ORGPLANE_DOMAIN_CLAIM_TTL_HOURS": "tests/routing/test_domain_claims.py",
    "ORGPLANE_INSTANCE_LOGS_MAX_TAIL": "tests/fleet/test_instance_logs_api.py",
    "ORGPLANE_INSTANCE_LOGS_MAX_SECONDS": "tests/fleet/test_instance_logs_api.py",
    "ORGPLANE_WEBHOOK_ALLOW_PRIVATE": "tests/fleet/test_webhooks.py",
    "ORGPLANE_WEBHOOK_MAX_ATTEMPTS": "tests/fleet/test_webhooks.py",
    "ORGPLANE_WEBHOOK_RETRY_SECONDS": "tests/fleet/test_webhooks.py",
    "ORGPLANE_SECURITY_SIGNAL_THRESHOLD": "tests/fleet/test_security_signal.py",
    "ORGPLANE_SECURITY_SIGNAL_WINDOW": "tests/fleet/test_security_signal.py",
    "ORGPLANE_SMTP_HOST": "tests/api/test_mail_delivery.py",
    "ORGPLANE_SMTP_PORT": "tests/api/test_mail_delivery.py",
    "ORGPLANE_SMTP_TLS": "tests/api/test_mail_delivery.py",
    "ORGPLANE_SMTP_USERNAME": "tests/api/test_mail_delivery.py",
    "ORGPLANE_SMTP_PASSWORD": "tests/api/test_mail_delivery.py",
    "ORGPLANE_MAIL_FROM": "tests/api/test_mail_delivery.py",
    "ORGPLANE_MAIL_MAX_ATTEMPTS": "tests/api/test_mail_delivery.py",
    "ORGPLANE_MAIL_RETRY_SECONDS": "tests/api/test_mail_delivery.py",
    "ORGPLANE_PASSWORD_RESET_TTL": "tests/api/test_password_reset.py",
    "ORGPLANE_PERSONAL_TOKEN_MAX_DAYS": "tests/api/test_personal_tokens.py",
    "ORGPLANE_EMAIL_VERIFICATION_TTL": "tests/api/test_email_verification.py",
}

#: Empty: every setting is observed. A new setting no test observes yet goes here with the reason.
NOT_YET_OBSERVED: dict[str, str] = {}


def test_every_setting_is_audited() -> None:
    lists = [set(OBSERVED_HERE), set(OBSERVED_IN), set(NOT_YET_OBSERVED)]
    assert set.union(*lists) == setting_names(), "place every setting in one list"
    assert sum(len(s) for s in lists) == len(setting_names()), "a setting is in two lists"
    assert all(name in globals() for name in OBSERVED_HERE.values())


@pytest.mark.parametrize(("env", "module"), sorted(OBSERVED_IN.items()))
def test_modules_observing_a_setting_name_it(env: str, module: str) -> None:
    assert Path(module).name.startswith("test_"), f"{module} is not a test module"
    text = (REPO / module).read_text()
    field = env.removeprefix("ORGPLANE_").lower()
    assert env in text or f"{field}=" in text or f'"{field}"' in text, f"{module} never sets {env}"


def claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


async def app_client(make_settings: Any, **env: str) -> AsyncTestClient[Any]:
    return AsyncTestClient(create_app(make_settings(**env)), base_url="http://127.0.0.1:8080")


async def test_tenant_placeholder_and_column(make_settings: Any) -> None:
    env = {"ORGPLANE_TENANT_PLACEHOLDER": "acme-eu", "ORGPLANE_TENANT_COLUMN": "Tenant"}
    async with await app_client(make_settings, **env) as client:
        words = (await client.get("/api/v1/platform/words")).json()
    assert words["placeholder"] == "acme-eu"
    assert words["column"] == "Tenant"
    assert words["singular"] == "Organization"  # the others keep their defaults


async def test_max_body_bytes(make_settings: Any) -> None:
    async with await app_client(make_settings, ORGPLANE_MAX_BODY_BYTES="100") as client:
        small = await client.post("/api/v1/auth/login", json={"email": "a@b.c", "password": "x"})
        big = await client.post("/api/v1/auth/login", content=b"{" + b" " * 200 + b"}")
    assert small.status_code == 401
    assert big.status_code == 413
    assert big.json()["code"] == "body_too_large"


async def test_login_rate_limit_and_window(make_settings: Any) -> None:
    env = {"ORGPLANE_LOGIN_RATE_LIMIT": "2", "ORGPLANE_LOGIN_RATE_WINDOW": "77"}
    async with await app_client(make_settings, **env) as client:
        body = {"email": "nobody@example.com", "password": "wrong password"}
        statuses = [(await client.post("/api/v1/auth/login", json=body)) for _ in range(3)]
    assert [a.status_code for a in statuses] == [401, 401, 429]
    assert 0 < int(statuses[2].headers["retry-after"]) <= 77


async def test_invite_ttl_days(make_settings: Any) -> None:
    async with await app_client(make_settings, ORGPLANE_INVITE_TTL_DAYS="3") as client:
        owner = await add_user(client, "owner@example.com")
        org = await make_org(client, "ttl", members={owner: "owner"})
        headers = await login(client, "owner@example.com")
        answer = await client.post(
            f"/api/v1/orgs/{org}/invites",
            json={"email": "new@example.com", "role": "member"},
            headers=headers,
        )
    assert answer.status_code == 201, answer.text
    invite = answer.json()
    lifetime = datetime.fromisoformat(invite["expires_at"]) - datetime.fromisoformat(
        invite["created_at"]
    )
    assert round(lifetime.total_seconds() / 86400) == 3


async def test_token_lifetimes(make_settings: Any) -> None:
    env = {"ORGPLANE_ACCESS_TOKEN_TTL": "123", "ORGPLANE_REFRESH_TOKEN_TTL": "4567"}
    async with await app_client(make_settings, **env) as client:
        user_id = await add_user(client, "someone@example.com")
        answer = await client.post(
            "/api/v1/auth/login",
            json={"email": "someone@example.com", "password": "correct horse battery"},
        )
        async with direct_db(client) as db:
            rows = (
                await db.exec(select(RefreshToken).where(RefreshToken.user_id == user_id))
            ).all()
    assert answer.json()["expires_in"] == 123
    token = claims(answer.json()["access_token"])
    assert token["exp"] - token["iat"] == 123
    assert [round((r.expires_at - r.created_at).total_seconds()) for r in rows] == [4567]


async def test_jwks_cache_seconds(make_settings: Any) -> None:
    async with await app_client(make_settings, ORGPLANE_JWKS_CACHE_SECONDS="42") as client:
        answer = await client.get("/.well-known/jwks.json")
    assert "max-age=42" in answer.headers["cache-control"]


async def test_public_url_is_the_issuer(make_settings: Any) -> None:
    url = "https://cp.example.test"
    async with await app_client(make_settings, ORGPLANE_PUBLIC_URL=url) as client:
        answer = await client.get("/.well-known/oauth-authorization-server")
    assert answer.json()["issuer"] == url
    assert answer.json()["token_endpoint"] == url + "/oauth/token"


async def test_signing_alg(make_settings: Any) -> None:
    async with await app_client(make_settings, ORGPLANE_SIGNING_ALG="EdDSA") as client:
        keys = (await client.get("/.well-known/jwks.json")).json()["keys"]
    assert [k["alg"] for k in keys] == ["EdDSA"]


async def test_admin_from_environment(make_settings: Any, tmp_path: Path) -> None:
    """The server's start-up creates the first admin from the two settings (``orgplane up``:
    tests/cli/test_up_admin.py)."""
    env = {"ORGPLANE_ADMIN_EMAIL": "Boss@Example.com", "ORGPLANE_ADMIN_PASSWORD": "a long secret 1"}
    async with await app_client(make_settings, **env) as client:
        answer = await client.post(
            "/api/v1/auth/login", json={"email": "boss@example.com", "password": "a long secret 1"}
        )
        assert answer.status_code == 200, answer.text
        me = await client.get(
            "/api/v1/me", headers={"Authorization": f"Bearer {answer.json()['access_token']}"}
        )
    assert me.json()["is_platform_admin"] is True


async def test_log_level(make_settings: Any) -> None:
    """Records below the level are dropped: the access log line is ``info``."""
    seen: dict[str, list[MutableMapping[str, Any]]] = {}
    for level in ("INFO", "WARNING"):
        async with await app_client(make_settings, ORGPLANE_LOG_LEVEL=level) as client:
            with capture_logs() as records:
                answer = await client.get("/api/v1/me")
                structlog.get_logger("orgplane.test").warning("a warning is kept")
        assert answer.status_code == 401
        seen[level] = records
    assert {(r["event"], r["log_level"]) for r in seen["INFO"]} >= {
        ("request", "info"),
        ("a warning is kept", "warning"),
    }
    assert [(r["event"], r["log_level"]) for r in seen["WARNING"]] == [
        ("a warning is kept", "warning")
    ]


async def test_database_echo(make_settings: Any, caplog: pytest.LogCaptureFixture) -> None:
    """Every SQL statement is logged (SQLAlchemy's ``echo``) only when the setting is on."""
    engine_log = logging.getLogger("sqlalchemy.engine.Engine")
    handlers = list(engine_log.handlers)
    statements: dict[str, list[str]] = {}
    try:
        for echo in ("false", "true"):
            caplog.clear()
            async with await app_client(make_settings, ORGPLANE_DATABASE_ECHO=echo) as client:
                await client.post(
                    "/api/v1/auth/login", json={"email": "who@example.com", "password": "x"}
                )
            statements[echo] = [
                r.getMessage() for r in caplog.records if r.name.startswith("sqlalchemy.engine")
            ]
    finally:
        engine_log.handlers[:] = handlers  # echo adds a stdout handler for the whole process
    assert statements["false"] == []
    assert any(s.startswith("SELECT") and ".email" in s for s in statements["true"]), statements


async def test_access_approval_ttl(make_settings: Any) -> None:
    """An owner's approval of a staff access request lasts the configured seconds."""
    async with await app_client(make_settings, ORGPLANE_ACCESS_APPROVAL_TTL="1234") as client:
        await add_user(client, "staff@orgplane.test", admin=True)
        owner = await add_user(client, "owner@example.com")
        org = await make_org(
            client, "approvals", members={owner: "owner"}, require_access_approval=True
        )
        staff = await login(client, "staff@orgplane.test")
        filed = await client.post(
            f"/api/v1/orgs/{org}/access-requests", headers=staff, json={"reason": "ticket 1"}
        )
        assert filed.status_code == 201, filed.text
        approved = await client.post(
            f"/api/v1/orgs/{org}/access-requests/{filed.json()['id']}/approve",
            headers=await login(client, "owner@example.com"),
        )
    assert approved.status_code == 200, approved.text
    body = approved.json()
    lifetime = datetime.fromisoformat(body["expires_at"]) - datetime.fromisoformat(
        body["decided_at"]
    )
    assert round(lifetime.total_seconds()) == 1234


def test_kubernetes_objects_from_settings(make_settings: Any) -> None:
    """An org namespace's NetworkPolicy lets egress out to the configured ports; every object
    carries the deployment's id (what makes it this deployment's)."""
    settings = make_settings(
        ORGPLANE_DEPLOYMENT_ID="audit-deployment",
        ORGPLANE_KUBERNETES_NAMESPACE_MODE="per-org",
        ORGPLANE_KUBERNETES_CONTROL_PLANE_NAMESPACE="cp",
        ORGPLANE_KUBERNETES_REDIS_NAMESPACE="data",
        ORGPLANE_KUBERNETES_CONTROL_PLANE_PORT="18080",
        ORGPLANE_KUBERNETES_REDIS_PORT="16379",
    )
    options = provisioner_options(SimpleNamespace(settings=settings))  # type: ignore[arg-type]
    built = desired_objects(make_spec(run_id="r"), options=options)
    (policy,) = [obj for obj in built if obj["kind"] == "NetworkPolicy"]
    egress = {
        (peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"], port["port"])
        for rule in policy["spec"]["egress"]
        for peer in rule["to"]
        for port in rule["ports"]
    }
    assert egress == {("cp", 18080), ("data", 16379), ("kube-system", 53)}
    assert {obj["metadata"]["labels"][MANAGED_BY_LABEL] for obj in built} == {"audit-deployment"}


async def test_backup_max_bytes_and_dir(make_settings: Any, tmp_path: Path) -> None:
    """An imported archive above the limit is refused with 413 and nothing is kept; archives
    are received in the configured backup directory."""
    env = {"ORGPLANE_BACKUP_MAX_BYTES": "1000", "ORGPLANE_BACKUP_DIR": str(tmp_path / "elsewhere")}
    async with await app_client(make_settings, **env) as client:
        owner = await add_user(client, "owner@example.com")
        org = await make_org(client, "imports", members={owner: "owner"}, phase="running")
        async with direct_db(client) as db:
            db.add(Instance(org_id=org, provisioner="local", endpoint="http://127.0.0.1:9"))
            await db.commit()
        headers = await login(client, "owner@example.com")
        url = f"/api/v1/orgs/{org}/import?confirm=imports"
        big = await client.post(url, headers=headers, content=b"\0" * 1001)
        small = await client.post(url, headers=headers, content=b"\0" * 1000)
        async with direct_db(client) as db:
            kept = (await db.exec(select(Backup).where(Backup.org_id == org))).all()
    assert big.status_code == 413, big.text
    assert big.headers["content-type"].startswith("application/problem+json")
    assert big.json()["code"] == "archive_too_large"
    # At the limit the size passes; the bytes are then read, and are not an archive.
    assert small.status_code == 422, small.text
    assert small.json()["code"] != "archive_too_large"
    assert [b.status for b in kept] == ["failed", "failed"]
    assert [p.name for p in (tmp_path / "elsewhere").iterdir()] == [org]  # emptied again
    assert list((tmp_path / "elsewhere" / org).iterdir()) == []
    assert not (tmp_path / "data" / "backups").exists()


async def test_log_format(make_settings: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """``json`` renders each record as one JSON object; ``console`` as text for people."""
    lines = {}
    before = structlog.get_config()
    try:
        for fmt in ("json", "console"):
            async with await app_client(make_settings, ORGPLANE_LOG_FORMAT=fmt):
                capsys.readouterr()
                structlog.get_logger("orgplane.test").warning("format check", answer=42)
                lines[fmt] = capsys.readouterr().err.strip().splitlines()[-1]
    finally:
        # The app's logger printed to this test's captured stderr, closed after it.
        structlog.configure(**before)
    record = json.loads(lines["json"])
    assert (record["event"], record["answer"], record["level"]) == ("format check", 42, "warning")
    assert "format check" in lines["console"]
    with pytest.raises(json.JSONDecodeError):
        json.loads(lines["console"])


async def test_secret_key(make_settings: Any) -> None:
    """Signing keys are stored encrypted under the deployment secret, and only it opens them."""
    secret = "an audit deployment secret"
    async with await app_client(make_settings, ORGPLANE_SECRET_KEY=secret) as client:
        assert (await client.get("/.well-known/jwks.json")).json()["keys"]
        async with direct_db(client) as db:
            keys = (await db.exec(select(SigningKey))).all()
    assert keys
    for key in keys:
        assert SecretBox(secret, purpose="orgplane signing keys v1").decrypt(key.private_key_enc)
        with pytest.raises(ValueError, match="wrong deployment secret"):
            SecretBox(TEST_SECRET, purpose="orgplane signing keys v1").decrypt(key.private_key_enc)


async def test_cookie_secure(make_settings: Any) -> None:
    """On, the UI's cookies are Secure although the public URL and the request are http."""
    secure = {}
    for value in ("true", "false"):
        env = {"ORGPLANE_COOKIE_SECURE": value, "ORGPLANE_PUBLIC_URL": "http://127.0.0.1:8080"}
        async with await app_client(make_settings, **env) as client:
            page = await client.get("/ui/login")
        cookies = [c.lower() for c in page.headers.get_list("set-cookie")]
        assert cookies
        secure[value] = {"; secure" in c for c in cookies}
    assert secure == {"true": {True}, "false": {False}}


async def test_provisioner(make_settings: Any) -> None:
    """The named backend is loaded; an unknown name stops the start, naming the installed."""
    async with await app_client(make_settings, ORGPLANE_PROVISIONER="local") as client:
        assert runtime_of(client).provisioner.name == "local"
    with pytest.raises(Exception) as caught:  # noqa: PT011 - litestar may wrap it in a group
        async with await app_client(make_settings, ORGPLANE_PROVISIONER="no-such-backend"):
            pass
    assert "unknown provisioner 'no-such-backend'" in repr(caught.value)


async def test_org_token_ttl(make_settings: Any) -> None:
    """Org tokens from a token exchange live the configured seconds."""
    async with await app_client(make_settings, ORGPLANE_ORG_TOKEN_TTL="321") as client:
        owner = await add_user(client, "owner@example.com")
        await make_org(client, "ttlorg", members={owner: "owner"})
        body = await login_body(client, "owner@example.com")
        answer = await exchange(client, body["access_token"], audience="org:ttlorg")
    assert answer.status_code == 200, answer.text
    assert answer.json()["expires_in"] == 321
    token = claims(answer.json()["access_token"])
    assert token["exp"] - token["iat"] == 321
