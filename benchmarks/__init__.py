"""Benchmarks: ``python -m benchmarks [NAME...]`` runs every ``bench_*.py`` module's ``run()``.

Each ``run()`` returns a list of :class:`benchmarks.Result`; the runner prints them as a table
and writes ``benchmarks/results/<module>.json``. Speed is measured here, never in tests.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Result:
    """One measured figure and, when there is one, its target."""

    metric: str
    value: float
    unit: str
    target: str = ""
    met: bool | None = None
