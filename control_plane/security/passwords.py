"""Password hashing with scrypt (``cryptography``), checked in constant time.

Stored form: ``scrypt$n$r$p$salt_b64$hash_b64``, so parameters can be raised later and old
hashes still verify.
"""

from __future__ import annotations

import base64
import functools
import hmac
import os

from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

_LEN = 32
#: scrypt's cost (N, r, p) for new hashes: N=2**14, r=8 takes 16 MiB and ~30-50 ms per hash.
#: The test suite lowers it (tests/conftest.py), as Django's tests swap in a fast hasher;
#: stored hashes carry their own parameters, so verifying never reads this.
COST = (2**14, 8, 1)
MIN_LENGTH = 10
MAX_LENGTH = 1024


def _derive(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=_LEN, n=n, r=r, p=p).derive(password.encode())


def hash_password(password: str) -> str:
    """A salted scrypt hash of ``password``."""
    salt = os.urandom(16)
    n, r, p = COST
    digest = _derive(password, salt, n, r, p)
    b64 = base64.b64encode
    return f"scrypt${n}${r}${p}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` matches ``stored``; constant time in the comparison."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        candidate = _derive(password, base64.b64decode(salt), int(n), int(r), int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(candidate, base64.b64decode(digest))


@functools.cache
def dummy_hash() -> str:
    """A hash of a random password: verified against when the email is unknown, so an unknown
    email costs the same time as a wrong password. Made on first use, not at import: one scrypt
    hash is ~0.1 s of CPU that every process start (the CLI's included) would otherwise pay."""
    return hash_password(base64.b64encode(os.urandom(18)).decode())


def password_problem(password: str) -> str | None:
    """Why ``password`` is not acceptable, or None."""
    if len(password) < MIN_LENGTH:
        return f"Passwords need at least {MIN_LENGTH} characters."
    if len(password) > MAX_LENGTH:
        return f"Passwords have at most {MAX_LENGTH} characters."
    return None
