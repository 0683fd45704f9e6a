"""``orgplane keys list`` and ``orgplane keys rotate`` on a SQLite database from settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from control_plane.cli.main import main


def test_keys_commands_need_a_migrated_database(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keys", "list"]) == 1
    assert "orgplane migrate" in capsys.readouterr().err


def test_keys_rotate_then_list_shows_the_timeline(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["migrate"]) == 0
    assert main(["keys", "rotate"]) == 0
    # The first rotation on an empty table starts signing at once: nothing else can sign.
    first = capsys.readouterr().out
    assert "published key" in first
    assert main(["keys", "rotate"]) == 0
    second = capsys.readouterr().out
    assert main(["keys", "rotate"]) == 1
    assert "a rotation is under way" in capsys.readouterr().err
    assert main(["keys", "list"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["KID", "ALG", "STATE"]
    states = sorted(line.split()[2] for line in table[1:])
    assert states == ["pending", "retiring"]
    new_kid = next(line for line in second.splitlines() if line.startswith("published")).split()[2]
    assert any(line.startswith(new_kid) and " pending " in line for line in table)
    assert "PRIVATE" not in "\n".join(table)
