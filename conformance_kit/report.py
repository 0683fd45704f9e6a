"""What a conformance run found: one :class:`Result` per clause of the contract, with evidence.

A :class:`Report` prints as a table (clause, PASS/FAIL, evidence) or as JSON, and is ``ok``
only when every clause it ran passed. Evidence is what was sent and what came back (statuses,
times, counts), never a secret: tokens and credentials are not quoted.
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Result:
    """One clause: its id (``tokens.expired``), what it requires, and whether it held."""

    clause: str
    requirement: str
    passed: bool
    evidence: str

    @property
    def verdict(self) -> str:
        """``PASS`` or ``FAIL``."""
        return "PASS" if self.passed else "FAIL"


@dataclass
class Report:
    """Every clause a run checked, in the order it checked them."""

    target: str
    results: list[Result] = field(default_factory=list)
    #: What else helps read a failure (the end of the instance's log).
    notes: list[str] = field(default_factory=list)

    def add(self, clause: str, requirement: str, passed: bool, evidence: str) -> bool:
        """Record a clause; returns whether it passed."""
        self.results.append(Result(clause, requirement, bool(passed), evidence))
        return bool(passed)

    @property
    def ok(self) -> bool:
        """Whether at least one clause ran and every clause passed."""
        return bool(self.results) and all(r.passed for r in self.results)

    @property
    def failed(self) -> list[str]:
        """The ids of the clauses that failed."""
        return [r.clause for r in self.results if not r.passed]

    def verdicts(self) -> dict[str, bool]:
        """Clause id -> passed."""
        return {r.clause: r.passed for r in self.results}

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-able data (``--json``)."""
        return {
            "target": self.target,
            "ok": self.ok,
            "failed": self.failed,
            "results": [asdict(r) for r in self.results],
            "notes": self.notes,
        }

    def to_json(self) -> str:
        """The report as indented JSON."""
        return json.dumps(self.as_dict(), indent=2)

    def table(self, width: int = 100) -> str:
        """A plain-text table: clause, verdict, evidence (wrapped), then a summary line."""
        name_width = max([len("clause"), *(len(r.clause) for r in self.results)])
        evidence_width = max(30, width - name_width - 9)
        lines = [f"Conformance of {self.target}", ""]
        lines.append(f"{'clause':<{name_width}}  result  evidence")
        lines.append(f"{'-' * name_width}  ------  {'-' * min(evidence_width, 40)}")
        for r in self.results:
            wrapped = textwrap.wrap(r.evidence, evidence_width) or [""]
            lines.append(f"{r.clause:<{name_width}}  {r.verdict:<6}  {wrapped[0]}")
            lines.extend(f"{'':<{name_width}}  {'':<6}  {more}" for more in wrapped[1:])
        passed = sum(r.passed for r in self.results)
        lines.append("")
        summary = f"{passed}/{len(self.results)} clauses passed"
        if self.failed:
            summary += f"; FAILED: {', '.join(self.failed)}"
        lines.append(summary)
        if self.notes and self.failed:
            lines.extend(["", *self.notes])
        return "\n".join(lines)
