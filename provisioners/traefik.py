"""Traefik routes for org instances, as pure data: no I/O, standard library only.

One org, one router, one service, named from the org's slug and id. The same route is spelled
three ways, one per place Traefik can learn it from:

* :func:`docker_labels`: labels on the org's container (Traefik's Docker provider);
* :func:`ingressroute` / :func:`ingress`: Kubernetes objects (Traefik's CRD or Ingress provider);
* :func:`dynamic_config`: the dynamic configuration the control plane serves to Traefik's HTTP
  provider, for every org at once, including orgs whose hosts go to the control plane's
  "org unavailable" page.

Hostnames reach these builders already canonical (lower-case ASCII, punycode, no trailing dot;
the control plane checks them). The builders check them again, because a hostname is pasted into a
Traefik rule: anything but letters, digits, hyphens and dots is refused rather than quoted, and a
host may appear only once in a configuration.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

#: Label every object the control plane manages carries (see the reconciler's sweeper).
ORG_ID_LABEL: Final = "orgplane.org-id"
MANAGED_BY_LABEL: Final = "orgplane.managed-by"
MANAGED_BY: Final = "orgplane"

#: Path of the control plane's page for orgs that exist but cannot be served right now.
UNAVAILABLE_PATH: Final = "/org-unavailable"
#: Names of the shared service and middleware that carry the unavailable page.
UNAVAILABLE_SERVICE: Final = "orgplane-unavailable"
UNAVAILABLE_MIDDLEWARE: Final = "orgplane-unavailable-page"
#: Path prefix of the control plane's wake endpoint, and the shared service and middleware that
#: carry a hibernated org's requests there. A woken org's wake router has a priority below any
#: rule's default (its length), so the org's own router wins as soon as it exists again; a
#: hibernated org's is above any (Traefik keeps the priorities from 2**31 - 1000 up for its own
#: routers), so it wins over the org's own router (Docker labels, an IngressRoute) while that
#: still exists: hibernation stops the instance only once Traefik has this route
#: (control_plane/routing/handover.py), so no request reaches a stopped instance.
WAKE_PREFIX: Final = "/_orgplane/wake"
WAKE_SERVICE: Final = "orgplane-wake"
WAKE_MIDDLEWARE: Final = "orgplane-wake-prefix"
WAKE_PRIORITY: Final = 1
ASLEEP_PRIORITY: Final = 2**30

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_NAME_PART = re.compile(r"[^a-z0-9-]+")


class RouteError(ValueError):
    """A route cannot be built: a malformed hostname, or one host claimed twice."""


@dataclass(frozen=True)
class Route:
    """The hosts of one org and where they go.

    ``url`` is the instance's address (``http://host:port``); ``None`` sends the hosts to the
    control plane's unavailable page instead (a suspended, stopped or starting org), or, with
    ``wake``, to its wake endpoint (a hibernated org, woken by its first request).
    """

    org_id: str
    slug: str
    hostnames: tuple[str, ...]
    url: str | None = None
    wake: bool = False
    #: Hibernated (not yet woken): the wake router takes precedence over the org's own router.
    asleep: bool = False


def router_name(*, slug: str, org_id: str) -> str:
    """Name of the org's router, and of its Traefik service: stable, unique, a valid name.

    The id suffix keeps two orgs apart even if a slug is ever reused after a deletion.
    """
    clean = _NAME_PART.sub("-", slug.lower()).strip("-")[:40] or "org"
    return f"org-{clean}-{org_id[:12].lower()}"


def check_hostname(hostname: str) -> str:
    """``hostname`` if it is canonical (lower-case LDH labels, at most 253 characters)."""
    if len(hostname) > 253 or not _HOSTNAME.fullmatch(hostname):
        raise RouteError(f"not a canonical hostname: {hostname!r}")
    return hostname


def host_rule(hostnames: Iterable[str]) -> str:
    """A Traefik v3 rule matching any of ``hostnames``: ``Host(`a`) || Host(`b`)``."""
    hosts = [check_hostname(h) for h in hostnames]
    if not hosts:
        raise RouteError("a route needs at least one hostname")
    if len(set(hosts)) != len(hosts):
        raise RouteError("a route lists the same hostname twice")
    return " || ".join(f"Host(`{h}`)" for h in hosts)


def _tls_section(*, tls: bool, cert_resolver: str) -> dict[str, str] | None:
    if not tls:
        return None
    return {"certResolver": cert_resolver} if cert_resolver else {}


def docker_labels(
    *,
    org_id: str,
    slug: str,
    hostnames: Sequence[str],
    port: int,
    entrypoints: Sequence[str],
    tls: bool,
    cert_resolver: str,
    network: str | None = None,
) -> dict[str, str]:
    """Labels that make Traefik's Docker provider route ``hostnames`` to the container.

    ``network`` names the Docker network Traefik reaches the container on, when it has several.
    """
    name = router_name(slug=slug, org_id=org_id)
    router, service = f"traefik.http.routers.{name}", f"traefik.http.services.{name}"
    labels = {
        "traefik.enable": "true",
        f"{router}.rule": host_rule(hostnames),
        f"{router}.service": name,
        f"{service}.loadbalancer.server.port": str(port),
    }
    if entrypoints:
        labels[f"{router}.entrypoints"] = ",".join(entrypoints)
    if tls:
        labels[f"{router}.tls"] = "true"
        if cert_resolver:
            labels[f"{router}.tls.certresolver"] = cert_resolver
    if network:
        labels["traefik.docker.network"] = network
    return labels


def ingressroute(
    *,
    name: str,
    namespace: str,
    hostnames: Sequence[str],
    service_name: str,
    port: int,
    entrypoints: Sequence[str],
    tls: bool,
    cert_resolver: str,
    labels: dict[str, str],
) -> dict[str, Any]:
    """A ``traefik.io/v1alpha1`` IngressRoute sending ``hostnames`` to a Kubernetes Service."""
    spec: dict[str, Any] = {
        "routes": [
            {
                "kind": "Rule",
                "match": host_rule(hostnames),
                "services": [{"name": service_name, "port": port}],
            }
        ]
    }
    if entrypoints:
        spec["entryPoints"] = list(entrypoints)
    tls_section = _tls_section(tls=tls, cert_resolver=cert_resolver)
    if tls_section is not None:
        spec["tls"] = tls_section
    return {
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "IngressRoute",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": spec,
    }


def ingress(
    *,
    name: str,
    namespace: str,
    hostnames: Sequence[str],
    service_name: str,
    port: int,
    entrypoints: Sequence[str],
    tls: bool,
    cert_resolver: str,
    labels: dict[str, str],
    ingress_class: str = "traefik",
) -> dict[str, Any]:
    """A ``networking.k8s.io/v1`` Ingress for clusters that do not run Traefik's CRDs.

    Entrypoints and TLS travel as Traefik's ``router.*`` annotations.
    """
    host_rule(hostnames)  # refuses malformed and repeated hostnames
    annotations: dict[str, str] = {}
    if entrypoints:
        annotations["traefik.ingress.kubernetes.io/router.entrypoints"] = ",".join(entrypoints)
    if tls:
        annotations["traefik.ingress.kubernetes.io/router.tls"] = "true"
        if cert_resolver:
            annotations["traefik.ingress.kubernetes.io/router.tls.certresolver"] = cert_resolver
    backend = {"service": {"name": service_name, "port": {"number": port}}}
    rules = [
        {"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}}
        for host in hostnames
    ]
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "labels": dict(labels)}
    if annotations:
        metadata["annotations"] = annotations
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": metadata,
        "spec": {"ingressClassName": ingress_class, "rules": rules},
    }


def dynamic_config(
    routes: Sequence[Route],
    *,
    entrypoints: Sequence[str],
    tls: bool,
    cert_resolver: str,
    fallback_url: str,
    wake_url: str = "",
) -> dict[str, Any]:
    """Traefik's dynamic configuration (HTTP provider) for ``routes``.

    No routes give ``{}`` (Traefik accepts it and drops every route of the provider). Routes with
    a ``url`` go to their instance; the others go to ``fallback_url`` (the control
    plane) with the path replaced by :data:`UNAVAILABLE_PATH`, Host kept so the page can name the
    org. Routes with ``wake`` go to ``wake_url`` (default ``fallback_url``) under
    :data:`WAKE_PREFIX`, path and query kept, from a router named ``<name>-wake`` with priority
    :data:`ASLEEP_PRIORITY` (``asleep``) or :data:`WAKE_PRIORITY`. Raises :class:`RouteError`
    if two routes claim one host: the caller's data is then inconsistent, and Traefik keeps its
    last good configuration instead of guessing an owner.
    """
    routers: dict[str, Any] = {}
    services: dict[str, Any] = {}
    seen: dict[str, str] = {}
    tls_section = _tls_section(tls=tls, cert_resolver=cert_resolver)
    for route in sorted(routes, key=lambda r: router_name(slug=r.slug, org_id=r.org_id)):
        name = router_name(slug=route.slug, org_id=route.org_id)
        for host in route.hostnames:
            if seen.setdefault(host, name) != name:
                raise RouteError(f"{host} is routed to both {seen[host]} and {name}")
        router: dict[str, Any] = {"rule": host_rule(route.hostnames)}
        if entrypoints:
            router["entryPoints"] = list(entrypoints)
        if route.url is None and route.wake:
            name = f"{name}-wake"
            router.update(
                service=WAKE_SERVICE,
                middlewares=[WAKE_MIDDLEWARE],
                priority=ASLEEP_PRIORITY if route.asleep else WAKE_PRIORITY,
            )
        elif route.url is None:
            router["service"] = UNAVAILABLE_SERVICE
            router["middlewares"] = [UNAVAILABLE_MIDDLEWARE]
        else:
            router["service"] = name
            services[name] = _load_balancer(route.url)
        if tls_section is not None:
            router["tls"] = dict(tls_section)
        routers[name] = router
    http: dict[str, Any] = {"routers": routers, "services": services}
    middlewares: dict[str, Any] = {}
    if any(route.url is None and not route.wake for route in routes):
        services[UNAVAILABLE_SERVICE] = _load_balancer(fallback_url)
        middlewares[UNAVAILABLE_MIDDLEWARE] = {"replacePath": {"path": UNAVAILABLE_PATH}}
    if any(route.url is None and route.wake for route in routes):
        services[WAKE_SERVICE] = _load_balancer(wake_url or fallback_url)
        middlewares[WAKE_MIDDLEWARE] = {"addPrefix": {"prefix": WAKE_PREFIX}}
    if middlewares:
        http["middlewares"] = middlewares
    # Traefik's HTTP provider refuses empty sections ("routers cannot be a standalone element")
    # and then keeps its last good configuration: with no routes left, the last org's router
    # would stay. An empty document is accepted and clears them.
    return {"http": http} if routers else {}


def _load_balancer(url: str) -> dict[str, Any]:
    # passHostHeader: instances check the Host they are addressed by, and the unavailable page
    # finds the org from it.
    return {"loadBalancer": {"servers": [{"url": url}], "passHostHeader": True}}
