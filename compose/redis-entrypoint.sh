#!/bin/sh
# Start Redis with ACLs on (compose.yaml runs it as the `redis` user).
#
# - The default user is disabled: every client authenticates.
# - `orgplane`, the control plane's admin user, gets its password from REDIS_ADMIN_PASSWORD on
#   every start (stored as a SHA-256 digest, never in clear), so rotating it is a restart.
# - The per-org users the control plane creates (ACL SETUSER, then ACL SAVE) live in the same ACL
#   file on the data volume and survive restarts; this script keeps every line but those two.
#
# Extra arguments go to redis-server.
set -eu

: "${REDIS_ADMIN_PASSWORD:?REDIS_ADMIN_PASSWORD is required}"
acl_file="${REDIS_ACL_FILE:-/data/users.acl}"

umask 077
touch "$acl_file"
digest=$(printf '%s' "$REDIS_ADMIN_PASSWORD" | sha256sum | cut -d ' ' -f 1)
{
    echo "user default off resetpass resetkeys resetchannels -@all"
    # Everything the control plane does (its keys, ACL SETUSER/DELUSER/SAVE for org users), minus
    # commands it never needs that would wipe or stop the server.
    echo "user orgplane on #$digest ~* &* +@all -flushall -flushdb -debug -shutdown -module -monitor -replicaof -slaveof -failover"
    grep -v -e '^user default ' -e '^user orgplane ' "$acl_file" || true
} > "$acl_file.next"
mv "$acl_file.next" "$acl_file"

exec redis-server --aclfile "$acl_file" "$@"
