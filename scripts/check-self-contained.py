#!/usr/bin/env python3
"""Prove the repository is self-contained: its tests collect from a copy with nothing beside it.

Copies the repository's files (tracked, and untracked but not ignored) alone into a new
temporary directory, then runs ``pytest --collect-only`` there with an audit hook that records
every file opened. It fails when collection fails, or when a file outside the copy was opened
other than the interpreter's and the virtualenv's own (a test reading a sibling folder of the
checkout, or the original checkout through the editable install, would be caught).

Usage: ``.venv/bin/python scripts/check-self-contained.py`` (run by ``.ci/run``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# The child: install the audit hook first, then collect. Paths are resolved so a symlink cannot
# smuggle a read past the check.
CHILD = r"""
import os, sys
root = os.path.realpath(sys.argv[1])
allowed = tuple(
    os.path.realpath(p) + os.sep
    for p in {sys.prefix, sys.base_prefix, sys.exec_prefix, "/usr", "/etc", "/proc", "/sys",
              "/dev", "/lib", "/lib64"}
)
seen = set()

def hook(event, args):
    if event != "open" or not isinstance(args[0], (str, bytes, os.PathLike)):
        return
    path = os.fsdecode(args[0])
    if not os.path.isabs(path):
        return
    real = os.path.realpath(path)
    if real == root or real.startswith(root + os.sep) or real.startswith(allowed):
        return
    seen.add(real)

sys.addaudithook(hook)
import pytest
import tempfile
code = pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", "-n", "0"])
# tempfile probes its directory with a file it deletes at once; that is not reading anything.
tmp = os.path.realpath(tempfile.gettempdir())
seen = {
    p for p in seen
    if p != tmp and not (os.path.dirname(p) == tmp and not os.path.exists(p))
}
for path in sorted(seen):
    print(f"OUTSIDE THE TREE: {path}", file=sys.stderr)
sys.exit(int(code) or (3 if seen else 0))
"""


def repository_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],  # noqa: S607
        cwd=REPO,
        check=True,
        capture_output=True,
    ).stdout
    return [name for name in listed.decode().split("\0") if name and (REPO / name).is_file()]


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="orgplane-alone-") as tmp:
        copy = Path(tmp) / "orgplane"
        for name in repository_files():
            target = copy / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, target)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
        # The copy's own packages come first; the editable install still points at REPO, and
        # any import that fell through to it would be an open outside the tree.
        env["PYTHONPATH"] = str(copy)
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        result = subprocess.run(  # noqa: S603 - this interpreter, our own script
            [sys.executable, "-c", CHILD, str(copy)], cwd=copy, env=env, check=False
        )
        if result.returncode == 0:
            print(f"self-contained: the tests collect from a lone copy in {copy}")
        else:
            print(f"NOT self-contained (exit {result.returncode})", file=sys.stderr)
        return result.returncode


if __name__ == "__main__":
    sys.exit(main())
