"""The ``docker`` provisioner: one hardened container and one named volume per org.

``container_spec`` builds what is asked of the engine (pure data); ``container_status`` reads an
org's status from the engine's answer; ``provisioner`` does the I/O.
"""

from provisioners.docker.provisioner import DockerProvisioner

__all__ = ["DockerProvisioner"]
