"""Property-based API fuzzing with schemathesis, driven operation by operation.

Each operation of an OpenAPI document gets ``examples`` generated requests (valid and invalid
ones, schemathesis' positive and negative modes) under a fixed Hypothesis seed, sent with one
identity's headers. A check sees each request and its answer and records findings instead of
raising, so one run reports every broken operation rather than the first.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import requests
from hypothesis import HealthCheck, Phase
from hypothesis import strategies as st
from schemathesis import GenerationMode

Check = Callable[[Any, Any], str | None]
"""``check(case, response)``: a finding's description, or None when the answer is fine."""


@dataclass
class Finding:
    """One answer a check refused."""

    identity: str
    method: str
    path: str
    status: int
    problem: str

    def __str__(self) -> str:
        return f"[{self.identity}] {self.method} {self.path} -> {self.status}: {self.problem}"


@dataclass
class FuzzReport:
    """What a fuzz run sent and found."""

    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    findings: list[Finding] = field(default_factory=list)

    def summary(self) -> str:
        shown = "\n".join(str(f) for f in self.findings[:20])
        return f"{self.requests} requests, statuses {dict(self.statuses)}\n{shown}"


def request_text(response: Any) -> str:
    """The URL and body the fuzzer sent (to tell an echo of the request from a leak)."""
    sent = response.request
    body = sent.body or b""
    return str(sent.url) + (body.decode(errors="replace") if isinstance(body, bytes) else body)


def _strategy(operation: Any, path_parameters: dict[str, str] | None) -> Any:
    modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
    return st.one_of(
        [operation.as_strategy(mode, path_parameters=path_parameters) for mode in modes]
    )


def fuzz(
    schema: Any,
    *,
    identity: str,
    base_url: str,
    headers: dict[str, str],
    examples: int,
    seed: int,
    check: Check,
    report: FuzzReport,
    path_parameters: Callable[[Any], dict[str, str] | None] = lambda _: None,
    only_fixed: bool = False,
    skip: Iterable[str] = (),
) -> None:
    """Send ``examples`` generated requests per operation of ``schema`` as ``identity``
    (``only_fixed``: only to operations whose path parameters ``path_parameters`` fixes)."""
    skipped = set(skip)
    with requests.Session() as session:
        for result in schema.get_all_operations():
            operation = result.ok()
            fixed = path_parameters(operation)
            if f"{operation.method.upper()} {operation.path}" in skipped or (
                only_fixed and not fixed
            ):
                continue
            send = _sender(
                operation,
                identity=identity,
                call={"base_url": base_url, "session": session, "headers": headers, "timeout": 20},
                check=check,
                report=report,
            )
            strategy = _strategy(operation, fixed)
            hypothesis.seed(seed)(
                hypothesis.settings(
                    max_examples=examples,
                    deadline=None,
                    database=None,
                    phases=[Phase.generate],
                    suppress_health_check=list(HealthCheck),
                )(hypothesis.given(case=strategy)(send))
            )()


def _sender(
    operation: Any, *, identity: str, call: dict[str, Any], check: Check, report: FuzzReport
) -> Callable[[Any], None]:
    def send(case: Any) -> None:
        response = case.call(**call)
        report.requests += 1
        report.statuses[response.status_code] += 1
        problem = check(case, response)
        if problem:
            report.findings.append(
                Finding(
                    identity,
                    operation.method.upper(),
                    str(response.request.path_url),
                    response.status_code,
                    problem,
                )
            )

    return send


def path_ids(values: dict[str, str]) -> Callable[[Any], dict[str, str] | None]:
    """Fix every path parameter named in ``values`` (the other org's ids) in the requests."""

    def fixed(operation: Any) -> dict[str, str] | None:
        names = {p.name for p in operation.path_parameters}
        chosen = {name: value for name, value in values.items() if name in names}
        return chosen or None

    return fixed


def no_server_error(case: Any, response: Any) -> str | None:
    """5xx is a finding (the body's first bytes say what broke)."""
    if response.status_code >= 500:
        return str(response.content[:200].decode(errors="replace"))
    return None
