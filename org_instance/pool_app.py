"""The ASGI app of a spare in pool mode: health until assigned, then the org's own app.

A spare answers ``/healthz`` and ``/readyz`` (it is ready *to be assigned*, so backends that
gate traffic on readiness let the control plane reach it) and ``POST /pool/assign``. Everything
else is 503 ``not_assigned``. The assignment is checked (Bearer pool secret compared in
constant time: 401 ``invalid_pool_secret``; a valid org configuration: 400
``invalid_assignment``; the org id chosen for this spare: 400 ``org_mismatch``; only once:
409 ``already_assigned``), written to the data directory, and the org's app is built and its
lifespan started (database, JWKS prefetch, first heartbeat at once) before the answer. From then
on every request goes to the org's app. Bad input changes nothing.

This is plain ASGI on purpose: the spare has already imported everything the org's app needs
(:func:`org_instance.server.main` does it before binding), and waiting costs nothing else.
"""

from __future__ import annotations

import asyncio
import hmac
import importlib
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import structlog

from org_instance.config import ConfigError, InstanceConfig
from org_instance.pool import (
    PoolConfig,
    assigned_env,
    org_part,
    remove_assignment,
    write_assignment,
)
from org_instance.verifier import FIRST_TOKEN_MODULES
from orgplane_wire import contract
from orgplane_wire.problems import PROBLEM_JSON, problem_body
from orgplane_wire.secret_box import FIRST_USE_MODULES

log = structlog.get_logger("orgplane.instance")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_ASSIGNMENT_BYTES = 65_536
STARTUP_TIMEOUT = 30.0


class AssignmentRefused(Exception):
    """An assignment the spare does not take; nothing was changed."""

    def __init__(self, status: int, code: str, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.title, self.detail = status, code, title, detail


class Lifespan:
    """Drives an ASGI app's lifespan protocol by hand (the server already ran ours)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._outbox: asyncio.Queue[Message] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def _exchange(self, message: Message, *, expect: str, within: float) -> None:
        assert self._task is not None
        await self._inbox.put(message)
        answer = asyncio.ensure_future(self._outbox.get())
        done, _ = await asyncio.wait(
            {answer, self._task}, timeout=within, return_when=asyncio.FIRST_COMPLETED
        )
        if answer not in done:
            answer.cancel()
            raise RuntimeError(f"the app did not complete {message['type']}")
        reply = answer.result()
        if reply["type"] != expect:
            raise RuntimeError(str(reply.get("message") or reply["type"]))

    async def startup(self, *, within: float = STARTUP_TIMEOUT) -> None:
        """Run the app's startup; raises when it fails."""
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
        self._task = asyncio.ensure_future(self.app(scope, self._inbox.get, self._outbox.put))
        await self._exchange(
            {"type": "lifespan.startup"}, expect="lifespan.startup.complete", within=within
        )

    async def shutdown(self, *, within: float = 10.0) -> None:
        """Run the app's shutdown (errors are logged: the process is stopping anyway)."""
        if self._task is None or self._task.done():
            return
        try:
            await self._exchange(
                {"type": "lifespan.shutdown"}, expect="lifespan.shutdown.complete", within=within
            )
        except Exception:
            log.exception("shutdown of the org app failed")


async def _respond(send: Send, status: int, body: bytes, media_type: str, **headers: str) -> None:
    raw = [(b"content-type", media_type.encode()), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def _problem(send: Send, path: str, refused: AssignmentRefused, **headers: str) -> None:
    body = problem_body(
        status=refused.status,
        code=refused.code,
        title=refused.title,
        detail=refused.detail,
        instance=path,
    )
    await _respond(send, refused.status, body, PROBLEM_JSON, **headers)


async def _read_body(receive: Receive) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_ASSIGNMENT_BYTES:
            raise AssignmentRefused(
                413, "body_too_large", "Request body too large", "The assignment is too large."
            )
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _bearer(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else ""
    return ""


def warm_up(build: Callable[[InstanceConfig], Any], config: PoolConfig) -> None:
    """Build an org app once and throw it away: the first build in a process pays for lazy
    imports and one-off set-up (seconds on a busy host), later ones a fraction. Nothing is
    opened or contacted: the database, Redis and the JWKS are only reached by the lifespan.

    A spare also loads what an org's first token and first secret setting need (PyJWT and
    cryptography, which a cold start leaves out): a claimed spare is used at once."""
    for module in (*FIRST_TOKEN_MODULES, *FIRST_USE_MODULES):
        importlib.import_module(module)
    build(
        InstanceConfig(
            org_id=config.org_id or "warm-up",
            instance_credential="0" * 32,
            data_dir=config.data_dir / "warm-up-never-created",
            jwks_url="http://127.0.0.1/warm-up",
            issuer="http://127.0.0.1/warm-up",
        )
    )


class PoolApp:
    """A spare's ASGI app; ``build`` makes the org's app from its configuration."""

    def __init__(
        self, *, config: PoolConfig, env: dict[str, str], build: Callable[[InstanceConfig], Any]
    ) -> None:
        self.config, self.env, self.build = config, env, build
        self.org_app: ASGIApp | None = None
        self._lifespan: Lifespan | None = None
        self._lock = asyncio.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assigning = scope["type"] == "http" and scope["path"] == contract.POOL_ASSIGN_PATH
        if scope["type"] == "lifespan":
            await self._serve_lifespan(receive, send)
        elif self.org_app is not None and not assigning:
            await self.org_app(scope, receive, send)
        elif scope["type"] != "http":
            await send({"type": "websocket.close", "code": 1013})
        elif scope["path"] in ("/healthz", "/readyz") and scope["method"] in ("GET", "HEAD"):
            body = json.dumps({"status": "ok", "pool": "waiting"}).encode()
            await _respond(send, 200, body, "application/json")
        elif assigning and scope["method"] == "POST":
            try:
                org_id = await self._assign(scope, receive)
            except AssignmentRefused as refused:
                extra = {"www-authenticate": "Bearer"} if refused.status == 401 else {}
                await _problem(send, scope["path"], refused, **extra)
                return
            await _respond(
                send,
                200,
                json.dumps({"assigned": True, "org_id": org_id}).encode(),
                "application/json",
            )
        else:
            await _problem(
                send,
                scope["path"],
                AssignmentRefused(
                    503,
                    "not_assigned",
                    "Service unavailable",
                    "This instance is a spare waiting for its org.",
                ),
            )

    async def _serve_lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._lifespan is not None:
                    await self._lifespan.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _checked(self, raw: bytes) -> tuple[dict[str, str], InstanceConfig]:
        def invalid(detail: str) -> AssignmentRefused:
            return AssignmentRefused(400, "invalid_assignment", "Invalid assignment", detail)

        try:
            body: Any = json.loads(raw)
        except ValueError:
            raise invalid("The body is not JSON.") from None
        if not isinstance(body, dict) or not isinstance(body.get("env"), dict):
            raise invalid("The body must be an object with an 'env' object.")
        try:
            org_env = org_part(body["env"])
            config = InstanceConfig.from_env(assigned_env(self.env, org_env))
        except ConfigError as exc:
            raise invalid(str(exc)) from None
        if self.config.org_id and config.org_id != self.config.org_id:
            raise AssignmentRefused(
                400,
                "org_mismatch",
                "Invalid assignment",
                "This spare was started for another org id.",
            )
        return org_env, config

    async def _assign(self, scope: Scope, receive: Receive) -> str:
        given = _bearer(scope).encode()
        if not hmac.compare_digest(given, self.config.secret.encode()):
            raise AssignmentRefused(
                401,
                "invalid_pool_secret",
                "Authentication required",
                "The pool secret is not valid.",
            )
        org_env, config = self._checked(await _read_body(receive))
        if self._lock.locked() or self.org_app is not None:
            raise AssignmentRefused(
                409, "already_assigned", "Conflict", "This spare is already assigned."
            )
        async with self._lock:
            write_assignment(self.config.data_dir, org_env)
            app = self.build(config)
            lifespan = Lifespan(app)
            try:
                await lifespan.startup()
            except Exception as exc:
                remove_assignment(self.config.data_dir)
                log.exception("the org app did not start")
                raise AssignmentRefused(
                    503, "assignment_failed", "Service unavailable", "The org's app did not start."
                ) from exc
            self._lifespan, self.org_app = lifespan, app
        log.info("spare assigned", org_id=config.org_id, instance_id=config.instance_id)
        return config.org_id
