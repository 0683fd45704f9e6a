"""The platform's word for the tenant unit, in every text a person reads.

``ORGPLANE_TENANT_*`` (default "Organization"/"Organizations") names the unit in the UI's
templates (the ``tenant`` global), emails (the ``tenant`` context of every message), the CLI's
output (``GET /api/v1/platform/words``, kept with the login) and the OpenAPI descriptions
(:mod:`control_plane.wording`). API paths, field names, scopes and codes keep ``org``.

:meth:`TenantWords.reword` turns prose written with "org" into the platform's word: ``org``,
``orgs``, ``Org``, ``Orgs``, and ``a``/``an`` before them; never inside code spans (backticks)
nor as part of an identifier (``org_id``, ``org:read``, ``org.create``, ``/orgs``, ``org-``).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the CLI reads the words at login without loading the settings (pydantic)
    from control_plane.settings import Settings

_CODE = re.compile(r"(`+[^`]*`+)")
_ORG = re.compile(r"(?:\b([Aa]n?) )?(?<![\w/{.:-])([Oo])rg(s?)(?![\w/}_]|[.:-]\w)")


def _lower_first(word: str) -> str:
    """``Workspace`` -> ``workspace``; ``SaaS account`` and ``ACME unit`` keep their case."""
    return word[:1].lower() + word[1:] if word[1:2].islower() else word


@dataclass(frozen=True)
class TenantWords:
    """How the platform names one tenant and several."""

    singular: str = "Organization"
    plural: str = "Organizations"
    placeholder: str = "Organization name"
    column: str = "Organization"

    @property
    def one(self) -> str:
        """The singular within a sentence (``workspace``)."""
        return _lower_first(self.singular)

    @property
    def many(self) -> str:
        """The plural within a sentence (``workspaces``)."""
        return _lower_first(self.plural)

    @property
    def a_one(self) -> str:
        """The singular with its indefinite article (``a workspace``, ``an organization``)."""
        return f"{'an' if self.one[:1].lower() in 'aeiou' else 'a'} {self.one}"

    def reword(self, text: str) -> str:
        """``text`` with the prose word "org" replaced (see the module docstring)."""
        parts = _CODE.split(text)
        parts[::2] = [_ORG.sub(self._replace, part) for part in parts[::2]]
        return "".join(parts)

    def _replace(self, match: re.Match[str]) -> str:
        article, initial, plural = match.group(1), match.group(2), match.group(3)
        word = self.plural if plural else self.singular
        if initial == "o":
            word = _lower_first(word)
        if article is None:
            return word
        chosen = "an" if word[:1].lower() in "aeiou" else "a"
        return f"{chosen.capitalize() if article[0] == 'A' else chosen} {word}"

    def as_dict(self) -> dict[str, str]:
        """The four settings, for clients."""
        return asdict(self)


def tenant_words(settings: Settings) -> TenantWords:
    """The words ``settings`` configure (placeholder and column derived when left empty)."""
    tenant = settings.tenant
    return TenantWords(
        singular=tenant.tenant_singular,
        plural=tenant.tenant_plural,
        placeholder=tenant.tenant_placeholder or f"{tenant.tenant_singular} name",
        column=tenant.tenant_column or tenant.tenant_singular,
    )
