"""Request and response bodies of the workspace API (its pages: :mod:`orgplane_wire.cursors`)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

Title = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
MessageText = Annotated[str, msgspec.Meta(min_length=1, max_length=32_000)]
SettingValue = Annotated[str, msgspec.Meta(max_length=10_000)]
RunnerName = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Label = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.:-]{1,50}$")]


class Strict(msgspec.Struct, forbid_unknown_fields=True):
    """Bodies refuse fields they do not know."""


class NewSession(Strict):
    title: Title = "Untitled"


class RenameSession(Strict):
    title: Title


class NewMessage(Strict):
    body: MessageText


class PutSetting(Strict):
    value: SettingValue
    secret: bool = False


class NewRunner(Strict):
    name: RunnerName
    labels: Annotated[list[Label], msgspec.Meta(max_length=20)] = msgspec.field(
        default_factory=list
    )


class RunnerBeat(Strict):
    status: Literal["idle", "busy"] = "idle"


class SessionOut(msgspec.Struct):
    id: str
    title: str
    created_by: str
    created_at: str
    updated_at: str


class MessageOut(msgspec.Struct):
    id: int
    session_id: str
    author: str
    body: str
    created_at: str


class SettingOut(msgspec.Struct):
    key: str
    secret: bool
    #: None for secret settings: their values are write-only.
    value: str | None
    updated_by: str
    updated_at: str


class RunnerOut(msgspec.Struct):
    id: str
    name: str
    labels: list[str]
    status: str
    created_by: str
    created_at: str
    last_seen_at: str | None
    revoked_at: str | None


class RegisteredRunner(msgspec.Struct):
    runner: RunnerOut
    #: Shown once; only its hash is stored.
    token: str


class FileOut(msgspec.Struct):
    id: str
    name: str
    size: int
    sha256: str
    uploaded_by: str
    created_at: str
