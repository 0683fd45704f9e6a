"""What the control plane and an instance agree on for backups (standard library only).

The control plane calls the ``/internal/*`` routes with a short-lived JWT it signs for the
org's audience, like an org token, but whose subject is :data:`CONTROL_PLANE_SUBJECT` and whose
scope names the operation. No user can hold such a token: token exchange only grants the
``org:*`` scopes and a user's ``sub`` is their id.
"""

from __future__ import annotations

from typing import Final

CONTROL_PLANE_SUBJECT: Final = "orgplane:control-plane"
SCOPE_BACKUP: Final = "instance:backup"
SCOPE_RESTORE: Final = "instance:restore"
#: Every route under it takes the control plane's tokens only, and those tokens nothing else.
INTERNAL_PREFIX: Final = "/internal/"
BACKUP_PATH: Final = "/internal/backup"
RESTORE_PATH: Final = "/internal/restore"
#: Response header of ``POST /internal/backup``: the manifest's checksum.
CHECKSUM_HEADER: Final = "X-Orgplane-Backup-Checksum"
#: Environment variable bounding a restore upload (compressed and uncompressed), in bytes.
RESTORE_MAX_BYTES_ENV: Final = "ORGPLANE_RESTORE_MAX_BYTES"
DEFAULT_RESTORE_MAX_BYTES: Final = 16 * 1024**3
