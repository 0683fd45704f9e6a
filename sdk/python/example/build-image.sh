#!/usr/bin/env bash
# Build the example org instance image orgplane-example-python:$TAG (default dev) offline, the
# way scripts/build-images.sh builds orgplane's: FROM the local base image, with wheels made on
# this host (the dependencies locked once per input and cached under $ORGPLANE_CACHE/wheels).
#
#   sdk/python/example/build-image.sh
#
# Idempotent: when the image already holds exactly these inputs (a digest label of the SDK,
# the app, the Dockerfile and the lock) a rerun costs one `docker image inspect`.
# Environment: BASE_IMAGE (default orgplane-base:bookworm, made by scripts/build-images.sh),
# PYTHON (its minor version must match the base image's python3), TAG, ORGPLANE_CACHE.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
cd "$REPO"

BASE_IMAGE=${BASE_IMAGE:-orgplane-base:bookworm}
PYTHON=${PYTHON:-.venv/bin/python}
UV=${UV:-$(dirname "$PYTHON")/uv}
TAG=${TAG:-dev}
IMAGE=orgplane-example-python:$TAG
CACHE=${ORGPLANE_CACHE:-/var/cache/orgplane}
SDK=sdk/python

log() { printf '==> %s\n' "$*"; }

# One build at a time on this machine (test workers may all ask at once): the rest wait, then
# find the image built.
mkdir -p "$CACHE"
exec 9>"$CACHE/example-python.lock"
flock 9

if ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  if [ "$BASE_IMAGE" = "orgplane-base:bookworm" ]; then
    bash scripts/build-images.sh none # makes only the base image
  else
    echo "base image $BASE_IMAGE is missing" >&2
    exit 1
  fi
fi
# Everything the image is made of; a rerun with the same inputs stops here.
base_id=$(docker image inspect -f '{{.Id}}' "$BASE_IMAGE")
digest=$(cat "$HERE/requirements.in" constraints.txt "$HERE/app.py" "$HERE/Dockerfile" \
  "$SDK/pyproject.toml" $(find "$SDK/src" -type f \( -name '*.py' -o -name py.typed \) | sort) \
  <(echo "$base_id") | sha256sum | cut -c1-16)
have=$(docker image inspect -f '{{index .Config.Labels "org.orgplane.content-digest"}}' \
  "$IMAGE" 2>/dev/null || true)
if [ "$have" = "$digest" ]; then
  exit 0
fi

target=$(docker run --rm --network none "$BASE_IMAGE" python3 -c \
  'import platform; print(platform.python_version())')
host=$("$PYTHON" -c 'import platform; print(platform.python_version())')
if [ "${target%.*}" != "${host%.*}" ]; then
  echo "wheels built by Python $host cannot serve the base image's Python $target" >&2
  exit 1
fi

# Dependency wheels: locked for the base image's Python, built once per input.
key=$(cat "$SDK/pyproject.toml" "$HERE/requirements.in" constraints.txt <(echo "$target") |
  sha256sum | cut -c1-16)
deps="$CACHE/wheels/example-python-$key"
if [ ! -e "$deps/.complete" ]; then
  log "building the example's dependency wheels into $deps"
  rm -rf "$deps" && mkdir -p "$deps/wheels"
  "$UV" pip compile -q --python-version "$target" --python-platform x86_64-unknown-linux-gnu \
    -c constraints.txt "$SDK/pyproject.toml" "$HERE/requirements.in" -o "$deps/requirements.lock"
  "$PYTHON" -m pip wheel -q --no-deps -r "$deps/requirements.lock" -w "$deps/wheels"
  touch "$deps/.complete"
fi

mkdir -p dist
context=$(mktemp -d dist/example-python-context.XXXXXX)
trap 'rm -rf "$context"' EXIT
mkdir -p "$context/wheels/sdk"
cp -r "$deps/wheels" "$context/wheels/deps"
"$UV" build -q --wheel --out-dir "$context/wheels/sdk" "$SDK"
cp "$HERE/app.py" "$HERE/Dockerfile" "$context/"
log "building $IMAGE"
docker build -q --build-arg BASE_IMAGE="$BASE_IMAGE" \
  --label "org.orgplane.content-digest=$digest" -t "$IMAGE" "$context" >/dev/null
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' "$IMAGE"
