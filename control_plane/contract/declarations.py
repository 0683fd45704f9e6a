"""How an ``ORGPLANE_ALLOWED_IMAGES`` entry declares the contract versions its images speak:
``repository[@digest];contract=1,2``. Standard library only: the settings validate with it."""

from __future__ import annotations

import re
from typing import Final

_DECLARATION: Final = re.compile(r"^contract=([1-9][0-9]{0,5}(?:,[1-9][0-9]{0,5})*)$")


def split_entry(entry: str) -> tuple[str, str]:
    """An entry's image reference and its declaration ("" when it has none), stripped."""
    reference, _, declared = entry.strip().partition(";")
    return reference.strip(), declared.strip()


def declared_versions(declaration: str) -> frozenset[int] | None:
    """The versions ``contract=1,2`` names; None when it is not such a declaration."""
    match = _DECLARATION.match(declaration)
    if match is None:
        return None
    return frozenset(int(v) for v in match.group(1).split(","))
