"""compose/compose.yaml is a valid Compose file whose Traefik configuration Traefik accepts.

Traefik's static configuration is given as flags and the routes as labels; both are turned
into the tree they stand for and validated against Traefik's published schemas.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
from typing import Any

import jsonschema
import pytest
import yaml

from tests.deploy.compose_file import (
    COMPOSE_FILE,
    ENV_EXAMPLE,
    FILLED_IN,
    TLS_FILE,
    MissingVariable,
    environment,
    example_env,
    load,
    read_env_file,
    variables,
)
from tests.deploy.settings_names import unknown
from tests.deploy.traefik_tree import (
    DYNAMIC_SCHEMA,
    STATIC_SCHEMA,
    dynamic_configuration,
    static_configuration,
)
from tests.support.schemas import load_schema
from tests.support.services import need

# The spec names draft 7 without the trailing '#' jsonschema looks for; say so explicitly.
COMPOSE_SPEC = jsonschema.Draft7Validator(load_schema("compose-spec.json"))
VARIANTS = {"plain": (COMPOSE_FILE,), "tls": (COMPOSE_FILE, TLS_FILE)}


def _services(*files: Any) -> dict[str, Any]:
    services: dict[str, Any] = load(*files)["services"]
    return services


@pytest.mark.parametrize("path", [COMPOSE_FILE, TLS_FILE], ids=lambda p: p.name)
def test_each_file_matches_the_compose_spec(path: Any) -> None:
    COMPOSE_SPEC.validate(load(path))


def test_the_spec_validation_can_fail() -> None:
    project = load()
    project["services"]["redis"]["restart_policy"] = "always"
    with pytest.raises(jsonschema.ValidationError, match="restart_policy"):
        COMPOSE_SPEC.validate(project)


def test_no_top_level_name_and_nothing_depends_on_traefik() -> None:
    # Compose v1.29 refuses `name:`; the end-to-end test starts everything but Traefik by name.
    raw = yaml.safe_load(COMPOSE_FILE.read_text())
    assert "name" not in raw
    assert "version" not in raw
    for name, service in _services().items():
        assert "traefik" not in service.get("depends_on", {}), name


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_traefik_static_configuration_matches_traefik_schema(variant: str) -> None:
    services = _services(*VARIANTS[variant])
    static = static_configuration(services["traefik"]["command"])
    jsonschema.validate(static, load_schema(STATIC_SCHEMA))

    docker = static["providers"]["docker"]
    assert docker["exposedByDefault"] is False
    assert static["entryPoints"]["web"]["address"] == ":80"
    assert static["certificatesResolvers"]["letsencrypt"]["acme"]["httpChallenge"] == {
        "entryPoint": "web"
    }
    # Traefik reaches org containers on the network they join.
    org_network = load()["networks"]["orgplane"]["name"]
    assert docker["network"] == org_network
    assert environment(services["control-plane"])["ORGPLANE_DOCKER_NETWORK"] == org_network
    # The control plane's HTTP provider, with its token: wake, unavailable pages and custom
    # domains come from there (docs/routing.md).
    http = static["providers"]["http"]
    assert http["endpoint"] == "http://control-plane:8080/api/v1/routing/traefik"
    token = environment(services["control-plane"])["ORGPLANE_ROUTING_TOKEN"]
    assert token == FILLED_IN["ORGPLANE_ROUTING_TOKEN"]
    assert http["headers"] == {"Authorization": f"Bearer {token}"}


def test_a_misspelt_traefik_flag_fails_the_schema() -> None:
    static = static_configuration(["--providers.docker.exposedByDefualt=false"])
    with pytest.raises(jsonschema.ValidationError, match="exposedByDefualt"):
        jsonschema.validate(static, load_schema(STATIC_SCHEMA))


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_route_labels_match_traefiks_dynamic_configuration_schema(variant: str) -> None:
    services = _services(*VARIANTS[variant])
    schema = load_schema(DYNAMIC_SCHEMA)
    routed = {
        n: s["labels"] for n, s in services.items() if "traefik.enable" in s.get("labels", {})
    }
    for labels in routed.values():
        jsonschema.validate(dynamic_configuration(labels), schema)

    http = dynamic_configuration(routed["control-plane"], container="control-plane")["http"]
    router = http["routers"]["orgplane-control-plane"]
    service = http["services"][router["service"]]
    assert service["loadBalancer"]["servers"] == [{"url": "http://control-plane:8080"}]
    assert router["rule"] == "Host(`orgplane.localhost`)"
    if variant == "tls":
        assert router["entryPoints"] == ["websecure"]
        assert router["tls"] == {"certResolver": "letsencrypt"}
        redirect = dynamic_configuration(routed["traefik"])["http"]["middlewares"]
        assert redirect["orgplane-https-redirect"]["redirectScheme"]["scheme"] == "https"
    else:
        assert router["entryPoints"] == ["web"]
        assert "tls" not in router  # any tls.* label would make the router TLS-only


def test_env_example_documents_exactly_the_variables_the_files_use() -> None:
    used: dict[str, str | None] = {}
    for path in (COMPOSE_FILE, TLS_FILE):
        used |= variables(path.read_text())
    documented = read_env_file()
    assert set(used) == set(documented)
    # What has no default is what the user must fill in: empty in the example.
    required = {name for name, op in used.items() if op is None or op.endswith("?")}
    assert required == set(FILLED_IN)
    assert all(documented[name] == "" for name in required)


def test_the_example_alone_is_refused_until_the_secrets_are_set() -> None:
    with pytest.raises(
        MissingVariable, match=r"ORGPLANE_SECRET_KEY|REDIS_PASSWORD|DOCKER_GID|ROUTING_TOKEN"
    ):
        load(env=read_env_file())


def test_services_are_locked_down_and_only_traefik_is_public() -> None:
    services = _services()
    for name in ("control-plane", "migrate"):
        service = services[name]
        assert service["read_only"] is True
        assert service["cap_drop"] == ["ALL"]
        assert "no-new-privileges:true" in service["security_opt"]
    assert services["redis"]["cap_drop"] == ["ALL"]
    assert "ports" not in services["redis"]
    assert services["control-plane"]["ports"] == ["127.0.0.1:8080:8080"]
    assert services["traefik"]["ports"] == ["80:80", "443:443"]


def test_backups_live_on_a_named_volume_of_their_own() -> None:
    project = load()
    assert "control-plane-backups" in project["volumes"]
    for name in ("control-plane", "migrate"):
        service = project["services"][name]
        assert environment(service)["ORGPLANE_BACKUP_DIR"] == "/backups"
        assert "control-plane-backups:/backups" in service["volumes"]


def test_the_docker_api_proxy_is_optional_and_out_of_org_reach() -> None:
    project = load()
    proxy = project["services"]["docker-socket-proxy"]
    assert proxy["profiles"] == ["socket-proxy"]
    # Org containers join `orgplane`; the proxy must never be reachable from there.
    assert proxy["networks"] == ["docker-api"]
    assert project["networks"]["docker-api"]["internal"] is True
    settings = proxy["environment"]
    assert settings["EXEC"] == "0"
    assert settings["BUILD"] == "0"
    for name in ("SECRETS", "SWARM", "NODES", "SERVICES", "PLUGINS", "SYSTEM", "AUTH"):
        assert settings.get(name, "0") == "0"


def test_redis_runs_with_acls_and_the_control_plane_uses_its_admin_user() -> None:
    services = _services()
    redis = services["redis"]
    assert redis["entrypoint"][-1].endswith("redis-entrypoint.sh")
    password = FILLED_IN["REDIS_PASSWORD"]
    assert environment(redis)["REDIS_ADMIN_PASSWORD"] == password
    url = environment(services["control-plane"])["ORGPLANE_REDIS_URL"]
    assert url == f"redis://orgplane:{password}@redis:6379/0"
    assert services["control-plane"]["depends_on"] == {
        "migrate": {"condition": "service_completed_successfully"},
        "redis": {"condition": "service_healthy"},
    }


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_the_control_plane_gets_only_settings_it_reads(variant: str) -> None:
    services = _services(*VARIANTS[variant])
    for name in ("control-plane", "migrate"):
        env = environment(services[name])
        assert unknown(set(env)) == set()
        assert env["ORGPLANE_MODE"] == "production"
        assert env["ORGPLANE_PROVISIONER"] == "docker"


def _docker_compose(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    need("docker-compose", binary is not None)
    assert binary is not None
    clean = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **env}
    return subprocess.run(
        [binary, "-f", str(COMPOSE_FILE), *args, "--env-file", str(ENV_EXAMPLE), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean,
        check=False,
    )


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_docker_compose_accepts_the_files(variant: str) -> None:
    extra = ["-f", str(TLS_FILE)] if variant == "tls" else []
    result = _docker_compose(*extra, env=FILLED_IN)
    assert result.returncode == 0, result.stderr


def test_docker_compose_refuses_to_run_without_the_secrets() -> None:
    result = _docker_compose(env={})
    assert result.returncode != 0
    assert "in compose/.env" in result.stderr


def test_interpolation_model_agrees_with_docker_compose() -> None:
    binary = shutil.which("docker-compose")
    need("docker-compose", binary is not None)
    assert binary is not None
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **FILLED_IN}
    result = subprocess.run(
        [binary, "-f", str(COMPOSE_FILE), "--env-file", str(ENV_EXAMPLE), "config"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=True,
    )
    theirs = yaml.safe_load(result.stdout)["services"]
    ours = load(env=example_env())["services"]
    for name in ("control-plane", "migrate", "redis"):
        assert environment(theirs[name]) == environment(ours[name]), name
    assert theirs["traefik"]["command"] == ours["traefik"]["command"]


def test_only_traefiks_fixed_address_is_a_trusted_proxy() -> None:
    """The control plane reads X-Forwarded-For from Traefik alone: its fixed address, outside
    the range org containers get addresses from (an org container could otherwise claim any
    client IP, tests/api/test_client_ip.py)."""
    project = load()
    traefik = project["services"]["traefik"]["networks"]["orgplane"]["ipv4_address"]
    trusted = environment(project["services"]["control-plane"])["ORGPLANE_TRUSTED_PROXIES"]
    assert json.loads(trusted) == [f"{traefik}/32"]
    (pool,) = project["networks"]["orgplane"]["ipam"]["config"]
    address = ipaddress.ip_address(traefik)
    assert address in ipaddress.ip_network(pool["subnet"])
    assert address not in ipaddress.ip_network(pool["ip_range"])
