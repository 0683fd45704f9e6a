"""The control plane's RBAC grants exactly what the kubernetes provisioner uses, and no more.

The provisioner's needs are written out here from what it does (provisioners/kubernetes): for
each org it reads, lists, creates, server-side applies or merge-patches (both PATCH) and deletes
a Secret, a PersistentVolumeClaim, a Service, a Deployment and a route (IngressRoute or
Ingress); with per-org namespaces also a Namespace (never listed), a ResourceQuota and a
NetworkPolicy. Removal lists every kind it may ever have made, so a kind this configuration
never creates still needs list and delete. To read an instance's log it lists the org's pods
and gets their ``pods/log``; it never changes a pod. It never watches or updates (PUT).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from provisioners.kubernetes.client import KINDS
from tests.deploy.helm_chart import (
    CI_VALUES,
    DEFAULT_VALUES,
    NAMESPACE,
    Manifest,
    of_kind,
    only,
    render,
)

MANAGE = frozenset({"get", "list", "create", "patch", "delete"})
SWEEP = frozenset({"list", "delete"})
ALWAYS = {
    ("", "secrets"): MANAGE,
    ("", "persistentvolumeclaims"): MANAGE,
    ("", "services"): MANAGE,
    ("apps", "deployments"): MANAGE,
    ("", "pods"): frozenset({"list"}),
    ("", "pods/log"): frozenset({"get"}),
}
ROUTE_KINDS = {
    "ingressroute": ("traefik.io", "ingressroutes"),
    "ingress": ("networking.k8s.io", "ingresses"),
}
ISOLATION = (("", "resourcequotas"), ("networking.k8s.io", "networkpolicies"))
NAMESPACES = {("", "namespaces"): frozenset({"get", "create", "patch", "delete"})}
RBAC_KINDS = ("Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding")

Grants = dict[tuple[str, str], frozenset[str]]


def grants(role: Manifest) -> Grants:
    """What a Role or ClusterRole allows, per (API group, resource)."""
    allowed: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        assert set(rule) == {"apiGroups", "resources", "verbs"}, rule  # no names, no URLs
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                allowed.setdefault((group, resource), set()).update(rule["verbs"])
    return {key: frozenset(verbs) for key, verbs in allowed.items()}


def expected(ingress: str, *, per_org: bool) -> Grants:
    """The provisioner's needs for one configuration."""
    needs: Grants = dict(ALWAYS)
    for name, route in ROUTE_KINDS.items():
        needs[route] = MANAGE if name == ingress else SWEEP
    for kind in ISOLATION:
        needs[kind] = MANAGE if per_org else SWEEP
    if per_org:
        needs |= NAMESPACES
    return needs


def _plural(kind: str) -> str:
    lower = kind.lower()
    if lower.endswith("y"):
        return lower[:-1] + "ies"
    return lower + ("es" if lower.endswith("s") else "s")


def test_the_table_covers_every_kind_the_provisioner_can_touch() -> None:
    # KINDS is the provisioner client's list of every kind it reaches; a new one must show up
    # in the table above (and in the chart) before it can be used.
    groups = {"CoreV1Api": "", "AppsV1Api": "apps", "NetworkingV1Api": "networking.k8s.io"}
    reachable = {
        (kind.group or groups[kind.api.__name__], kind.plural or _plural(name))
        for name, kind in KINDS.items()
    }
    # Subresources (pods/log) are reached through their kind's API, not as kinds of their own.
    assert reachable == {k for k in expected("ingress", per_org=True) if "/" not in k[1]}


def _sets(ingress: str, mode: str) -> tuple[str, ...]:
    return (
        f"provisioner.kubernetes.ingress={ingress}",
        f"provisioner.kubernetes.namespaceMode={mode}",
    )


@pytest.mark.helm
@pytest.mark.parametrize("ingress", ["ingressroute", "ingress", "none"])
def test_shared_namespace_gets_a_role_with_exactly_the_provisioners_needs(ingress: str) -> None:
    objects = render(DEFAULT_VALUES, sets=_sets(ingress, "shared"))
    role = only(objects, "Role")
    assert grants(role) == expected(ingress, per_org=False)
    assert only(objects, "ConfigMap")["data"]["ORGPLANE_KUBERNETES_INGRESS"] == ingress
    assert of_kind(objects, "ClusterRole") == of_kind(objects, "ClusterRoleBinding") == []

    binding = only(objects, "RoleBinding")
    account = only(objects, "ServiceAccount")
    assert binding["metadata"]["namespace"] == role["metadata"]["namespace"] == NAMESPACE
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": NAMESPACE}
    ]
    pod = only(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account["metadata"]["name"]


@pytest.mark.helm
@pytest.mark.parametrize("ingress", ["ingressroute", "ingress", "none"])
def test_per_org_namespaces_get_a_cluster_role_with_namespace_rules_added(ingress: str) -> None:
    objects = render(DEFAULT_VALUES, sets=_sets(ingress, "per-org"))
    role = only(objects, "ClusterRole")
    assert grants(role) == expected(ingress, per_org=True)
    assert of_kind(objects, "Role") == of_kind(objects, "RoleBinding") == []
    binding = only(objects, "ClusterRoleBinding")
    assert binding["roleRef"]["kind"] == "ClusterRole"
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"][0]["namespace"] == NAMESPACE


@pytest.mark.helm
def test_the_role_lives_where_the_provisioner_is_told_to_work() -> None:
    objects = render(DEFAULT_VALUES, sets=("provisioner.kubernetes.namespace=orgplane-orgs",))
    role, binding = only(objects, "Role"), only(objects, "RoleBinding")
    config = only(objects, "ConfigMap")["data"]
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == "orgplane-orgs"
    assert config["ORGPLANE_KUBERNETES_NAMESPACE"] == "orgplane-orgs"
    # The account itself stays in the release namespace.
    assert binding["subjects"][0]["namespace"] == NAMESPACE


@pytest.mark.helm
@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_no_rbac_object_uses_a_wildcard(values: Path) -> None:
    for obj in render(values):
        if obj["kind"] in ("Role", "ClusterRole"):
            for rule in obj["rules"]:
                for field in ("apiGroups", "resources", "verbs"):
                    assert "*" not in rule[field], (obj["kind"], rule)
                assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"])


@pytest.mark.helm
@pytest.mark.parametrize(
    ("setting", "token_mounted"),
    [("rbac.create=false", True), ("provisioner.name=docker", False)],
    ids=["rbac-off", "docker-provisioner"],
)
def test_no_rbac_without_the_kubernetes_provisioner_or_when_turned_off(
    setting: str, token_mounted: bool
) -> None:
    objects = render(DEFAULT_VALUES, sets=(setting,))
    assert [obj for obj in objects if obj["kind"] in RBAC_KINDS] == []
    pod = only(objects, "Deployment")["spec"]["template"]["spec"]
    # Only the kubernetes provisioner has a use for the API token (RBAC may be granted by hand).
    assert pod["automountServiceAccountToken"] is token_mounted
