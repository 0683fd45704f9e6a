#!/usr/bin/env bash
# Build Kubernetes v1.20.2 (kube-apiserver, kube-controller-manager, kube-scheduler, kubelet,
# kubectl) from Debian bookworm's own source package "kubernetes"
# (1.20.5+really1.20.2-1.1+deb12u1) with Debian's Go, plus the pause image the kubelet needs,
# into a cache outside the repository. Idempotent: does nothing when the cache is complete.
#
#   scripts/k8s/build.sh            (cache: $ORGPLANE_K8S_CACHE, default /var/cache/orgplane/k8s-1.20.2)
#
# Cache layout: bin/{kube-apiserver,kube-controller-manager,kube-scheduler,kubelet,kubectl},
# pause.tar (docker-archive of orgplane-k8s/pause:3.2, loaded into the kubelet's own engine by
# the test fixture), COMPLETE (stamp). Only Debian's apt repositories are used, through a
# private apt state, so the system's apt configuration is untouched. ~6 min on 2 cores.
#
# Adapted from the machine's checked recipe kubernetes/build-from-debian.sh and
# dockerd-for-kubelet.sh (pause image); Kubernetes itself and build/pause/linux/pause.c are
# Apache-2.0 (The Kubernetes Authors).
set -euo pipefail
CACHE=${ORGPLANE_K8S_CACHE:-/var/cache/orgplane/k8s-1.20.2}
PKG_VERSION=1.20.5+really1.20.2-1.1+deb12u1
PAUSE_TAG=orgplane-k8s/pause:3.2
WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler cmd/kubelet cmd/kubectl"

if [ -f "$CACHE/COMPLETE" ]; then
  echo "Kubernetes 1.20.2 cache complete: $CACHE"
  exit 0
fi
t0=$(date +%s)
mkdir -p "$CACHE"
WORK=$(mktemp -d "$CACHE/../k8s-build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
export DEBIAN_FRONTEND=noninteractive

# Go, make's helpers, a C compiler for pause, and reflect2 1.0.2: the vendored 1.0.1 crashes
# under Go >= 1.18 ("fatal error: fault" in map iteration, e.g. on the first custom-resource
# create), so it is replaced by Debian's.
need=()
for p in golang-go jq rsync golang-github-modern-go-reflect2-dev gcc libc6-dev; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  apt-get install -y -qq "${need[@]}" >/dev/null 2>&1 || { apt-get update -qq; apt-get install -y -qq "${need[@]}" >/dev/null; }
fi

# A private apt state holding only bookworm's Sources index.
A=$WORK/apt
mkdir -p "$A/lists/partial" "$A/cache/archives/partial"
MIRROR=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
MIRROR=${MIRROR:-http://deb.debian.org/debian}
echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR bookworm main" >"$A/sources.list"
cat >"$A/apt.conf" <<CONF
Dir::Etc::sourcelist "$A/sources.list";
Dir::Etc::sourceparts "-";
Dir::State::Lists "$A/lists";
Dir::Cache "$A/cache";
CONF
(
  export APT_CONFIG=$A/apt.conf
  apt-get update -qq
  cd "$WORK" && apt-get source --download-only -qq "kubernetes=$PKG_VERSION" 2>/dev/null
)
tar xzf "$WORK"/kubernetes_1.20.5+really1.20.2.orig.tar.gz -C "$WORK"
SRC=$WORK/kubernetes-1.20.2
rm -rf "$SRC/vendor/github.com/modern-go/reflect2"
mkdir -p "$SRC/vendor/github.com/modern-go/reflect2"
find /usr/share/gocode/src/github.com/modern-go/reflect2 -maxdepth 1 -type f \( -name '*.go' -o -name '*.s' \) \
  ! -name '*_test.go' -exec cp {} "$SRC/vendor/github.com/modern-go/reflect2/" \;
echo "source fetched and unpacked in $(($(date +%s) - t0)) s"

(
  cd "$SRC"
  export GOPATH=$SRC/.go CGO_ENABLED=0 HOME=$WORK/home KUBE_BUILD_PLATFORMS=linux/amd64
  mkdir -p "$GOPATH/src/k8s.io" "$HOME"
  ln -sfn ../../.. "$GOPATH/src/k8s.io/kubernetes"
  make WHAT="$WHAT" GOFLAGS=-mod=vendor >"$WORK/make.log" 2>&1 || { tail -30 "$WORK/make.log"; exit 1; }
)
mkdir -p "$CACHE/bin"
for w in $WHAT; do install -m 0755 "$SRC/_output/bin/$(basename "$w")" "$CACHE/bin/"; done

# The pause image: pause.c from the same tree, static, in a scratch image saved as a tarball.
# It is built on whichever engine `docker` reaches (building changes nothing there) and removed.
P=$WORK/pause
mkdir -p "$P"
gcc -Os -static -o "$P/pause" "$SRC/build/pause/linux/pause.c"
printf 'FROM scratch\nCOPY pause /pause\nENTRYPOINT ["/pause"]\n' >"$P/Dockerfile"
docker build -q -t "$PAUSE_TAG" "$P" >/dev/null
docker save -o "$CACHE/pause.tar" "$PAUSE_TAG"
docker rmi "$PAUSE_TAG" >/dev/null || true

"$CACHE/bin/kube-apiserver" --version >"$CACHE/COMPLETE"
echo "built $(cat "$CACHE/COMPLETE") in $(($(date +%s) - t0)) s -> $CACHE"
