"""The stored login of the developer CLI: where it lives, how it is written, who may use it.

``$XDG_CONFIG_HOME/orgplane/credentials.json`` (default ``~/.config``), mode 0600 in a 0700
directory, rewritten atomically. A lock file next to it lets one ``orgplane`` process at a time
use the login, because refresh tokens are single-use.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from control_plane.cli.main import CliError
from control_plane.words import TenantWords


def credentials_path() -> Path:
    """Where the login is kept."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "orgplane" / "credentials.json"


@dataclass
class Session:
    """A stored login: which control plane, its tokens, the current org and its token."""

    url: str
    email: str
    refresh_token: str
    access_token: str = ""
    access_expires_at: float = 0.0
    current_org: str | None = None
    org_token: str = ""
    org_token_expires_at: float = 0.0
    #: The platform's word for an org (``GET /api/v1/platform/words`` at login); empty: default.
    words: dict[str, str] = field(default_factory=dict)

    @property
    def tenant(self) -> TenantWords:
        """How the CLI names an org in what it prints."""
        known = {k: v for k, v in self.words.items() if k in TenantWords.__dataclass_fields__}
        try:
            return TenantWords(**known)
        except TypeError:
            return TenantWords()

    @classmethod
    def load(cls) -> Session:
        """The stored login, or a CliError telling how to log in."""
        path = credentials_path()
        try:
            data = json.loads(path.read_text())
            return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})
        except FileNotFoundError:
            raise CliError("not logged in; run `orgplane login --url URL` first") from None
        except (ValueError, TypeError):
            raise CliError(f"{path} is damaged; run `orgplane login --url URL` again") from None

    def save(self) -> None:
        """Write the login atomically, readable by its owner only."""
        path = credentials_path()
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".credentials-")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as out:
                json.dump(asdict(self), out, indent=2)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise


@contextlib.contextmanager
def exclusive_login(timeout: float = 30.0) -> Iterator[None]:
    """Let one ``orgplane`` process at a time use the stored login.

    Refresh tokens are single-use and a reused one revokes the login, so two commands that
    refresh at once (``$(orgplane token)`` in parallel scripts) must take turns.
    """
    path = credentials_path().with_suffix(".lock")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with path.open("a") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    busy = "another orgplane command is using the login; try again"
                    raise CliError(busy) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
