"""compose/redis-entrypoint.sh starts a real Redis with ACLs on, run here on a loopback port.

Compose runs the same script in the redis image; here it runs against this machine's
redis-server, so what is proved is the ACL file it writes and how Redis treats it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.deploy.compose_file import COMPOSE_DIR
from tests.support.services import need
from tests.support.wait import wait_until

SCRIPT = COMPOSE_DIR / "redis-entrypoint.sh"

pytestmark = pytest.mark.redis


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def redis_from_script(data: Path, password: str) -> Iterator[int]:
    """Run the entrypoint script with ``password`` until the block ends; yields the port."""
    need("redis-server", shutil.which("redis-server") is not None)
    port = _free_port()
    env = {
        "PATH": os.environ["PATH"],
        "REDIS_ADMIN_PASSWORD": password,
        "REDIS_ACL_FILE": str(data / "users.acl"),
    }
    args = [
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(data),
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
    ]
    process = subprocess.Popen(
        ["sh", str(SCRIPT), *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:

        def listening() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    return True
            except OSError:
                if process.poll() is not None:
                    stderr = process.stderr.read().decode() if process.stderr else ""
                    pytest.fail(f"redis exited: {stderr}")
                return False

        wait_until(listening, what=f"redis from the entrypoint script on port {port}")
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stderr:
            process.stderr.close()


def _client(port: int, username: str | None = None, password: str | None = None) -> redis.Redis:
    # No retries: redis-py retries a refused login with back-off, and refusals are expected here.
    return redis.Redis(
        host="127.0.0.1",
        port=port,
        username=username,
        password=password,
        socket_timeout=5,
        retry=Retry(NoBackoff(), 0),
    )


def test_only_the_admin_user_gets_in(tmp_path: Path) -> None:
    with redis_from_script(tmp_path, "first-password") as port:
        with pytest.raises(redis.AuthenticationError):
            _client(port).ping()
        with pytest.raises(redis.AuthenticationError):
            _client(port, "default", "").ping()
        with pytest.raises(redis.AuthenticationError):
            _client(port, "orgplane", "wrong-password").ping()
        admin = _client(port, "orgplane", "first-password")
        assert admin.ping()
        admin.set("control-plane:probe", "1")
        # The admin manages the platform's users but cannot wipe or stop the server.
        with pytest.raises(redis.exceptions.NoPermissionError):
            admin.flushall()
        with pytest.raises(redis.exceptions.NoPermissionError):
            admin.execute_command("SHUTDOWN", "NOSAVE")  # type: ignore[no-untyped-call]
        admin.close()
    assert "first-password" not in (tmp_path / "users.acl").read_text()


def test_org_users_survive_a_restart_and_the_admin_password_rotates(tmp_path: Path) -> None:
    with redis_from_script(tmp_path, "first-password") as port:
        admin = _client(port, "orgplane", "first-password")
        admin.acl_setuser(
            "org-a",
            enabled=True,
            passwords=["+org-a-password"],
            keys=["org:a:*"],
            channels=["org:a:*"],
            commands=["+@all", "-@dangerous"],
        )
        admin.acl_save()
        admin.close()

    with redis_from_script(tmp_path, "second-password") as port:
        with pytest.raises(redis.AuthenticationError):
            _client(port, "orgplane", "first-password").ping()
        assert _client(port, "orgplane", "second-password").ping()
        org = _client(port, "org-a", "org-a-password")
        org.set("org:a:key", "mine")
        assert org.get("org:a:key") == b"mine"
        with pytest.raises(redis.exceptions.NoPermissionError):
            org.get("org:b:key")
        org.close()
    lines = (tmp_path / "users.acl").read_text().splitlines()
    assert [line.split()[1] for line in lines].count("orgplane") == 1
    assert lines[0].startswith("user default off")
