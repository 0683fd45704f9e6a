"""What ``python -m org_instance`` leaves out of its start: the optional modules it hides and
the archive modules only backups use.

Each check runs in a fresh interpreter: the start-up set-up changes ``sys.modules`` for good.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.instance.processes import child_env


def _run(code: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_app_and_server_import_without_the_modules_a_start_never_uses() -> None:
    _run(
        """
        import sys
        from org_instance import server

        server.skip_unused_optional_modules()
        import org_instance.app, org_instance.logs, uvicorn.config, jwt  # what a start imports

        hidden = [n for n in server.UNUSED_OPTIONAL_MODULES if sys.modules.get(n) is not None]
        assert not hidden, hidden
        assert "tarfile" not in sys.modules and "gzip" not in sys.modules
        """
    )
