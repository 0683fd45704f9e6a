"""The Helm chart lints, renders valid objects for every CI values file, and runs safely.

Every rendered object is checked against the Kubernetes schemas bundled in kubernetes-validate
(strict: unknown fields fail) or against Traefik's CRD schemas.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.deploy.helm_chart import (
    CHART,
    CI_VALUES,
    DEFAULT_VALUES,
    NAMESPACE,
    Manifest,
    helm,
    named,
    of_kind,
    only,
    render,
    render_error,
    validate_object,
)
from tests.deploy.settings_names import unknown
from tests.support.schemas import load_schema

VALUES = {path.name.removesuffix("-values.yaml"): path for path in CI_VALUES}
SECRET_VALUES = ("ci-only-secret-key", "ci-password", "ci-routing-token")


def _container(deployment: Manifest) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


def test_the_ci_values_files_cover_each_variant() -> None:
    assert set(VALUES) == {"default", "ingressroute-tls", "per-org-namespaces", "existing-secret"}


def test_chart_yaml_matches_the_published_chart_schema() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    jsonschema.validate(chart, load_schema("chart.json"))
    assert chart["apiVersion"] == "v2"


@pytest.mark.helm
@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_helm_lint_is_clean(values: Path) -> None:
    result = helm("lint", "--strict", str(CHART), "--values", str(values))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[WARNING]" not in result.stdout
    assert "[ERROR]" not in result.stdout


@pytest.mark.helm
@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_every_rendered_object_is_valid(values: Path) -> None:
    objects = render(values)
    kinds = {obj["kind"] for obj in objects}
    assert {"Deployment", "Service", "ConfigMap", "Job", "ServiceAccount"} <= kinds
    for obj in objects:
        validate_object(obj)
        cluster_scoped = obj["kind"] in ("ClusterRole", "ClusterRoleBinding")
        assert ("namespace" in obj["metadata"]) != cluster_scoped, obj["metadata"]["name"]


@pytest.mark.helm
def test_an_unknown_field_fails_validation() -> None:
    # The validation above must be able to fail: a misspelt field is caught, in a core object
    # and in a Traefik CRD alike.
    objects = render(VALUES["ingressroute-tls"])
    deployment = only(objects, "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(Exception, match="readinesProbe"):
        validate_object(deployment)
    route = of_kind(objects, "IngressRoute")[0]
    route["spec"]["routes"][0]["servics"] = []
    with pytest.raises(jsonschema.ValidationError, match="servics"):
        validate_object(route)


@pytest.mark.helm
def test_control_plane_deployment_is_replicated_probed_and_locked_down() -> None:
    objects = render(DEFAULT_VALUES)
    deployment = only(objects, "Deployment")
    pod = deployment["spec"]["template"]
    container = _container(deployment)
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert container["args"] == ["serve"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["resources"]["requests"]
    assert container["resources"]["limits"]["memory"]

    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True

    preferred = pod["spec"]["affinity"]["podAntiAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"
    ]
    term = preferred[0]["podAffinityTerm"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()

    names = {(obj["kind"], obj["metadata"]["name"]) for obj in objects}
    sources = container["envFrom"]
    assert ("ConfigMap", sources[0]["configMapRef"]["name"]) in names
    assert ("Secret", sources[1]["secretRef"]["name"]) in names

    service = only(objects, "Service")
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert service["spec"]["ports"][0]["targetPort"] == container["ports"][0]["name"]
    pdb = only(objects, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]


@pytest.mark.helm
def test_hard_anti_affinity_and_a_larger_budget() -> None:
    objects = render(VALUES["per-org-namespaces"])
    deployment = only(objects, "Deployment")
    affinity = deployment["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    assert list(affinity) == ["requiredDuringSchedulingIgnoredDuringExecution"]
    assert deployment["spec"]["replicas"] == 3
    assert only(objects, "PodDisruptionBudget")["spec"]["minAvailable"] == 2


@pytest.mark.helm
@pytest.mark.parametrize(
    ("kube_version", "api_version"),
    [("1.20.2", "policy/v1beta1"), ("1.21.0", "policy/v1"), (None, "policy/v1")],
)
def test_the_disruption_budget_uses_the_api_the_server_serves(
    kube_version: str | None, api_version: str
) -> None:
    """1.20 serves PodDisruptionBudget only as policy/v1beta1 (policy/v1 came in 1.21): the
    chart picks by the server's version (the chart floor is 1.20, tests/deploy/
    test_chart_cluster.py applies it to a real 1.20.2 server)."""
    objects = render(DEFAULT_VALUES, kube_version=kube_version)
    assert only(objects, "PodDisruptionBudget")["apiVersion"] == api_version


@pytest.mark.helm
def test_per_org_namespaces_are_refused_below_1_25() -> None:
    """Each org's namespace carries Pod Security ``restricted``, which only Pod Security
    admission (1.25) enforces: below that the chart refuses the mode rather than pretend.
    (Before the chart's floor went down to 1.20 the render failed on the floor itself, without
    this reason: the assertion on the message failed on that code.)"""
    error = render_error(VALUES["per-org-namespaces"], kube_version="1.24.9")
    assert "needs Kubernetes >= 1.25" in error
    assert of_kind(render(VALUES["per-org-namespaces"], kube_version="1.25.0"), "ClusterRole")


@pytest.mark.helm
def test_a_single_replica_gets_no_disruption_budget() -> None:
    # With one replica, minAvailable 1 would block every node drain.
    objects = render(DEFAULT_VALUES, sets=("replicaCount=1",))
    assert of_kind(objects, "PodDisruptionBudget") == []


@pytest.mark.helm
def test_migration_runs_as_a_hook_before_install_and_upgrade() -> None:
    objects = render(DEFAULT_VALUES)
    job = only(objects, "Job")
    hooks = job["metadata"]["annotations"]
    assert hooks["helm.sh/hook"] == "pre-install,pre-upgrade"
    pod = job["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    container = pod["containers"][0]
    assert container["command"] == ["orgplane", "migrate"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    url = next(e for e in container["env"] if e["name"] == "ORGPLANE_DATABASE_URL")
    source = url["valueFrom"]["secretKeyRef"]
    # Hooks run before the release's objects exist: the job's Secret must be a hook too, and an
    # earlier one, holding the database URL and nothing else.
    hook_secret = named(objects, "Secret", source["name"])
    secret_hooks = hook_secret["metadata"]["annotations"]
    assert secret_hooks["helm.sh/hook"] == hooks["helm.sh/hook"]
    assert int(secret_hooks["helm.sh/hook-weight"]) < int(hooks["helm.sh/hook-weight"])
    assert "hook-succeeded" in secret_hooks["helm.sh/hook-delete-policy"]
    assert set(hook_secret["stringData"]) == {"ORGPLANE_DATABASE_URL"}


@pytest.mark.helm
def test_existing_secret_replaces_the_chart_secret() -> None:
    objects = render(VALUES["existing-secret"])
    assert of_kind(objects, "Secret") == []
    assert of_kind(objects, "Ingress") == of_kind(objects, "IngressRoute") == []
    deployment = only(objects, "Deployment")
    assert _container(deployment)["envFrom"][1]["secretRef"]["name"] == "orgplane-credentials"
    job_env = only(objects, "Job")["spec"]["template"]["spec"]["containers"][0]["env"]
    url = next(e for e in job_env if e["name"] == "ORGPLANE_DATABASE_URL")
    assert url["valueFrom"]["secretKeyRef"]["name"] == "orgplane-credentials"
    config = only(objects, "ConfigMap")["data"]
    assert config["ORGPLANE_MAX_CONCURRENT_PROVISIONING"] == "8"
    assert config["ORGPLANE_ADMIN_EMAIL"] == "ops@example.com"
    assert config["ORGPLANE_PUBLIC_URL"] == "https://orgplane.example.com"


@pytest.mark.helm
def test_backups_live_on_one_claim_every_replica_mounts() -> None:
    """Never the pod's emptyDir: a backup one replica took is there for the others, and for
    the pods after a rollout; the claim outlives ``helm uninstall``."""
    objects = render(VALUES["default"])
    deployment = only(objects, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    claim = only(objects, "PersistentVolumeClaim")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    (volume,) = [v for v in pod["volumes"] if v["name"] == "backups"]
    assert volume == {
        "name": "backups",
        "persistentVolumeClaim": {"claimName": claim["metadata"]["name"]},
    }
    mounts = {m["name"]: m["mountPath"] for m in _container(deployment)["volumeMounts"]}
    config = only(objects, "ConfigMap")["data"]
    assert config["ORGPLANE_BACKUP_DIR"] == mounts["backups"] == "/backups"
    assert not config["ORGPLANE_BACKUP_DIR"].startswith(config["ORGPLANE_DATA_DIR"])
    assert "emptyDir" not in volume

    sets = ("backups.existingClaim=nfs-backups", "backups.accessModes[0]=ReadWriteOnce")
    existing = render(VALUES["default"], sets=sets)
    assert of_kind(existing, "PersistentVolumeClaim") == []
    pod = only(existing, "Deployment")["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "backups"]
    assert volume["persistentVolumeClaim"]["claimName"] == "nfs-backups"

    single = render(VALUES["default"], sets=("backups.accessModes[0]=ReadWriteOnce",))
    assert only(single, "PersistentVolumeClaim")["spec"]["accessModes"] == ["ReadWriteOnce"]
    # Replicas forced onto different nodes cannot share a ReadWriteOnce claim.
    error = render_error(
        VALUES["default"],
        sets=("backups.accessModes[0]=ReadWriteOnce", "podAntiAffinity=hard"),
    )
    assert "ReadWriteMany" in error
    assert "backups" in render_error(VALUES["default"], sets=("backups.accessModes[0]=Sometimes",))


@pytest.mark.helm
@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_secret_values_appear_only_in_secrets(values: Path) -> None:
    for obj in render(values):
        if obj["kind"] == "Secret":
            continue
        text = yaml.safe_dump(obj)
        leaked = [value for value in SECRET_VALUES if value in text]
        assert not leaked, f"{obj['kind']} {obj['metadata']['name']} holds {leaked}"


@pytest.mark.helm
def test_the_secret_carries_the_secret_settings() -> None:
    secret = named(render(VALUES["ingressroute-tls"]), "Secret", "op-orgplane")
    assert set(secret["stringData"]) == {
        "ORGPLANE_SECRET_KEY",
        "ORGPLANE_DATABASE_URL",
        "ORGPLANE_REDIS_URL",
        "ORGPLANE_ROUTING_TOKEN",
    }


@pytest.mark.helm
def test_settings_and_secret_changes_roll_the_pods() -> None:
    def checksums(*sets: str) -> dict[str, str]:
        pod = only(render(DEFAULT_VALUES, sets=sets), "Deployment")["spec"]["template"]
        return {
            k: v for k, v in pod["metadata"]["annotations"].items() if k.startswith("checksum/")
        }

    base = checksums()
    louder = checksums("logLevel=DEBUG")
    rotated = checksums("secrets.redisUrl=redis://orgplane:rotated@redis.db.svc:6379/0")
    assert louder["checksum/config"] != base["checksum/config"]
    assert louder["checksum/secret"] == base["checksum/secret"]
    assert rotated["checksum/secret"] != base["checksum/secret"]


@pytest.mark.helm
def test_ingressroute_with_tls_redirects_plain_http() -> None:
    objects = render(VALUES["ingressroute-tls"])
    service = only(objects, "Service")
    routes = {r["metadata"]["name"]: r["spec"] for r in of_kind(objects, "IngressRoute")}
    middleware = only(objects, "Middleware")
    secure, plain = routes["op-orgplane"], routes["op-orgplane-http"]
    assert secure["entryPoints"] == ["websecure"]
    assert secure["tls"] == {"certResolver": "letsencrypt"}
    assert plain["entryPoints"] == ["web"]
    assert plain["routes"][0]["middlewares"] == [{"name": middleware["metadata"]["name"]}]
    assert middleware["spec"]["redirectScheme"]["scheme"] == "https"
    for spec in routes.values():
        rule = spec["routes"][0]
        assert rule["match"] == "Host(`orgplane.example.com`)"
        assert rule["services"] == [
            {"name": service["metadata"]["name"], "port": service["spec"]["ports"][0]["name"]}
        ]
    config = only(objects, "ConfigMap")["data"]
    assert config["ORGPLANE_PUBLIC_URL"] == "https://orgplane.example.com"
    assert config["ORGPLANE_BASE_DOMAIN"] == "orgs.example.com"
    # Org routers get TLS the same way as the control plane's.
    assert config["ORGPLANE_ENTRYPOINTS"] == "websecure"
    assert config["ORGPLANE_TLS"] == "true"
    assert config["ORGPLANE_CERT_RESOLVER"] == "letsencrypt"
    assert config["ORGPLANE_INSTANCE_IMAGE"] == "registry.example.com/orgplane-instance:0.1.0"


@pytest.mark.helm
def test_ingress_with_tls_routes_the_base_domain_to_the_service() -> None:
    objects = render(VALUES["per-org-namespaces"])
    ingress = only(objects, "Ingress")["spec"]
    assert ingress["ingressClassName"] == "nginx"
    assert ingress["tls"] == [{"hosts": ["orgplane.example.com"], "secretName": "orgplane-tls"}]
    backend = ingress["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == only(objects, "Service")["metadata"]["name"]


@pytest.mark.helm
@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_the_control_plane_is_configured_with_settings_it_reads(values: Path) -> None:
    objects = render(values)
    config = only(objects, "ConfigMap")["data"]
    names = set(config)
    for secret in of_kind(objects, "Secret"):
        names |= set(secret["stringData"])
    names |= {e["name"] for e in _container(only(objects, "Deployment")).get("env", [])}
    assert unknown(names) == set()
    assert config["ORGPLANE_MODE"] == "production"
    assert config["ORGPLANE_HOST"] == "0.0.0.0"
    # Org instances reach the control plane through its Service, never the public URL.
    internal = f"http://op-orgplane.{NAMESPACE}.svc:80"
    assert config["ORGPLANE_INSTANCE_CONTROL_PLANE_URL"] == internal
    assert config["ORGPLANE_ROUTING_FALLBACK_URL"] == internal


@pytest.mark.helm
def test_the_warm_pool_size_reaches_the_control_plane() -> None:
    default = only(render(VALUES["default"]), "ConfigMap")["data"]
    assert default["ORGPLANE_WARM_POOL_SIZE"] == "0"
    pooled = only(render(VALUES["per-org-namespaces"]), "ConfigMap")["data"]
    assert pooled["ORGPLANE_WARM_POOL_SIZE"] == "2"
    error = render_error(VALUES["default"], sets=("provisioner.warmPoolSize=-1",))
    assert "warmPoolSize" in error


@pytest.mark.helm
def test_trusted_proxies_reach_the_control_plane() -> None:
    """Traefik's pod range is the one network whose X-Forwarded-For the control plane reads
    (tests/api/test_client_ip.py); without the value, none is."""
    default = only(render(VALUES["default"]), "ConfigMap")["data"]
    assert "ORGPLANE_TRUSTED_PROXIES" not in default
    traefik = only(render(VALUES["ingressroute-tls"]), "ConfigMap")["data"]
    assert json.loads(traefik["ORGPLANE_TRUSTED_PROXIES"]) == ["10.42.128.0/24"]
    error = render_error(VALUES["default"], sets=("trustedProxies[0]=not a network",))
    assert "trustedProxies" in error
