"""The pure Traefik builders: every output validates against the published schemas."""

from __future__ import annotations

import pytest

from provisioners.traefik import (
    UNAVAILABLE_MIDDLEWARE,
    UNAVAILABLE_PATH,
    UNAVAILABLE_SERVICE,
    Route,
    RouteError,
    docker_labels,
    dynamic_config,
    host_rule,
    ingress,
    ingressroute,
    router_name,
)
from tests.routing.schemas import (
    labels_to_dynamic,
    validate_dynamic,
    validate_ingressroute,
    validate_kubernetes,
)

ORG_ID = "0123456789abcdef0123456789abcdef"
HOSTS = ("acme.orgs.example.net", "xn--bcher-kva.example", "shop.acme.com")
LABELS = {"orgplane.org-id": ORG_ID, "orgplane.managed-by": "orgplane"}
TLS_CASES = [
    pytest.param(False, "", id="plain"),
    pytest.param(True, "", id="tls-default-cert"),
    pytest.param(True, "letsencrypt", id="tls-resolver"),
]


def test_host_rule_joins_hosts_with_or() -> None:
    assert host_rule(["a.example", "b.example"]) == "Host(`a.example`) || Host(`b.example`)"


@pytest.mark.parametrize(
    "bad",
    [
        "Acme.example",  # not canonical: upper case
        "acme.example.",  # trailing dot
        "bücher.example",  # Unicode, not punycode
        "a`) || Host(`evil.example",  # rule injection
        "*.example",
        "",
        "a" * 64 + ".example",
    ],
)
def test_host_rule_refuses_what_is_not_a_canonical_hostname(bad: str) -> None:
    with pytest.raises(RouteError):
        host_rule([bad])


def test_host_rule_refuses_no_host_and_a_repeated_host() -> None:
    with pytest.raises(RouteError):
        host_rule([])
    with pytest.raises(RouteError):
        host_rule(["a.example", "a.example"])


def test_router_names_are_stable_distinct_and_valid() -> None:
    first = router_name(slug="acme", org_id=ORG_ID)
    assert first == router_name(slug="acme", org_id=ORG_ID)
    assert first != router_name(slug="acme", org_id="f" * 32)
    assert first.startswith("org-acme-")
    assert "." not in first
    assert "@" not in first


@pytest.mark.parametrize(("tls", "resolver"), TLS_CASES)
def test_docker_labels_fold_into_a_valid_dynamic_configuration(tls: bool, resolver: str) -> None:
    labels = docker_labels(
        org_id=ORG_ID,
        slug="acme",
        hostnames=HOSTS,
        port=8000,
        entrypoints=["web", "websecure"],
        tls=tls,
        cert_resolver=resolver,
        network="orgplane",
    )
    assert labels["traefik.enable"] == "true"
    assert labels["traefik.docker.network"] == "orgplane"
    tree = labels_to_dynamic(labels, host="org-acme")
    validate_dynamic(tree)
    (router,) = tree["http"]["routers"].values()
    assert router["rule"] == host_rule(HOSTS)
    assert router["entryPoints"] == ["web", "websecure"]
    assert ("tls" in router) is tls
    if resolver:
        assert router["tls"] == {"certResolver": resolver}
    (service,) = tree["http"]["services"].values()
    assert service["loadBalancer"]["servers"] == [{"url": "http://org-acme:8000"}]


@pytest.mark.parametrize(("tls", "resolver"), TLS_CASES)
def test_ingressroute_validates_against_the_crd(tls: bool, resolver: str) -> None:
    obj = ingressroute(
        name="org-acme",
        namespace="orgplane-orgs",
        hostnames=HOSTS,
        service_name="org-acme",
        port=8000,
        entrypoints=["websecure"],
        tls=tls,
        cert_resolver=resolver,
        labels=LABELS,
    )
    validate_ingressroute(obj)
    assert obj["metadata"]["labels"] == LABELS
    (route,) = obj["spec"]["routes"]
    assert route["match"] == host_rule(HOSTS)
    assert route["services"] == [{"name": "org-acme", "port": 8000}]
    assert ("tls" in obj["spec"]) is tls


def test_ingressroute_schema_check_catches_a_broken_object() -> None:
    obj = ingressroute(
        name="org-acme",
        namespace="ns",
        hostnames=HOSTS,
        service_name="svc",
        port=8000,
        entrypoints=[],
        tls=False,
        cert_resolver="",
        labels={},
    )
    obj["spec"]["routes"][0]["kind"] = "Teleport"
    with pytest.raises(AssertionError, match="kind"):
        validate_ingressroute(obj)


@pytest.mark.parametrize(("tls", "resolver"), TLS_CASES)
def test_ingress_validates_against_kubernetes(tls: bool, resolver: str) -> None:
    obj = ingress(
        name="org-acme",
        namespace="orgplane-orgs",
        hostnames=HOSTS,
        service_name="org-acme",
        port=8000,
        entrypoints=["web"],
        tls=tls,
        cert_resolver=resolver,
        labels=LABELS,
    )
    validate_kubernetes(obj)
    assert [rule["host"] for rule in obj["spec"]["rules"]] == list(HOSTS)
    annotations = obj["metadata"]["annotations"]
    assert annotations["traefik.ingress.kubernetes.io/router.entrypoints"] == "web"
    assert ("traefik.ingress.kubernetes.io/router.tls" in annotations) is tls


def _routes() -> list[Route]:
    return [
        Route(org_id=ORG_ID, slug="acme", hostnames=HOSTS, url="http://10.0.0.5:8000"),
        Route(org_id="b" * 32, slug="beta", hostnames=("beta.orgs.example.net",), url=None),
        Route(org_id="c" * 32, slug="gamma", hostnames=("gamma.orgs.example.net",), url=None),
    ]


@pytest.mark.parametrize(("tls", "resolver"), TLS_CASES)
def test_dynamic_config_validates_and_routes_unavailable_orgs_to_the_page(
    tls: bool, resolver: str
) -> None:
    config = dynamic_config(
        _routes(),
        entrypoints=["web"],
        tls=tls,
        cert_resolver=resolver,
        fallback_url="http://control-plane:8080",
    )
    validate_dynamic(config)
    http = config["http"]
    acme = http["routers"][router_name(slug="acme", org_id=ORG_ID)]
    assert http["services"][acme["service"]]["loadBalancer"]["servers"] == [
        {"url": "http://10.0.0.5:8000"}
    ]
    beta = http["routers"][router_name(slug="beta", org_id="b" * 32)]
    assert beta["service"] == UNAVAILABLE_SERVICE
    assert beta["middlewares"] == [UNAVAILABLE_MIDDLEWARE]
    assert http["middlewares"][UNAVAILABLE_MIDDLEWARE] == {
        "replacePath": {"path": UNAVAILABLE_PATH}
    }
    assert http["services"][UNAVAILABLE_SERVICE]["loadBalancer"]["servers"] == [
        {"url": "http://control-plane:8080"}
    ]
    assert all(("tls" in r) is tls for r in http["routers"].values())


def test_dynamic_config_of_no_orgs_is_valid_and_empty() -> None:
    config = dynamic_config([], entrypoints=["web"], tls=False, cert_resolver="", fallback_url="")
    validate_dynamic(config)
    # Not {"http": {"routers": {}, ...}}: Traefik refuses empty sections and would keep routing
    # the last org it knew (seen with Traefik 3.5.3; tests/routing/test_through_traefik.py).
    assert config == {}


def test_dynamic_config_refuses_one_host_for_two_orgs() -> None:
    routes = [
        Route(org_id="a" * 32, slug="a", hostnames=("shop.example",), url="http://a:8000"),
        Route(org_id="b" * 32, slug="b", hostnames=("shop.example",), url="http://b:8000"),
    ]
    with pytest.raises(RouteError, match=r"shop\.example"):
        dynamic_config(routes, entrypoints=[], tls=False, cert_resolver="", fallback_url="")
