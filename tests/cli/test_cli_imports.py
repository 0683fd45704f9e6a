"""What the ``orgplane`` command loads before it knows which command runs: the parser alone,
never the settings (pydantic), the database layers or the app. Each command imports what it
needs when it runs (``orgplane --help``: 0.86 -> 0.28 CPU-s, docs/performance.md).

The check runs in a fresh interpreter: the test process has imported everything already.
"""

from __future__ import annotations

from tests.instance.processes import fresh_python

NEVER_FOR_THE_PARSER = (
    "control_plane.settings",
    "control_plane.app",
    "pydantic",
    "pydantic_settings",
    "sqlalchemy",
    "sqlmodel",
    "alembic",
    "litestar",
    "jwt",
    "cryptography",
)


def test_the_parser_loads_no_settings_database_or_app() -> None:
    code = """
        import sys
        from control_plane.cli.main import build_parser

        assert build_parser().parse_args(["orgs"]).command == "orgs"
        print(" ".join(m for m in sys.argv[1:] if m in sys.modules))
        """
    result = fresh_python(code, *NEVER_FOR_THE_PARSER)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == []
