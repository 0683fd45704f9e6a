"""What ``python -m org_instance`` leaves out of its start: the optional modules it hides, the
archive modules only backups use, the control plane's database layers, uvloop, and
cryptography until the first token.

Each check runs in a fresh interpreter: the start-up set-up changes ``sys.modules`` for good.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import uuid
from pathlib import Path

from tests.instance.helpers import ISSUER, Signer
from tests.instance.processes import child_env, free_port, fresh_python, stop
from tests.support.wait import wait_http


def _run(code: str, *args: str) -> None:
    result = fresh_python(code, *args)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_app_and_server_import_without_the_modules_a_start_never_uses() -> None:
    _run(
        """
        import sys
        from org_instance import server

        server.skip_unused_optional_modules()
        import org_instance.app, orgplane_wire.logs, uvicorn.config  # what a start imports

        hidden = [n for n in server.UNUSED_OPTIONAL_MODULES if sys.modules.get(n) is not None]
        assert not hidden, hidden
        # gzip comes in with prometheus-client's exposition module (the instance's /metrics,
        # docs/metrics.md: under 1 ms); tarfile, which only backups use, stays out, and so do
        # the control plane's database layers.
        never = ("tarfile", "sqlalchemy", "alembic", "control_plane")
        assert not [n for n in never if n in sys.modules], [n for n in never if n in sys.modules]
        """
    )


def test_a_warm_spare_loads_what_its_first_token_needs(tmp_path: Path) -> None:
    # A cold start leaves PyJWT and cryptography to the first token; a spare, claimed to be
    # used at once, loads them while nobody waits.
    _run(
        """
        import sys
        from pathlib import Path
        from org_instance import server
        from org_instance.app import create_app
        from org_instance.pool import PoolConfig
        from org_instance.pool_app import warm_up

        server.skip_unused_optional_modules()
        assert "jwt" not in sys.modules and "cryptography" not in sys.modules
        warm_up(create_app, PoolConfig(secret="s" * 32, data_dir=Path(sys.argv[1])))
        assert "orgplane_wire.jws" in sys.modules and "cryptography.fernet" in sys.modules
        """,
        str(tmp_path),
    )


def test_cryptography_loads_at_the_first_token_not_at_start(tmp_path: Path) -> None:
    signer = Signer()
    org_id = uuid.uuid4().hex
    jwks = json.dumps({"keys": [signer.jwk]})
    _run(
        """
        import asyncio, sys
        from pathlib import Path

        import httpx
        from org_instance import server
        from org_instance.app import create_app
        from org_instance.config import InstanceConfig
        from orgplane_wire.contract import org_audience

        server.skip_unused_optional_modules()
        jwks, token, org_id, issuer, data_dir = sys.argv[1:]
        reply = httpx.Response(200, text=jwks, headers={"cache-control": "max-age=300"})
        http = httpx.AsyncClient(transport=httpx.MockTransport(lambda request: reply))
        config = InstanceConfig(
            org_id=org_id,
            instance_credential=f"opi_{org_id}.test-credential-0123456789",
            data_dir=Path(data_dir),
            jwks_url=issuer + "/.well-known/jwks.json",
            issuer=issuer,
            audience=org_audience(org_id),
        )
        app = create_app(config, http=http)
        verifier, box = app.state.instance.verifier, app.state.instance.box

        def loaded():
            return [n for n in ("jwt", "cryptography") if n in sys.modules]

        async def first_token():
            assert await verifier.refresh()  # what the lifespan's prefetch does
            assert not loaded(), loaded()
            return await verifier.verify(token)

        assert not loaded(), loaded()
        assert asyncio.run(first_token())["org_id"] == org_id
        assert loaded() == ["jwt", "cryptography"]
        assert box.decrypt(box.encrypt("s3cret")) == "s3cret"
        """,
        jwks,
        signer.token(org_id),
        org_id,
        ISSUER,
        str(tmp_path),
    )


def test_a_serving_instance_runs_on_asyncios_loop_without_loading_uvloop(tmp_path: Path) -> None:
    # uvloop is installed here (uvicorn's "standard" extra, which the control plane uses), so
    # uvicorn would pick it if the instance did not ask for asyncio's loop.
    assert importlib.util.find_spec("uvloop") is not None
    port = free_port()
    env = child_env(
        ORGPLANE_ORG_ID="0123456789abcdef0123456789abcdef",
        ORGPLANE_INSTANCE_CREDENTIAL="opi_0123456789abcdef0123456789abcdef.startup-test",
        ORGPLANE_JWKS_URL="http://127.0.0.1:9/jwks",
        ORGPLANE_ISSUER="http://127.0.0.1:9",
        ORGPLANE_DATA_DIR=str(tmp_path),
        ORGPLANE_BIND_HOST="127.0.0.1",
        ORGPLANE_PORT=str(port),
    )
    with (tmp_path / "instance.log").open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "org_instance"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", proc=proc, log=tmp_path / "instance.log")
        maps = Path(f"/proc/{proc.pid}/maps").read_text()
    finally:
        stop(proc)
    assert "/uvloop/" not in maps
    assert "/cryptography/" not in maps  # loaded with the first token's key (verifier.py)
