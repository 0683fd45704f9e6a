"""The interface's data types, names, labels and the registry (no services needed).

Proves: object names are DNS-safe, at most 48 characters and distinct per org whatever the slug;
names that must survive a rename depend on the org id alone; a spec never shows its secrets in
``repr`` and its fingerprint follows every field; options refuse a deployment id Kubernetes would
refuse and read settings-shaped mappings; the registry loads every built-in backend by name and
names the installed ones when asked for an unknown one.
"""

from __future__ import annotations

import dataclasses
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orgplane_wire import contract
from orgplane_wire.contract import Env
from provisioners.base import Provisioner, ProvisionerOptions, Resources, instance_env
from provisioners.docker import DockerProvisioner
from provisioners.errors import PermanentProvisionerError, UnknownProvisionerError
from provisioners.kubernetes import KubernetesProvisioner
from provisioners.local import LocalProvisioner
from provisioners.naming import (
    data_volume_name,
    instance_name,
    is_ours,
    stable_name,
)
from provisioners.registry import create_provisioner, installed_provisioners, load_provisioner_class
from tests.provisioners.harness import make_spec

DNS_LABEL = re.compile(r"[a-z]([a-z0-9-]{0,61}[a-z0-9])?")
ORG_IDS = st.text(alphabet="abcdefABCDEF0123456789_-", min_size=1, max_size=64)


@given(slug=st.text(max_size=80), org_id=ORG_IDS)
def test_instance_names_are_dns_labels(slug: str, org_id: str) -> None:
    name = instance_name(slug=slug, org_id=org_id)
    assert DNS_LABEL.fullmatch(name), name
    assert len(name) <= 48, name
    assert DNS_LABEL.fullmatch(data_volume_name(org_id)), data_volume_name(org_id)
    assert len(stable_name("orgplane-org", org_id)) <= 63


def test_names_keep_orgs_apart_and_data_survives_a_rename() -> None:
    assert instance_name(slug="Acme Inc!", org_id="a1") != instance_name(
        slug="acme-inc", org_id="b2"
    )
    assert instance_name(slug="Acme Inc!", org_id="a1").startswith("orgplane-acme-inc-")
    assert data_volume_name("a1") == data_volume_name("a1") == "orgplane-data-a1"
    assert stable_name("orgplane-org", "A_1") != stable_name("orgplane-org", "a-1")


@pytest.mark.parametrize("org_id", ["", "../x", "a/b", "a b", "x" * 65])
def test_unsafe_org_ids_are_refused(org_id: str) -> None:
    with pytest.raises(PermanentProvisionerError):
        instance_name(slug="acme", org_id=org_id)


def test_ownership_needs_both_labels() -> None:
    labels = {"orgplane.org-id": "o1", "orgplane.managed-by": "dep"}
    assert is_ours(labels, deployment_id="dep", org_id="o1")
    assert is_ours(labels, deployment_id="dep")
    assert not is_ours(labels, deployment_id="other")
    assert not is_ours(labels, deployment_id="dep", org_id="o2")
    assert not is_ours({"orgplane.managed-by": "dep"}, deployment_id="dep")
    assert not is_ours(None, deployment_id="dep")


def test_a_spec_hides_its_secrets_and_fingerprints_every_field() -> None:
    spec = make_spec(run_id="r")
    credential = spec.env[Env.INSTANCE_CREDENTIAL]
    assert credential not in repr(spec)
    assert Env.INSTANCE_CREDENTIAL not in spec.plain_env()
    assert spec.secret_env() == {Env.INSTANCE_CREDENTIAL: credential, Env.REDIS_URL: ""}
    assert spec.data_volume == data_volume_name(spec.org_id)

    same = dataclasses.replace(spec)
    assert same.fingerprint() == spec.fingerprint()
    for change in (
        {"env": {**spec.env, Env.INSTANCE_CREDENTIAL: "rotated-credential-0123456789"}},
        {"image": "other:1"},
        {"resources": Resources(cpu=2, memory_mb=256, storage_mb=256)},
        {"hostnames": ("acme.example.com",)},
        {"labels": {"team": "x"}},
    ):
        assert dataclasses.replace(spec, **change).fingerprint() != spec.fingerprint(), change


def test_instance_env_speaks_the_wire_contract() -> None:
    env = instance_env(
        org_id="o1",
        slug="acme",
        instance_id="i1",
        control_plane_url="http://cp:8080/",
        credential="c" * 32,
        hostnames=("acme.example.com", "www.acme.test"),
        heartbeat_interval=2.5,
        limits={"max_members": 5},
    )
    assert env[Env.CONTROL_PLANE_URL] == "http://cp:8080"
    assert env[Env.JWKS_URL] == "http://cp:8080/.well-known/jwks.json"
    assert env[Env.ISSUER] == "http://cp:8080"
    assert env[Env.AUDIENCE] == contract.org_audience("o1")
    assert env[Env.REDIS_NAMESPACE] == contract.redis_namespace("o1")
    assert env[Env.HOSTNAMES] == "acme.example.com,www.acme.test"
    assert env[Env.HEARTBEAT_INTERVAL] == "2.5"
    assert env[Env.LIMITS] == '{"max_members":5}'


def test_options_come_from_settings_shaped_mappings() -> None:
    options = ProvisionerOptions.from_mapping(
        {
            "deployment_id": "prod-eu",
            "entrypoints": "web, websecure",
            "docker_network": "edge",
            "database_url": "ignored",
            "tls": True,
        },
        data_root="/srv/orgplane",
    )
    assert options.deployment_id == "prod-eu"
    assert options.entrypoints == ("web", "websecure")
    assert options.docker_network == "edge"
    assert options.tls is True
    assert str(options.data_root) == "/srv/orgplane"


@pytest.mark.parametrize("deployment_id", ["", "has space", "-dash", "x" * 64, "a/b"])
def test_options_refuse_ids_kubernetes_would_refuse(deployment_id: str) -> None:
    with pytest.raises(PermanentProvisionerError):
        ProvisionerOptions(deployment_id=deployment_id)


def test_the_registry_loads_every_builtin_backend() -> None:
    assert {"local", "docker", "kubernetes"} <= set(installed_provisioners())
    assert load_provisioner_class("local") is LocalProvisioner
    assert load_provisioner_class("docker") is DockerProvisioner
    assert load_provisioner_class("kubernetes") is KubernetesProvisioner
    for cls in (LocalProvisioner, DockerProvisioner, KubernetesProvisioner):
        assert issubclass(cls, Provisioner)
        assert cls.name in installed_provisioners()


def test_an_unknown_backend_names_the_installed_ones(tmp_path: object) -> None:
    with pytest.raises(UnknownProvisionerError) as caught:
        create_provisioner("nomad", options=ProvisionerOptions())
    assert "nomad" in str(caught.value)
    assert "docker, kubernetes, local" in str(caught.value)


def test_create_provisioner_passes_options_and_extras(tmp_path: object) -> None:
    options = ProvisionerOptions(deployment_id="reg", data_root=tmp_path)  # type: ignore[arg-type]
    made = create_provisioner("local", options=options, stop_timeout=1.0)
    assert isinstance(made, LocalProvisioner)
    assert made.options is options
    assert made.stop_timeout == 1.0
