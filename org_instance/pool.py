"""Pool mode: a spare instance started before its org exists, and the file that makes it the org.

A warm-pool spare is started with :data:`Env.POOL_SECRET` and no org configuration. It imports
everything and binds its port, then waits for the control plane to ``POST`` the org's
environment to :data:`contract.POOL_ASSIGN_PATH` (see :mod:`org_instance.pool_app`). The
assignment is written to :data:`contract.ASSIGNMENT_FILE` in the data directory, so a restart of
the spare (a crash, the engine's restart policy) comes back as the org, not as a spare.

Which environment an instance starts from (:func:`environment_for_start`):

* the org's own environment (it carries an instance credential): that, always. A leftover
  assignment file (the org's instance was re-created with its own environment) is deleted: it
  holds a credential nobody needs any more;
* pool mode with an assignment file: the file's org variables plus the backend's own (where the
  instance listens and keeps its data);
* pool mode without one: ``None``, serve as a spare.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from org_instance.config import ConfigError
from orgplane_wire import contract
from orgplane_wire.contract import Env

#: Variables the backend sets for the process it starts; an assignment never overrides them.
BACKEND_VARS = frozenset(
    {Env.DATA_DIR, Env.BIND_HOST, Env.PORT, Env.INTERNAL_HOSTS, Env.LOG_FORMAT, Env.POOL_SECRET}
)
MIN_SECRET_LENGTH = 16


def in_pool_mode(env: Mapping[str, str]) -> bool:
    """Whether ``env`` starts a spare: a pool secret and no org credential."""
    return (
        bool(env.get(Env.POOL_SECRET, "").strip())
        and not env.get(Env.INSTANCE_CREDENTIAL, "").strip()
    )


@dataclass(frozen=True)
class PoolConfig:
    """What a spare needs before it has an org: where it listens, keeps data, and its secret."""

    secret: str = field(repr=False)
    data_dir: Path
    org_id: str = ""
    bind_host: str = "0.0.0.0"  # noqa: S104 - a spare listens inside its container or pod
    port: int = contract.DEFAULT_PORT
    log_format: str = "json"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> PoolConfig:
        """The spare's configuration, or one ConfigError naming every problem."""
        problems = []
        secret = env.get(Env.POOL_SECRET, "").strip()
        if len(secret) < MIN_SECRET_LENGTH:
            problems.append(f"{Env.POOL_SECRET} must be {MIN_SECRET_LENGTH}+ characters")
        data_dir = env.get(Env.DATA_DIR, "").strip()
        if not data_dir:
            problems.append(f"{Env.DATA_DIR} is required")
        raw_port = env.get(Env.PORT, "").strip() or str(contract.DEFAULT_PORT)
        if not raw_port.isdigit() or not 0 <= int(raw_port) <= 65535:
            problems.append(f"{Env.PORT} must be a port number")
        log_format = env.get(Env.LOG_FORMAT, "").strip() or "json"
        if log_format not in ("console", "json"):
            problems.append(f"{Env.LOG_FORMAT} must be 'console' or 'json'")
        if problems:
            raise ConfigError("; ".join(problems))
        return cls(
            secret=secret,
            data_dir=Path(data_dir),
            org_id=env.get(Env.ORG_ID, "").strip(),
            bind_host=env.get(Env.BIND_HOST, "").strip() or "0.0.0.0",  # noqa: S104 - see field
            port=int(raw_port),
            log_format=log_format,
        )


def assignment_path(data_dir: Path) -> Path:
    """Where an assigned spare keeps its org's environment."""
    return data_dir / contract.ASSIGNMENT_FILE


def org_part(env: Mapping[str, Any]) -> dict[str, str]:
    """The org's variables of an assignment: known names only, string values, no backend ones.

    Raises ConfigError when a value is not a string."""
    known = {v for k, v in vars(Env).items() if k.isupper()}
    picked: dict[str, str] = {}
    for name, value in env.items():
        if name not in known or name in BACKEND_VARS:
            continue
        if not isinstance(value, str):
            raise ConfigError(f"assignment: {name} must be a string")
        picked[name] = value
    return picked


def read_assignment(data_dir: Path) -> dict[str, str] | None:
    """The org environment an earlier assignment wrote, or None when there is none."""
    try:
        raw: Any = json.loads(assignment_path(data_dir).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{contract.ASSIGNMENT_FILE} is unreadable") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("env"), dict):
        raise ConfigError(f"{contract.ASSIGNMENT_FILE} must hold an object with an 'env' object")
    return org_part(raw["env"])


def write_assignment(data_dir: Path, org_env: Mapping[str, str]) -> None:
    """Keep the org's environment in the data directory, atomically, readable by us only."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    target = assignment_path(data_dir)
    tmp = target.with_name(target.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"env": dict(org_env)}, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, target)


def remove_assignment(data_dir: Path) -> None:
    """Delete the assignment file if there is one."""
    with contextlib.suppress(FileNotFoundError):
        assignment_path(data_dir).unlink()


def assigned_env(env: Mapping[str, str], org_env: Mapping[str, str]) -> dict[str, str]:
    """The environment of an assigned spare: the org's variables, then the backend's own."""
    merged = dict(org_part(org_env))
    merged.update({k: v for k, v in env.items() if k in BACKEND_VARS and k != Env.POOL_SECRET})
    return merged


def environment_for_start(env: Mapping[str, str]) -> Mapping[str, str] | None:
    """The environment to configure the instance from; None means "serve as a spare"."""
    data_dir = env.get(Env.DATA_DIR, "").strip()
    if not in_pool_mode(env):
        if data_dir and env.get(Env.INSTANCE_CREDENTIAL, "").strip():
            remove_assignment(Path(data_dir))
        return env
    org_env = read_assignment(Path(data_dir)) if data_dir else None
    return None if org_env is None else assigned_env(env, org_env)
