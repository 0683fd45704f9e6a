"""The ``local`` backend: each org instance is a process on this machine (the embedded default).

Each org has a directory ``<data_root>/orgs/<org_id>/`` holding

* ``data/``: the instance's data directory (``ORGPLANE_DATA_DIR``);
* ``instance.log``: its output;
* ``state.json`` (mode 0600): the deployment that owns the directory, and while an instance
  exists its pid, process start time, port, spec fingerprint and launch environment. The
  environment holds the instance credential; it is kept so :meth:`restart` can relaunch, and it
  never leaves this file (the handle carries pid, port and paths only).

The instance runs ``python -X orgplane_instance=<deployment>/<org> -m org_instance`` on a free
127.0.0.1 port, in its own session so a control-plane crash does not take it down; after a
restart the control plane finds it again from ``state.json`` (and checks pid, start time and
marker before believing or signalling it). A dead instance shows as ``failed`` and the next
:meth:`apply` starts it again. Only variables the instance needs are passed to it: the control
plane's own secrets (database URL, deployment secret) never reach an org's process.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import os
import shutil
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from orgplane_wire.contract import Env
from provisioners import processes
from provisioners.base import InstanceSpec, InstanceStatus, Provisioner, ProvisionerOptions
from provisioners.errors import PermanentProvisionerError
from provisioners.logstream import file_lines
from provisioners.naming import MANAGED_BY_LABEL, ORG_ID_LABEL, check_org_id
from provisioners.probe import answers_ready

#: Variables of the control plane's environment an instance may inherit (to find Python).
_INHERITED = ("PATH", "LANG", "LC_ALL", "TZ", "PYTHONPATH", "VIRTUAL_ENV", "SYSTEMROOT")


@dataclass(frozen=True, kw_only=True)
class _State:
    deployment_id: str
    org_id: str
    instance_id: str = ""
    pid: int = 0
    started: str = ""
    port: int = 0
    fingerprint: str = ""
    stopped: bool = False
    env: dict[str, str] = field(default_factory=dict, repr=False)


class LocalProvisioner(Provisioner):
    """Org instances as local processes (see the module docstring)."""

    name = "local"

    def __init__(
        self, *, options: ProvisionerOptions, python: str = "", stop_timeout: float = 5.0
    ) -> None:
        super().__init__(options=options)
        self.python = python or sys.executable
        self.stop_timeout = stop_timeout
        self.root = options.data_root / "orgs"
        self._children: dict[int, Any] = {}  # pid -> Popen, so our own children get reaped
        self._locks: dict[str, asyncio.Lock] = {}

    # -- the interface -------------------------------------------------------------------------

    async def apply(self, *, spec: InstanceSpec) -> InstanceStatus:
        """See :meth:`Provisioner.apply`. An unchanged, live process is left alone."""
        async with self._lock(spec.org_id):
            fingerprint = spec.fingerprint()
            state = self._read(spec.org_id)
            if state is not None:
                self._check_ours(state)
                state = self._adopt_unrecorded(state)
                if self._running(state) and state.fingerprint == fingerprint:
                    return await self._status_of(state)
                await self._stop_process(state)
            state = _State(
                deployment_id=self.options.deployment_id,
                org_id=spec.org_id,
                instance_id=spec.instance_id,
                fingerprint=fingerprint,
                env=dict(spec.env),
            )
            return await self._status_of(await self._launch(state))

    async def status(self, *, org_id: str) -> InstanceStatus | None:
        """See :meth:`Provisioner.status`."""
        state = self._read(check_org_id(org_id))
        if state is None or state.deployment_id != self.options.deployment_id:
            return None
        return await self._status_of(state)

    async def remove(self, *, org_id: str, keep_data: bool) -> None:
        """See :meth:`Provisioner.remove`. The directory of another deployment is left alone."""
        async with self._lock(org_id):
            state = self._read(check_org_id(org_id))
            if state is None or state.deployment_id != self.options.deployment_id:
                return
            await self._stop_process(self._adopt_unrecorded(state))
            if keep_data:
                self._write(_State(deployment_id=state.deployment_id, org_id=org_id))
            else:
                await asyncio.to_thread(shutil.rmtree, self.root / org_id, ignore_errors=True)

    async def list(self) -> builtins.list[InstanceStatus]:
        """See :meth:`Provisioner.list`: every org directory this deployment owns."""
        if not self.root.is_dir():
            return []
        states = []
        for entry in sorted(self.root.iterdir()):
            state = self._read(entry.name) if (entry / "state.json").is_file() else None
            if state is not None and state.deployment_id == self.options.deployment_id:
                states.append(state)
        # Concurrently: a starting instance is probed over HTTP, and a burst has many.
        return list(await asyncio.gather(*(self._status_of(state) for state in states)))

    async def stop(self, *, org_id: str) -> None:
        """Stop the process and keep everything; :meth:`apply` starts it again."""
        async with self._lock(org_id):
            state = self._read(check_org_id(org_id))
            if state is None or state.deployment_id != self.options.deployment_id:
                return
            await self._stop_process(self._adopt_unrecorded(state))
            if state.env:
                self._write(replace(state, pid=0, started="", stopped=True))

    async def restart(self, *, org_id: str) -> InstanceStatus:
        """Stop the process and start it again with the same environment and data."""
        async with self._lock(org_id):
            state = self._read(check_org_id(org_id))
            if state is None or state.deployment_id != self.options.deployment_id or not state.env:
                raise PermanentProvisionerError(f"org {org_id} has no local instance to restart")
            await self._stop_process(self._adopt_unrecorded(state))
            return await self._status_of(await self._launch(state))

    async def logs(
        self,
        *,
        org_id: str,
        since: datetime | None = None,
        tail: int | None = None,
        follow: bool = False,
    ) -> AsyncIterator[str]:
        """See :meth:`Provisioner.logs`: the lines of ``instance.log`` (every run of the
        instance appends to it; a followed log goes on across a restart)."""
        state = self._read(check_org_id(org_id))
        if state is None or state.deployment_id != self.options.deployment_id:
            raise PermanentProvisionerError(f"org {org_id} has no local instance")
        path = self.root / org_id / "instance.log"
        async for line in file_lines(path, since=since, tail=tail, follow=follow):
            yield line

    # -- processes -----------------------------------------------------------------------------

    def _marker(self, org_id: str) -> str:
        return processes.marker(deployment_id=self.options.deployment_id, org_id=org_id)

    async def _launch(self, state: _State) -> _State:
        org_dir = self.root / state.org_id
        data_dir = org_dir / "data"
        private_dirs(self.root, org_dir, data_dir)
        port = processes.free_port()
        env = {name: os.environ[name] for name in _INHERITED if name in os.environ}
        env.update(state.env)
        env.update(
            {Env.DATA_DIR: str(data_dir.resolve()), Env.BIND_HOST: "127.0.0.1", Env.PORT: str(port)}
        )
        # Recorded before the start: if we die right after it, the marker finds the process.
        state = replace(state, pid=0, started="", port=port, stopped=False)
        self._write(state)
        argv = [self.python, "-X", self._marker(state.org_id), "-m", "org_instance"]
        child = await asyncio.to_thread(
            processes.launch, argv, env=env, cwd=data_dir, log_path=org_dir / "instance.log"
        )
        self._children[child.pid] = child
        info = processes.process_info(child.pid)
        state = replace(state, pid=child.pid, started=info.started if info else "")
        self._write(state)
        return state

    def _adopt_unrecorded(self, state: _State) -> _State:
        """A state written just before a launch whose pid was never recorded (a crash between
        the two writes): find the process by its marker."""
        if state.pid or not state.port or state.stopped:
            return state
        for pid in processes.find_by_marker(self._marker(state.org_id)):
            info = processes.process_info(pid)
            if info is not None and not info.zombie:
                adopted = replace(state, pid=pid, started=info.started)
                self._write(adopted)
                return adopted
        return state

    def _running(self, state: _State) -> bool:
        if not state.pid:
            return False
        child = self._children.get(state.pid)
        if child is not None and child.poll() is not None:
            return False
        info = processes.process_info(state.pid)
        if info is None or info.zombie or info.started != state.started:
            return False
        # Our own child's command line reads empty for a moment after Popen returns (the kernel
        # sets it up late in exec) and while it exits; its start time identifies it then.
        return self._marker(state.org_id) in info.cmdline or (
            not info.cmdline and child is not None
        )

    async def _stop_process(self, state: _State) -> None:
        if self._running(state):
            await processes.terminate(
                state.pid, running=lambda: self._running(state), grace=self.stop_timeout
            )
        self._children.pop(state.pid, None)

    # -- status --------------------------------------------------------------------------------

    async def _status_of(self, state: _State) -> InstanceStatus:
        org_dir = self.root / state.org_id
        handle = {
            "pid": state.pid,
            "port": state.port,
            "started": state.started,
            "data_dir": str(org_dir / "data"),
            "log": str(org_dir / "instance.log"),
        }
        common: dict[str, Any] = {
            "org_id": state.org_id,
            "handle": handle,
            "image": "local",
            "instance_id": state.instance_id,
            "fingerprint": state.fingerprint,
            "labels": {ORG_ID_LABEL: state.org_id, MANAGED_BY_LABEL: state.deployment_id},
        }
        if not state.env:
            return InstanceStatus(state="absent", message="data kept, no instance", **common)
        if state.stopped:
            return InstanceStatus(state="stopped", message="stopped", **common)
        if not self._running(state):
            return InstanceStatus(state="failed", message=self._exit_message(state), **common)
        endpoint = f"http://127.0.0.1:{state.port}"
        if await answers_ready(endpoint):
            return InstanceStatus(state="running", endpoint=endpoint, **common)
        return InstanceStatus(
            state="starting", endpoint=endpoint, message="waiting for /readyz", **common
        )

    def _exit_message(self, state: _State) -> str:
        child = self._children.get(state.pid)
        code = child.poll() if child is not None else None
        message = f"process {state.pid} is not running"
        if code is not None:
            message += f" (exit code {code})"
        last = _last_line(self.root / state.org_id / "instance.log")
        return f"{message}: {last}" if last else message

    # -- state files ---------------------------------------------------------------------------

    def _lock(self, org_id: str) -> asyncio.Lock:
        return self._locks.setdefault(org_id, asyncio.Lock())

    def _check_ours(self, state: _State) -> None:
        if state.deployment_id != self.options.deployment_id:
            raise PermanentProvisionerError(
                f"{self.root / state.org_id} belongs to deployment {state.deployment_id!r}, "
                f"not {self.options.deployment_id!r}"
            )

    def _read(self, org_id: str) -> _State | None:
        try:
            raw: Mapping[str, Any] = json.loads((self.root / org_id / "state.json").read_text())
            return _State(**raw)
        except FileNotFoundError:
            return None
        except (ValueError, TypeError) as exc:
            raise PermanentProvisionerError(f"unreadable state file of org {org_id}") from exc

    def _write(self, state: _State) -> None:
        org_dir = self.root / state.org_id
        private_dirs(self.root, org_dir)
        tmp = org_dir / "state.json.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(asdict(state), fh)
        os.replace(tmp, org_dir / "state.json")


def private_dirs(*paths: Path) -> None:
    """Create each directory (in order) readable by this user only (0700); ``mkdir``'s mode
    does not apply to parents it creates, so each is made on its own."""
    for path in paths:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.chmod(0o700)


def _last_line(path: Path, limit: int = 300) -> str:
    """The last non-empty line of a log file, shortened (the explanation of a failure)."""
    try:
        with path.open("rb") as fh:
            fh.seek(max(0, path.stat().st_size - 4096))
            lines = [line for line in fh.read().decode(errors="replace").splitlines() if line]
    except OSError:
        return ""
    return lines[-1][:limit] if lines else ""
