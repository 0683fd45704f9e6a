"""A Docker bridge network for one test run, and the clean-up of what the run's control plane
made on the engine (tests on the Docker backend: routing, rollouts, the SDK examples)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from provisioners.naming import MANAGED_BY_LABEL


@contextmanager
def run_network(client: Any, run_id: str, *, name: str, labels: dict[str, str]) -> Iterator[Any]:
    """A bridge network named ``name`` until the block ends; then the containers and volumes
    labelled as made by deployment ``run_id`` are removed, and the network."""
    network = client.networks.create(name, driver="bridge", labels=labels)
    network.reload()
    try:
        yield network
    finally:
        managed = {"label": [f"{MANAGED_BY_LABEL}={run_id}"]}
        for container in client.containers.list(all=True, filters=managed):
            container.remove(force=True)
        for volume in client.volumes.list(filters=managed):
            volume.remove(force=True)
        network.remove()


def gateway_of(network: Any) -> str:
    """The address on the host at which the network's containers reach it."""
    return str(network.attrs["IPAM"]["Config"][0]["Gateway"])
