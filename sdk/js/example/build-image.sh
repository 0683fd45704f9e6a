#!/usr/bin/env bash
# Build orgplane-example-js:$TAG (default dev) from this directory, without a registry:
#   FROM the local base image (scripts/build-images.sh imports orgplane-base:bookworm), with this
#   host's node binary (it links glibc, libstdc++ and libgcc_s, which the base image has) and the
#   example's node_modules installed here by `npm ci --omit=dev --install-links` (the SDK is
#   packed from .. and copied, not symlinked).
# Idempotent and quick on reruns: the image carries a digest of everything it is made of (the
# node binary, the lockfiles, the SDK's sources, the example) as a label; when it matches, the
# build is skipped (one `docker image inspect`). Otherwise Docker's layer cache keeps the
# unchanged layers (the node binary and node_modules come before the code).
#
#   sdk/js/example/build-image.sh            (environment: BASE_IMAGE, TAG, NODE)
set -euo pipefail
cd "$(dirname "$0")"

BASE_IMAGE=${BASE_IMAGE:-orgplane-base:bookworm}
TAG=${TAG:-dev}
IMAGE=orgplane-example-js:$TAG
NODE=$(readlink -f "${NODE:-$(command -v node)}")
CONTEXT=.build
DIGEST_LABEL=org.orgplane.content-digest

docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 || {
  echo "base image $BASE_IMAGE is missing: run scripts/build-images.sh first" >&2
  exit 1
}
digest=$(
  {
    docker image inspect -f '{{.Id}}' "$BASE_IMAGE"
    sha256sum "$NODE" Dockerfile package.json package-lock.json server.js ../package.json \
      ../package-lock.json | cut -d' ' -f1
    find ../src -type f -name '*.js' -print0 | sort -z | xargs -0 sha256sum
  } | sha256sum | cut -c1-16
)
have=$(docker image inspect -f "{{index .Config.Labels \"$DIGEST_LABEL\"}}" "$IMAGE" 2>/dev/null ||
  true)
if [ "$have" = "$digest" ]; then
  echo "$IMAGE (up to date)"
  exit 0
fi
npm ci --omit=dev --install-links --no-audit --no-fund --loglevel=error >/dev/null
rm -rf "$CONTEXT" && mkdir -p "$CONTEXT"
trap 'rm -rf "$CONTEXT"' EXIT
cp "$NODE" "$CONTEXT/node"
cp -r node_modules package.json server.js Dockerfile "$CONTEXT/"
docker build -q --build-arg BASE_IMAGE="$BASE_IMAGE" --label "$DIGEST_LABEL=$digest" \
  -t "$IMAGE" "$CONTEXT" >/dev/null
echo "$IMAGE"
