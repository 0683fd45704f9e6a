"""The clauses checked over HTTP: probes, tokens and the Host check.

Each request goes to the instance's address with an explicit ``Host``: one of the org's
hostnames (or the instance's internal name for the probes, which orchestrators send by address).
A refusal of a token must be ``401``; a refusal of a Host ``421``, ``400`` or ``404`` that
differs from what the same request gets under the org's own hostname.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

from conformance_kit.report import Report
from conformance_kit.signer import Signer

HOST_REFUSALS = frozenset({400, 404, 421})
FOREIGN_HOST = "not-this-org.conformance.invalid"


@dataclass(frozen=True)
class Target:
    """Where the instance answers and the names it must answer for."""

    base_url: str
    hostnames: tuple[str, ...]
    internal_host: str
    path: str

    @property
    def host(self) -> str:
        """The Host the token checks use."""
        return self.hostnames[0]


def _status(client: httpx.Client, target: Target, *, host: str, token: str | None) -> int | str:
    headers = {"Host": host}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    try:
        return client.get(target.base_url + target.path, headers=headers).status_code
    except httpx.HTTPError as exc:
        return f"no answer ({type(exc).__name__})"


def wait_probe(
    client: httpx.Client, url: str, host: str, timeout: float
) -> tuple[int | str, float]:
    """Poll ``url`` until it answers 200 or ``timeout`` passes; (last status, seconds waited)."""
    started = time.monotonic()
    last: int | str = "no answer"
    while True:
        try:
            last = client.get(url, headers={"Host": host}).status_code
        except httpx.HTTPError as exc:
            last = f"no answer ({type(exc).__name__})"
        waited = time.monotonic() - started
        if last == 200 or waited >= timeout:
            return last, waited
        time.sleep(0.1)


def check_probes(report: Report, client: httpx.Client, target: Target, *, timeout: float) -> bool:
    """``probes.healthz`` and ``probes.readyz``: both answer 200 within ``timeout`` (readiness
    is not waited for when the process never answered)."""
    for name in ("healthz", "readyz"):
        status, waited = wait_probe(
            client, f"{target.base_url}/{name}", target.internal_host, timeout
        )
        if not report.add(
            f"probes.{name}",
            f"GET /{name} answers 200 once the instance is up",
            status == 200,
            f"GET /{name} -> {status} after {waited:.1f} s",
        ):
            if name == "healthz":
                report.add("probes.readyz", "see probes.healthz", False, "not checked")
            return False
    return True


def check_http(
    report: Report, client: httpx.Client, target: Target, signer: Signer, *, timeout: float
) -> None:
    """The probes, then (once they answer) the token and Host clauses."""
    if check_probes(report, client, target, timeout=timeout):
        check_tokens(report, client, target, signer)
        check_hosts(report, client, target, signer)
        return
    for clause in ("tokens", "host"):
        report.add(clause, "see probes", False, "not checked: the probes never answered 200")


def check_tokens(report: Report, client: httpx.Client, target: Target, signer: Signer) -> None:
    """A valid org token is let through; every bad one, and none, is answered 401."""
    req = f"GET {target.path} (Host {target.host})"
    valid = _status(client, target, host=target.host, token=signer.token())
    report.add(
        "tokens.valid",
        "a valid org token for this org is accepted (not 401/403)",
        isinstance(valid, int) and valid not in (401, 403) and valid < 500,
        f"{req} with a valid owner token -> {valid}",
    )
    missing = _status(client, target, host=target.host, token=None)
    report.add(
        "tokens.missing",
        "a request without a token is refused with 401",
        missing == 401,
        f"{req} without Authorization -> {missing}",
    )
    for clause, (what, token) in signer.bad_tokens(other_org=f"{signer.org_id}-other").items():
        status = _status(client, target, host=target.host, token=token)
        report.add(
            clause, f"{what} is refused with 401", status == 401, f"{req} with {what} -> {status}"
        )


def check_hosts(report: Report, client: httpx.Client, target: Target, signer: Signer) -> None:
    """The org's own names (ports ignored) are served; a foreign Host is refused."""
    token = signer.token()
    baseline = _status(client, target, host=target.host, token=token)
    own = [*target.hostnames, f"{target.host}:443", target.internal_host]
    answers = {host: _status(client, target, host=host, token=token) for host in own}
    served = isinstance(baseline, int) and baseline not in (400, 401, 403, 421) and baseline < 500
    wrong = {h: s for h, s in answers.items() if s != baseline}
    report.add(
        "host.own",
        "the org's hostnames and internal name are served to a valid token (a port in Host is "
        "ignored)",
        served and not wrong,
        f"GET {target.path} with a valid token: "
        + ", ".join(f"Host {h} -> {s}" for h, s in answers.items()),
    )
    foreign = _status(client, target, host=FOREIGN_HOST, token=token)
    report.add(
        "host.foreign",
        "a Host that is not the org's is refused (421, 400 or 404, not what the org's own "
        "Host gets)",
        foreign in HOST_REFUSALS and foreign != baseline,
        f"GET {target.path} with a valid token: Host {FOREIGN_HOST} -> {foreign} "
        f"(Host {target.host} -> {baseline})",
    )
