"""Benchmarks: ``python -m benchmarks [NAME...]`` runs ``bench_*.py`` modules' ``run()``.

Each ``run()`` returns a list of :class:`benchmarks.Result`; the runner prints them as one
table, writes ``benchmarks/results/<module>.json`` per module and ``summary.json`` for the
whole run, each with the machine it ran on. Speed is measured here, never in tests.

A module that sets ``SLOW = "<why>"`` runs only when named (or with ``--all``); a module that
needs a service which is missing answers :meth:`Result.skip`.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Result:
    """One measured figure and, when there is one, its target.

    ``value`` is the figure itself; for a distribution it is the median, with ``p95``/``p99``
    and the sample count ``n`` beside it. ``skipped`` says why nothing was measured.
    """

    metric: str
    value: float
    unit: str
    target: str = ""
    met: bool | None = None
    p95: float | None = None
    p99: float | None = None
    n: int | None = None
    skipped: str = ""

    @classmethod
    def skip(cls, metric: str, why: str) -> Result:
        """Nothing measured: a service the benchmark needs is missing (``why`` says which)."""
        return cls(metric, 0.0, "", skipped=why)

    @classmethod
    def distribution(
        cls,
        metric: str,
        samples: Sequence[float],
        unit: str,
        *,
        target: str = "",
        check: Callable[[float, float, float], bool] | None = None,
    ) -> Result:
        """Median, p95 and p99 of ``samples``; ``check(p50, p95, p99)``: is the target met."""
        p50, p95, p99 = percentiles(samples)
        met = None if check is None else check(p50, p95, p99)
        return cls(metric, p50, unit, target, met, p95=p95, p99=p99, n=len(samples))


def percentiles(samples: Sequence[float]) -> tuple[float, float, float]:
    """p50, p95 and p99 (inclusive method: the p99 of 100 samples is close to their maximum)."""
    if not samples:
        return (float("nan"),) * 3
    if len(samples) == 1:
        return (samples[0],) * 3
    cut = statistics.quantiles(sorted(samples), n=100, method="inclusive")
    return cut[49], cut[94], cut[98]


def rss_bytes(pid: int) -> int:
    """The resident set size (``VmRSS``) of process ``pid``; raises when it has none (a zombie),
    rather than answer a figure that was not measured."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def uss_bytes(pid: int) -> int:
    """The unique set size of process ``pid``: its private pages (clean and dirty), what one
    more such process costs beyond the files and pages it shares."""
    private = 0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith(("Private_Clean:", "Private_Dirty:")):
            private += int(line.split()[1]) * 1024
    return private
