"""values.schema.json refuses values that would deploy a broken or unsafe control plane.

helm validates the merged values against the schema before rendering; each case below starts
from the default CI values (which render, see test_chart.py) and changes one thing.
"""

from __future__ import annotations

import pytest

from tests.deploy.helm_chart import CHART, DEFAULT_VALUES, helm, render, render_error


@pytest.mark.helm
@pytest.mark.parametrize(
    ("sets", "names"),
    [
        (("replicaCount=0",), "/replicaCount"),
        (("image.pullPolicy=Sometimes",), "/image/pullPolicy"),
        (("baseDomain=Not_A_Domain",), "/baseDomain"),
        (("secrets.databaseUrl=sqlite+aiosqlite:///orgplane.db",), "/secrets/databaseUrl"),
        (("secrets.redisUrl=http://redis:6379",), "/secrets/redisUrl"),
        (("secrets.secretKey=short",), "/secrets/secretKey"),
        (("provisioner.kubernetes.namespaceMode=per-tenant",), "namespaceMode"),
        (("provisioner.kubernetes.ingress=gateway",), "/provisioner/kubernetes/ingress"),
        (("provisioner.kubernetes.redisPort=0",), "/provisioner/kubernetes/redisPort"),
        (("routing.entrypoints[0]=web secure",), "/routing/entrypoints/0"),
        (("deploymentId=-orgplane",), "/deploymentId"),
        (("expose.kind=loadbalancer",), "/expose/kind"),
        (("expose.ingress.tls.enabled=true",), "/expose/ingress/tls/secretName"),
        (
            ("expose.kind=ingressroute", "expose.ingressRoute.tls.enabled=true"),
            "/expose/ingressRoute/tls",
        ),
        (("podAntiAffinity=sometimes",), "/podAntiAffinity"),
        (("config.LOG_LEVEL=DEBUG",), "LOG_LEVEL"),
        (("replicas=3",), "replicas"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_a_bad_value_is_refused_with_its_path(sets: tuple[str, ...], names: str) -> None:
    error = render_error(DEFAULT_VALUES, sets=sets)
    assert "don't meet the specifications of the schema" in error
    assert names in error


@pytest.mark.helm
def test_a_string_where_a_number_belongs_is_refused() -> None:
    result = helm(
        "template",
        "op",
        str(CHART),
        "--values",
        str(DEFAULT_VALUES),
        "--set-string",
        "replicaCount=2",
    )
    assert result.returncode != 0
    assert "/replicaCount" in result.stderr


@pytest.mark.helm
def test_secrets_are_required_unless_an_existing_secret_is_named() -> None:
    error = render_error(sets=("baseDomain=orgplane.example.com",))
    for name in ("/secrets/secretKey", "/secrets/databaseUrl", "/secrets/redisUrl"):
        assert name in error
    objects = render(
        sets=("baseDomain=orgplane.example.com", "secrets.existingSecret=orgplane-credentials")
    )
    assert not [obj for obj in objects if obj["kind"] == "Secret"]


@pytest.mark.helm
def test_the_base_domain_is_required() -> None:
    error = render_error(sets=("secrets.existingSecret=orgplane-credentials",))
    assert "/baseDomain" in error
