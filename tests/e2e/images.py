"""The images an end-to-end run uses, and how Redis runs without an image of its own.

``orgplane-control-plane:dev`` and ``orgplane-instance:dev`` come from
``scripts/build-images.sh``, which also imports the base image ``orgplane-base:bookworm`` (a
debootstrapped Debian bookworm). No Redis image can be pulled here, and the host is Debian
bookworm too: Redis runs in a container of the base image with the host's ``redis-server`` and
the libraries it links (those the base image lacks, and a few it has) bind-mounted read-only.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import docker

from tests.support.services import REPO

BASE_IMAGE = "orgplane-base:bookworm"
#: Another tag of the control plane (``ORGPLANE_TEST_CONTROL_PLANE_IMAGE``): one built from a
#: branch, say, while the machine's ``:dev`` serves other checkouts.
CONTROL_PLANE_IMAGE = os.environ.get(
    "ORGPLANE_TEST_CONTROL_PLANE_IMAGE", "orgplane-control-plane:dev"
)
INSTANCE_IMAGE = "orgplane-instance:dev"
#: glibc itself stays the image's: the loader must match the libc it loads.
_GLIBC = re.compile(r"^(linux-vdso|ld-linux|libc\.|libm\.|libpthread\.|libdl\.|librt\.)")


def redis_server_mounts() -> tuple[dict[str, dict[str, str]], str]:
    """Bind mounts that run the host's ``redis-server`` in the base image, and the library
    directory to put on ``LD_LIBRARY_PATH``; raises ``FileNotFoundError`` without one."""
    found = shutil.which("redis-server")
    if found is None:
        raise FileNotFoundError("redis-server")
    binary = os.path.realpath(found)  # Debian links it to redis-check-rdb; argv[0] picks the mode
    lib_dir = "/opt/redis-lib"
    mounts = {
        binary: {"bind": "/usr/local/bin/redis-server", "mode": "ro"},
        str(REPO / "compose" / "redis-entrypoint.sh"): {
            "bind": "/usr/local/bin/redis-entrypoint.sh",
            "mode": "ro",
        },
    }
    linked = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    for line in linked.splitlines():
        match = re.match(r"\s*(\S+) => (/\S+)", line)
        if match and not _GLIBC.match(match.group(1)):
            mounts[os.path.realpath(match.group(2))] = {
                "bind": f"{lib_dir}/{match.group(1)}",
                "mode": "ro",
            }
    return mounts, lib_dir


def missing_images(
    client: docker.DockerClient, images: tuple[str, ...] = (CONTROL_PLANE_IMAGE, INSTANCE_IMAGE)
) -> list[str]:
    """Which of ``images`` (default: the two project images) the engine does not have."""
    missing = []
    for image in images:
        try:
            client.images.get(image)
        except docker.errors.ImageNotFound:
            missing.append(image)
    return missing


def build_images(*names: str, repo: Path = REPO, timeout: float = 1200.0) -> str:
    """Run ``scripts/build-images.sh`` for ``names`` (``traefik``, ``redis``, ...; none: all);
    returns its output's tail (raises on failure)."""
    done = subprocess.run(
        ["bash", str(repo / "scripts" / "build-images.sh"), *names],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    tail = (done.stdout + done.stderr)[-2000:]
    if done.returncode != 0:
        raise RuntimeError(f"scripts/build-images.sh failed ({done.returncode}):\n{tail}")
    return tail
