#!/usr/bin/env bash
# Build orgplane-example-js:$TAG (default dev) from this directory, without a registry:
#   FROM the local base image (scripts/build-images.sh imports orgplane-base:bookworm), with this
#   host's node binary (it links glibc, libstdc++ and libgcc_s, which the base image has) and the
#   example's node_modules installed here by `npm ci --omit=dev --install-links` (the SDK is
#   packed from .. and copied, not symlinked).
# Idempotent: the context is rebuilt each run, Docker's layer cache keeps unchanged layers, so a
# rerun with nothing changed costs the npm ci (from npm's cache) and a cached `docker build`.
#
#   sdk/js/example/build-image.sh            (environment: BASE_IMAGE, TAG, NODE)
set -euo pipefail
cd "$(dirname "$0")"

BASE_IMAGE=${BASE_IMAGE:-orgplane-base:bookworm}
TAG=${TAG:-dev}
NODE=$(readlink -f "${NODE:-$(command -v node)}")
CONTEXT=.build

docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 || {
  echo "base image $BASE_IMAGE is missing: run scripts/build-images.sh first" >&2
  exit 1
}
npm ci --omit=dev --install-links --no-audit --no-fund --loglevel=error >/dev/null
rm -rf "$CONTEXT" && mkdir -p "$CONTEXT"
cp "$NODE" "$CONTEXT/node"
cp -r node_modules package.json server.js Dockerfile "$CONTEXT/"
docker build -q --build-arg BASE_IMAGE="$BASE_IMAGE" -t "orgplane-example-js:$TAG" "$CONTEXT" >/dev/null
rm -rf "$CONTEXT"
echo "orgplane-example-js:$TAG"
