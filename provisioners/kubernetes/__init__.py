"""The ``kubernetes`` provisioner: per org a Secret, a volume claim, a Deployment, a Service and
a route, optionally in a namespace of its own with a NetworkPolicy and a ResourceQuota.

``objects`` and ``isolation`` build the objects (pure), ``manifests`` orders them,
``deployment_status`` reads an org's status, ``client`` and ``provisioner`` do the I/O.
"""

from provisioners.kubernetes.provisioner import KubernetesProvisioner

__all__ = ["KubernetesProvisioner"]
