"""Per-org Redis ACL users: each org instance can touch only ``org:{org_id}:*``.

The control plane holds the admin connection; an instance receives a URL for its own user
``org-<org_id>``, whose keys are ``~org:<id>:*`` and channels ``&org:<id>:*``, with every
command that could list, scan, flush, reconfigure or watch the whole server denied (see
:data:`DENIED`). Passwords are not stored: each ensure or rotate sets a new one and returns it
inside the URL, once.

Rotation replaces the password; connections already authenticated with the old one stay open
until they close (Redis does not re-check them), so restart the instance after rotating.
Deleting the user also disconnects its clients.

Redis keeps ACL users in memory; they survive a restart only when it runs with an ``aclfile``,
and then only after ``ACL SAVE``. Every change here saves when the server has an aclfile, and
the reconciler's housekeeping (:func:`missing_org_users` + :func:`restore_org_redis_user`) puts
back, with the password the instance already holds, any user a restart without one lost.
"""

from __future__ import annotations

import re
import secrets
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from redis.asyncio import Redis
from redis.asyncio.connection import SSLConnection
from redis.exceptions import ResponseError

from orgplane_wire.contract import redis_namespace

#: Commands and categories the org's user may not run, beyond ``-@dangerous -@admin``.
DENIED: tuple[str, ...] = (
    "-@dangerous",
    "-@admin",
    "-keys",
    "-scan",
    "-randomkey",
    "-flushall",
    "-flushdb",
    "-config",
    "-monitor",
    "-client",
    "-debug",
    "-swapdb",
    "-move",
    "-migrate",
    "-object",
    "-memory",
    "-dbsize",
    "-info",
    "-pubsub",
    "-function",
    "-fcall",
    "-fcall_ro",
    "-script|flush",
    "-script|kill",
    "-script|debug",
    "-acl",
    "+acl|whoami",
)
_ORG_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class RedisAclError(Exception):
    """The ACL user cannot be created, rotated or deleted as asked."""


def username_for(org_id: str) -> str:
    """The Redis user of an org's instance."""
    return f"org-{_checked(org_id)}"


def _checked(org_id: str) -> str:
    # The id becomes part of key and channel patterns: a '*' or '?' would widen them.
    if not _ORG_ID.match(org_id):
        raise RedisAclError("org id must be 1-64 letters, digits, '-' or '_'")
    return org_id


def _rules(org_id: str, password: str) -> list[str]:
    prefix = redis_namespace(_checked(org_id))
    return [
        "reset",
        "on",
        f">{password}",
        f"~{prefix}:*",
        f"&{prefix}:*",
        "+@all",
        *DENIED,
    ]


async def _acl(redis_admin: Redis, *args: str) -> Any:
    # ACL rules as Redis spells them (redis-py's acl_setuser cannot say ``-script|flush``).
    return await redis_admin.execute_command("ACL", *args)  # type: ignore[no-untyped-call]


def _url_for(redis_admin: Redis, *, user: str, password: str, host: str | None) -> str:
    pool = redis_admin.connection_pool
    kwargs = pool.connection_kwargs
    scheme = "rediss" if issubclass(pool.connection_class, SSLConnection) else "redis"
    where = str(host or kwargs.get("host", "127.0.0.1"))
    if ":" in where and not where.startswith("["):
        where = f"[{where}]"
    port = kwargs.get("port", 6379)
    db = kwargs.get("db", 0)
    return f"{scheme}://{quote(user, safe='')}:{quote(password, safe='')}@{where}:{port}/{db}"


async def ensure_org_redis_user(redis_admin: Redis, *, org_id: str, host: str | None = None) -> str:
    """Create or reset the org's ACL user with a new password; returns its Redis URL.

    ``host`` replaces the admin connection's host in the URL when instances reach Redis by
    another name (a compose service, a Kubernetes Service).
    """
    user, password = username_for(org_id), secrets.token_urlsafe(32)
    await _acl(redis_admin, "SETUSER", user, *_rules(org_id, password))
    await save_acl(redis_admin)
    return _url_for(redis_admin, user=user, password=password, host=host)


async def restore_org_redis_user(redis_admin: Redis, *, org_id: str, url: str) -> None:
    """Recreate the org's user with the password inside ``url`` (the one its instance holds).

    Idempotent: the rules are reset to exactly what :func:`ensure_org_redis_user` sets.
    """
    parts = urlsplit(url)
    if unquote(parts.username or "") != username_for(org_id) or not parts.password:
        raise RedisAclError(f"the stored Redis URL is not org {org_id}'s")
    await _acl(
        redis_admin, "SETUSER", username_for(org_id), *_rules(org_id, unquote(parts.password))
    )
    await save_acl(redis_admin)


async def missing_org_users(redis_admin: Redis, org_ids: list[str]) -> list[str]:
    """Which of ``org_ids`` have no ACL user on the server (one ``ACL USERS`` call)."""
    present = {
        name.decode() if isinstance(name, bytes) else str(name)
        for name in await _acl(redis_admin, "USERS")
    }
    return [org_id for org_id in org_ids if username_for(org_id) not in present]


async def save_acl(redis_admin: Redis) -> bool:
    """``ACL SAVE`` when the server has an aclfile; False (and nothing to do) when it has none."""
    try:
        await _acl(redis_admin, "SAVE")
    except ResponseError as exc:
        if "acl file" in str(exc).lower():
            return False
        raise
    return True


async def rotate_org_redis_user(redis_admin: Redis, *, org_id: str, host: str | None = None) -> str:
    """Replace an existing org user's password; returns the new URL (RedisAclError if absent)."""
    user = username_for(org_id)
    if await _acl(redis_admin, "GETUSER", user) is None:
        raise RedisAclError(f"no Redis user for org {org_id}")
    password = secrets.token_urlsafe(32)
    await _acl(redis_admin, "SETUSER", user, "resetpass", f">{password}")
    await save_acl(redis_admin)
    return _url_for(redis_admin, user=user, password=password, host=host)


async def delete_org_redis_user(redis_admin: Redis, *, org_id: str) -> bool:
    """Delete the org's user and disconnect its clients; True if it existed (idempotent)."""
    deleted = await _acl(redis_admin, "DELUSER", username_for(org_id))
    if deleted:
        await save_acl(redis_admin)
    return bool(deleted)


#: Why the control plane will not run per-org users on this server (start-up and ``/readyz``).
OPEN_DEFAULT_USER = (
    "Redis's `default` user is enabled without a password: any client that reaches Redis, an "
    "org instance included, can read and write every org's namespace. Disable it "
    "(`ACL SETUSER default off`) or give it a password, and keep that in the server's aclfile."
)


async def default_user_open(redis_admin: Redis) -> bool:
    """Whether Redis's ``default`` user is enabled without a password (``ACL GETUSER``).

    Per-org users confine nothing while it is: a connection that authenticates as nobody is
    ``default``. A server without ACLs (Redis before 6) counts as open.
    """
    try:
        user = await redis_admin.acl_getuser("default")
    except ResponseError:
        return True
    if not user:
        return False
    raw_flags: Any = user.get("flags") or ()
    flags = {str(flag) for flag in raw_flags}
    return "on" in flags and ("nopass" in flags or not user.get("passwords"))
