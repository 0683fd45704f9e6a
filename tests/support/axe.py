"""Accessibility audits with axe-core (from npm, :mod:`tests.support.npm`) run in the page.

The script is added with Playwright's ``add_script_tag``, which inlines it: the UI's CSP
(no inline script) would refuse it, so the audited browser context is made with
``bypass_csp=True`` (for the audit only; the other browser tests keep the CSP in force).
:func:`audit` checks that axe really loaded before trusting an empty answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.npm import npm_file

#: Violations of these impacts fail an audit.
FAILING_IMPACTS = frozenset({"serious", "critical"})


def axe_script() -> Path | None:
    """``axe.min.js`` of the pinned axe-core (installed on first use), or None."""
    return npm_file("axe-core", "axe.min.js")


@dataclass(frozen=True)
class Violation:
    """One failing rule on one page, with what a developer needs to fix it."""

    page: str
    rule: str
    impact: str
    targets: list[str]
    help: str
    help_url: str

    def __str__(self) -> str:
        return (
            f"{self.page}: [{self.impact}] {self.rule}: {self.help}\n"
            f"    targets: {', '.join(self.targets)}\n    {self.help_url}"
        )


async def audit(page: Any, script: Path, label: str) -> list[Violation]:
    """Run axe-core on ``page`` as it is now; answers its serious and critical violations."""
    if not await page.evaluate("() => typeof window.axe === 'object'"):
        try:
            await page.add_script_tag(path=str(script))
        except Exception as exc:  # Playwright's Error, e.g. the CSP refusing the inline script
            raise AssertionError(f"{label}: axe-core did not load: {exc}") from exc
    loaded = await page.evaluate("() => typeof window.axe === 'object' && window.axe.version")
    assert loaded, f"{label}: axe-core did not load (is bypass_csp set on the context?)"
    result = await page.evaluate(
        "async () => await window.axe.run(document, {resultTypes: ['violations']})"
    )
    found = []
    for violation in result["violations"]:
        if violation.get("impact") not in FAILING_IMPACTS:
            continue
        targets = [" ".join(map(str, node["target"])) for node in violation["nodes"]]
        found.append(
            Violation(
                page=label,
                rule=violation["id"],
                impact=violation["impact"],
                targets=targets[:5]
                + ([f"... {len(targets) - 5} more"] if len(targets) > 5 else []),
                help=violation["help"],
                help_url=violation["helpUrl"],
            )
        )
    return found
