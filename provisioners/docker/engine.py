"""Talking to the Docker engine: blocking SDK calls off the event loop, engine failures as
provisioner errors, and the images the backend runs (pulled when missing, refused when they
carry labels only the platform sets)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

import docker
import requests
from docker.errors import APIError, DockerException, NotFound

from provisioners.docker.container_spec import reserved_image_labels
from provisioners.errors import (
    PermanentProvisionerError,
    ProvisionerError,
    RetryableProvisionerError,
)

T = TypeVar("T")


def explain(exc: APIError) -> str:
    return str(exc.explanation or exc)[:500]


async def off_loop(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking SDK call in a thread; engine failures become provisioner errors.

    ``NotFound`` and 409 conflicts pass through for the caller to read as "done" / "adopt".
    """
    try:
        return await asyncio.to_thread(fn, *args, **kwargs)
    except NotFound:
        raise
    except APIError as exc:
        if exc.status_code == 409:
            raise
        if exc.status_code is not None and 400 <= exc.status_code < 500:
            raise PermanentProvisionerError(f"Docker refused the request: {explain(exc)}") from exc
        raise RetryableProvisionerError(f"Docker engine error: {explain(exc)}") from exc
    except (DockerException, requests.exceptions.RequestException, OSError) as exc:
        raise RetryableProvisionerError(f"Docker engine unreachable: {exc}") from exc


async def pull(client: docker.DockerClient, image: str) -> None:
    """Pull ``image``; a permanent error when the registry does not have it."""
    try:
        await off_loop(client.images.pull, image)
    except (NotFound, ProvisionerError) as exc:
        raise PermanentProvisionerError(
            f"image {image} is not on the engine and could not be pulled"
        ) from exc


async def check_image(client: docker.DockerClient, image: str) -> None:
    """Pull ``image`` if the engine lacks it; refuse it (permanently) if it carries routing or
    ownership labels (:func:`.container_spec.reserved_image_labels`)."""
    try:
        found: Any = await off_loop(client.images.get, image)
    except NotFound:
        await pull(client, image)
        found = await off_loop(client.images.get, image)
    reserved = reserved_image_labels(found.labels)
    if reserved:
        more = ", ..." if len(reserved) > 5 else ""
        raise PermanentProvisionerError(
            f"image {image} carries labels only the platform sets "
            f"({', '.join(reserved[:5])}{more}); it is not run"
        )
