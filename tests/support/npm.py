"""npm packages the tests run in a browser (not the SDK's, which ``sdk/js`` locks), each pinned
here and installed once into ``/var/cache/orgplane/npm/<name>`` (``ORGPLANE_TEST_NPM_CACHE``
moves the root), outside the repository so a checkout stays clean.

:func:`npm_file` installs on first use (idempotent: a pinned version already there costs one
``package.json`` read); ``.ci/run`` calls ``python -m tests.support.npm`` so a CI run installs
them before the tests. Concurrent workers take a file lock around the install.

Usage: ``python -m tests.support.npm`` (install every pinned package).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from pathlib import Path

#: Pinned versions of the npm packages the tests use.
PINNED = {"axe-core": "4.14.1"}
CACHE = Path(os.environ.get("ORGPLANE_TEST_NPM_CACHE", "/var/cache/orgplane/npm"))


def _installed_version(folder: Path, name: str) -> str | None:
    manifest = folder / "node_modules" / name / "package.json"
    try:
        version = json.loads(manifest.read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None
    return str(version)


def install(name: str) -> Path:
    """Install the pinned ``name`` into its cache folder (unless it is there); answers the
    package's folder. Raises ``RuntimeError`` when npm is missing or fails."""
    version = PINNED[name]
    folder = CACHE / name
    package = folder / "node_modules" / name
    if _installed_version(folder, name) == version:
        return package
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is not on PATH")
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _installed_version(folder, name) != version:
            done = subprocess.run(
                [
                    npm,
                    "install",
                    "--prefix",
                    str(folder),
                    "--no-save",
                    "--no-audit",
                    "--no-fund",
                    "--loglevel=error",
                    f"{name}@{version}",
                ],
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            if done.returncode != 0 or _installed_version(folder, name) != version:
                raise RuntimeError(f"npm install {name}@{version} failed: {done.stderr[-2000:]}")
    return package


def npm_file(name: str, relative: str) -> Path | None:
    """A file of the pinned package ``name`` (installed if need be), or None when it cannot be
    installed (no npm, no registry): the caller decides with ``need(...)``."""
    try:
        path = install(name) / relative
    except (RuntimeError, OSError, subprocess.TimeoutExpired):
        return None
    return path if path.is_file() else None


if __name__ == "__main__":
    for pinned in PINNED:
        print(f"{pinned}@{PINNED[pinned]}: {install(pinned)}")
