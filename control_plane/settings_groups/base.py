"""The base of every settings group: environment variables prefixed ``ORGPLANE_``."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

PREFIX = "ORGPLANE_"


class Group(BaseSettings):
    """A group of settings, read from the environment once and frozen."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="ignore", frozen=True)
