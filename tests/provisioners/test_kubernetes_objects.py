"""The Kubernetes objects of an org, as built (no cluster, no emulator).

Proves: every object of every mode (shared / per-org, IngressRoute / Ingress / none, with and
without hostnames) is valid for Kubernetes 1.31 and the newest bundled schemas (strict: unknown
fields fail), IngressRoutes against Traefik's CRD; the pod is hardened (non-root, read-only root,
no capabilities, RuntimeDefault seccomp, no service-account token) and probed on /healthz and
/readyz; secrets reach the pod only through the Secret; per-org isolation allows exactly the
ingress controller in, and the control plane, Redis and DNS out; the quota is the plan's.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from orgplane_wire.contract import Env
from provisioners.base import ProvisionerOptions
from provisioners.kubernetes.deployment_status import deployment_state
from provisioners.kubernetes.manifests import desired_objects
from provisioners.kubernetes.objects import SECRET_HASH_ANNOTATION
from provisioners.naming import SPEC_HASH_LABEL
from tests.provisioners.harness import make_spec
from tests.provisioners.kube import validate_object

HOSTS = ("acme.orgs.example.com", "www.acme.test")


def _objects(**options: object) -> dict[str, dict]:
    spec = make_spec(run_id="r", hostnames=HOSTS)
    built = desired_objects(spec, options=ProvisionerOptions(deployment_id="d", **options))
    return {obj["kind"]: obj for obj in built}


@pytest.mark.parametrize("mode", ["shared", "per-org"])
@pytest.mark.parametrize("ingress", ["ingressroute", "ingress", "none"])
@pytest.mark.parametrize("hostnames", [HOSTS, ()])
def test_every_object_is_valid(mode: str, ingress: str, hostnames: tuple[str, ...]) -> None:
    spec = make_spec(run_id="r", hostnames=hostnames)
    options = ProvisionerOptions(
        deployment_id="d",
        kubernetes_namespace_mode=mode,  # type: ignore[arg-type]
        kubernetes_ingress=ingress,
        tls=True,
        cert_resolver="le",  # type: ignore[arg-type]
        kubernetes_storage_class="fast",
    )
    built = desired_objects(spec, options=options)
    kinds = [obj["kind"] for obj in built]
    expected = ["Secret", "PersistentVolumeClaim", "Deployment", "Service"]
    if mode == "per-org":
        expected = [
            "Namespace",
            "Secret",
            "PersistentVolumeClaim",
            "ResourceQuota",
            "NetworkPolicy",
            "Deployment",
            "Service",
        ]
    if hostnames and ingress != "none":
        expected.append({"ingressroute": "IngressRoute", "ingress": "Ingress"}[ingress])
    assert kinds == expected
    for obj in built:
        validate_object(obj)
        labels = obj["metadata"]["labels"]
        assert labels["orgplane.org-id"] == spec.org_id
        assert labels["orgplane.managed-by"] == "d"
        assert labels["orgplane.instance-id"] == spec.instance_id
        assert obj["metadata"]["annotations"][SPEC_HASH_LABEL]
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == built[0]["metadata"].get("namespace") or (
                obj["metadata"]["namespace"] == built[0]["metadata"]["name"]
            )


def test_the_pod_is_hardened_and_probed() -> None:
    deployment = _objects()["Deployment"]
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod = deployment["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["limits"] == {"cpu": "500m", "memory": "256Mi"}
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert mounts == {"/data", "/tmp"}
    assert all("hostPath" not in volume for volume in pod["volumes"])


def test_secrets_reach_the_pod_only_through_the_secret() -> None:
    spec = make_spec(run_id="r", hostnames=HOSTS)
    spec = dataclasses.replace(spec, env={**spec.env, Env.REDIS_URL: "redis://u:pw-xyz@r:6379/0"})
    built = {o["kind"]: o for o in desired_objects(spec, options=ProvisionerOptions())}
    credential = spec.env[Env.INSTANCE_CREDENTIAL]
    secret = built["Secret"]
    assert secret["stringData"] == {
        "instance-credential": credential,
        "redis-url": "redis://u:pw-xyz@r:6379/0",
    }
    for kind, obj in built.items():
        if kind != "Secret":
            text = json.dumps(obj)
            assert credential not in text, kind
            assert "pw-xyz" not in text, kind
    env = {
        e["name"]: e
        for e in built["Deployment"]["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert (
        env[Env.INSTANCE_CREDENTIAL]["valueFrom"]["secretKeyRef"]["name"]
        == secret["metadata"]["name"]
    )
    assert env[Env.DATA_DIR]["value"] == "/data"
    assert "svc.cluster.local" in env[Env.INTERNAL_HOSTS]["value"]


def test_a_new_credential_rolls_the_pod() -> None:
    spec = make_spec(run_id="r")
    rotated = dataclasses.replace(
        spec, env={**spec.env, Env.INSTANCE_CREDENTIAL: "rotated-credential-0123456789abc"}
    )
    before, after = (
        {o["kind"]: o for o in desired_objects(s, options=ProvisionerOptions())}["Deployment"]
        for s in (spec, rotated)
    )

    def annotation(deployment: dict) -> str:
        return str(
            deployment["spec"]["template"]["metadata"]["annotations"][SECRET_HASH_ANNOTATION]
        )

    assert annotation(before) != annotation(after)
    assert (
        before["metadata"]["annotations"][SPEC_HASH_LABEL]
        != after["metadata"]["annotations"][SPEC_HASH_LABEL]
    )


def test_per_org_isolation_lets_in_the_ingress_and_out_only_cp_redis_dns() -> None:
    built = _objects(
        kubernetes_namespace_mode="per-org",
        kubernetes_ingress_namespace="edge",
        kubernetes_control_plane_namespace="cp",
        kubernetes_redis_namespace="data",
    )
    namespace = built["Namespace"]["metadata"]
    assert namespace["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    policy = built["NetworkPolicy"]["spec"]
    assert policy["podSelector"] == {}
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    (ingress,) = policy["ingress"]
    assert ingress["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "edge"}}}
    ]
    allowed = {
        (peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"], port["port"])
        for rule in policy["egress"]
        for peer in rule["to"]
        for port in rule["ports"]
    }
    assert allowed == {("cp", 8080), ("data", 6379), ("kube-system", 53)}
    hard = built["ResourceQuota"]["spec"]["hard"]
    assert hard["limits.cpu"] == "500m"
    assert hard["limits.memory"] == "256Mi"
    assert hard["requests.storage"] == "256Mi"
    assert hard["persistentvolumeclaims"] == "1"
    assert hard["services.loadbalancers"] == "0"
    assert hard["services.nodeports"] == "0"


def test_a_spare_makes_the_names_of_the_org_that_claims_it() -> None:
    """A warm-pool spare: the pool secret reaches the pod through the Secret (optional, so a
    restart survives the org's Secret dropping it), the control plane may reach the pod to
    assign it, and every object has the name the org's own spec gives it."""
    options = ProvisionerOptions(
        deployment_id="d",
        kubernetes_namespace_mode="per-org",
        kubernetes_ingress_namespace="edge",
        kubernetes_control_plane_namespace="cp",
    )
    org = make_spec(run_id="r", hostnames=HOSTS)
    spare = dataclasses.replace(
        org,
        slug="spare-0123abcd",
        hostnames=(),
        env={Env.POOL_SECRET: "pool-secret-0123456789abcdef", Env.ORG_ID: org.org_id},
    )
    spare_objects = {o["kind"]: o for o in desired_objects(spare, options=options)}
    org_objects = {o["kind"]: o for o in desired_objects(org, options=options)}
    for obj in spare_objects.values():
        validate_object(obj)
    assert set(org_objects) - set(spare_objects) == {"IngressRoute"}
    for kind, obj in spare_objects.items():
        assert obj["metadata"]["name"] == org_objects[kind]["metadata"]["name"], kind

    assert spare_objects["Secret"]["stringData"]["pool-secret"] == spare.env[Env.POOL_SECRET]
    assert "pool-secret" not in org_objects["Secret"]["stringData"]
    (container,) = spare_objects["Deployment"]["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env[Env.POOL_SECRET]["valueFrom"]["secretKeyRef"] == {
        "name": spare_objects["Secret"]["metadata"]["name"],
        "key": "pool-secret",
        "optional": True,
    }
    assert "pool-secret-0123456789abcdef" not in json.dumps(spare_objects["Deployment"])

    def callers(objects: dict[str, dict]) -> list[str]:
        (rule,) = objects["NetworkPolicy"]["spec"]["ingress"]
        return [
            p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
            for p in rule["from"]
        ]

    assert callers(spare_objects) == ["edge", "cp"]
    assert callers(org_objects) == ["edge"]


def test_routes_carry_the_hostnames_to_the_service() -> None:
    built = _objects(entrypoints=("websecure",))
    route = built["IngressRoute"]["spec"]
    assert route["entryPoints"] == ["websecure"]
    (rule,) = route["routes"]
    assert rule["match"] == "Host(`acme.orgs.example.com`) || Host(`www.acme.test`)"
    assert rule["services"] == [{"name": built["Service"]["metadata"]["name"], "port": 8000}]
    ingress = _objects(kubernetes_ingress="ingress", kubernetes_ingress_class="nginx")["Ingress"]
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert [r["host"] for r in ingress["spec"]["rules"]] == list(HOSTS)


@pytest.mark.parametrize(
    ("deployment", "state"),
    [
        ({"spec": {"replicas": 1}}, "creating"),
        ({"spec": {"replicas": 1}, "status": {"replicas": 1}}, "starting"),
        ({"spec": {"replicas": 1}, "status": {"readyReplicas": 1}}, "running"),
        ({"spec": {"replicas": 0}, "status": {"readyReplicas": 1}}, "stopped"),
        (
            {
                "spec": {"replicas": 1},
                "status": {
                    "conditions": [
                        {
                            "type": "Progressing",
                            "status": "False",
                            "reason": "ProgressDeadlineExceeded",
                            "message": "ReplicaSet has timed out progressing.",
                        }
                    ]
                },
            },
            "failed",
        ),
        (
            {
                "spec": {"replicas": 1},
                "status": {
                    "conditions": [
                        {
                            "type": "ReplicaFailure",
                            "status": "True",
                            "reason": "FailedCreate",
                            "message": "exceeded quota",
                        }
                    ]
                },
            },
            "failed",
        ),
    ],
)
def test_deployment_states(deployment: dict, state: str) -> None:
    seen, message = deployment_state(deployment)
    assert seen == state
    if state == "failed":
        assert message
