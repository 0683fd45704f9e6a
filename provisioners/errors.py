"""Errors a provisioner raises. One root; the reconciler branches on the two kinds below it.

    ProvisionerError                      root: something a backend could not do
    ├── RetryableProvisionerError         may succeed later unchanged: the engine or cluster is
    │                                     unreachable, times out, is overloaded, or a concurrent
    │                                     change raced this one. Retry with backoff.
    └── PermanentProvisionerError         will fail again until someone changes something: bad
        │                                 options, a missing image or CRD, a name taken by an
        │                                 object that is not ours, a refused request.
        ├── UnknownProvisionerError       no backend of that name is installed
        └── UnsupportedOperationError     this backend does not offer that optional operation

Like kopf's ``TemporaryError`` / ``PermanentError``. Messages are shown to operators and stored
as an instance's ``last_error``: they name objects and reasons, never secrets (no environment
values, no credentials, no raw API bodies of Secrets).
"""

from __future__ import annotations


class ProvisionerError(Exception):
    """Root of every error a provisioner raises on purpose."""


class RetryableProvisionerError(ProvisionerError):
    """A transient failure: the same call may succeed later."""


class PermanentProvisionerError(ProvisionerError):
    """A failure that retrying will not fix; the message says what to change."""


class UnknownProvisionerError(PermanentProvisionerError, LookupError):
    """No provisioner of the requested name is installed."""


class UnsupportedOperationError(PermanentProvisionerError):
    """The backend does not implement an optional operation (``restart``, ``stop``)."""
