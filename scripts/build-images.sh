#!/usr/bin/env bash
# Build the project's images from wheels made on this host, without pulling anything:
#   orgplane-instance:dev      (and :latest)  one org's server, `python -m org_instance`
#   orgplane-control-plane:dev (and :latest)  the control plane, `orgplane serve`
#
# Idempotent and quick on reruns: the base image, the base root filesystem (cached under
# $ORGPLANE_CACHE) and the dependency wheels (cached under a key of the dependency list, the pins
# and the interpreter) are made once; Docker's layer cache does the rest. Real users build
# FROM python:3.12-slim (see deploy/Dockerfile.*); no registry can be reached here, so the base
# is a Debian bookworm root filesystem made by debootstrap, imported as orgplane-base:bookworm.
#
# Environment: BASE_IMAGE (default orgplane-base:bookworm); PYTHON, the interpreter that builds
# the wheels, whose version must match the base image's python3 (3.11 for bookworm); TAG
# (default dev); ORGPLANE_CACHE (default /var/cache/orgplane).
set -euo pipefail
cd "$(dirname "$0")/.."

BASE_IMAGE=${BASE_IMAGE:-orgplane-base:bookworm}
PYTHON=${PYTHON:-.venv/bin/python}
UV=${UV:-$(dirname "$PYTHON")/uv}
TAG=${TAG:-dev}
CACHE=${ORGPLANE_CACHE:-/var/cache/orgplane}
ROOTFS_TAR="$CACHE/bookworm-python3-rootfs.tar"
CONTEXT=dist/image-context

# Packages only the control plane needs. The instance image leaves them (and what they alone pull
# in) out, to stay small and start fast; the Docker tests start that image, so a package that
# org_instance comes to import but is listed here fails them loudly.
CONTROL_PLANE_ONLY=(docker kubernetes asyncpg alembic sqlmodel dnspython tenacity pyyaml)

log() { printf '==> %s\n' "$*"; }

build_base_image() {
  if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    return
  fi
  if [ "$BASE_IMAGE" != "orgplane-base:bookworm" ]; then
    echo "base image $BASE_IMAGE is missing; pull or build it first" >&2
    exit 1
  fi
  if [ ! -s "$ROOTFS_TAR" ]; then
    log "debootstrapping a Debian bookworm root filesystem with python3 (about a minute)"
    command -v debootstrap >/dev/null || {
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap
    }
    local mirror rootfs
    mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null ||
      true)
    rootfs=$(mktemp -d)
    mkdir -p "$CACHE"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
      bookworm "$rootfs" "${mirror:-http://deb.debian.org/debian}" >"$CACHE/debootstrap.log" 2>&1
    # Package caches, indexes and documentation are half the tree and of no use in an image.
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
      "$rootfs"/usr/share/doc "$rootfs"/usr/share/man "$rootfs"/usr/share/info \
      "$rootfs"/usr/share/locale
    tar -C "$rootfs" -cf "$ROOTFS_TAR.tmp" . && mv "$ROOTFS_TAR.tmp" "$ROOTFS_TAR"
    rm -rf "$rootfs"
  fi
  log "importing $ROOTFS_TAR as $BASE_IMAGE"
  docker import --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' \
    "$ROOTFS_TAR" "$BASE_IMAGE" >/dev/null
}

write_requirements() {
  # The instance's requirements are the project's minus CONTROL_PLANE_ONLY.
  "$PYTHON" - "$1" "${CONTROL_PLANE_ONLY[@]}" <<'PY'
import re
import sys
import tomllib
from pathlib import Path

out, excluded = Path(sys.argv[1]), {name.lower() for name in sys.argv[2:]}
deps = tomllib.loads(Path("pyproject.toml").read_text())["project"]["dependencies"]


def name(dep: str) -> str:
    return re.split(r"[\[<>=!~; ]", dep, maxsplit=1)[0].lower().replace("_", "-")


(out / "control-plane.txt").write_text("\n".join(deps) + "\n")
(out / "instance.txt").write_text("\n".join(d for d in deps if name(d) not in excluded) + "\n")
PY
}

build_wheels() {
  # Environment markers are evaluated for the base image's Python, not the host's: bookworm's
  # 3.11.2 needs async-timeout (python_full_version < "3.11.3"), a newer host 3.11 would not.
  local target host key deps
  target=$(docker run --rm --network none "$BASE_IMAGE" python3 -c \
    'import platform; print(platform.python_version())')
  host=$("$PYTHON" -c 'import platform; print(platform.python_version())')
  if [ "${target%.*}" != "${host%.*}" ]; then
    echo "wheels built by Python $host cannot serve the base image's Python $target;" \
      "set PYTHON to a python${target%.*}" >&2
    exit 1
  fi
  log "building wheels with Python $host for the base image's Python $target"
  rm -rf "$CONTEXT"
  mkdir -p "$CONTEXT/wheels/project"
  "$PYTHON" -m pip wheel -q --no-deps . -w "$CONTEXT/wheels/project"
  key=$(cat pyproject.toml constraints.txt <(echo "$target ${CONTROL_PLANE_ONLY[*]}") |
    sha256sum | cut -c1-16)
  deps="$CACHE/wheels/$key"
  if [ ! -e "$deps/.complete" ]; then
    log "building dependency wheels into $deps"
    rm -rf "$deps" && mkdir -p "$deps"
    write_requirements "$deps"
    for image in control-plane instance; do
      "$UV" pip compile -q --python-version "$target" --python-platform x86_64-unknown-linux-gnu \
        -c constraints.txt "$deps/$image.txt" -o "$deps/$image.lock"
      "$PYTHON" -m pip wheel -q --no-deps -r "$deps/$image.lock" -w "$deps/$image"
    done
    touch "$deps/.complete"
  fi
  cp -r "$deps/control-plane" "$deps/instance" "$CONTEXT/wheels/"
}

build_image() {
  local name=$1 dockerfile=$2
  log "building $name:$TAG"
  docker build -q -f "$dockerfile" --build-arg BASE_IMAGE="$BASE_IMAGE" \
    --label "org.opencontainers.image.revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
    -t "$name:$TAG" -t "$name:latest" "$CONTEXT" >/dev/null
}

build_base_image
build_wheels
build_image orgplane-instance deploy/Dockerfile.instance
build_image orgplane-control-plane deploy/Dockerfile.control-plane
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' |
  grep -E '^orgplane-(instance|control-plane):' || true
