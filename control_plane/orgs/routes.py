"""Routes (filled in by the feature)."""

from typing import Any

ROUTES: list[Any] = []
