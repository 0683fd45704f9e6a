"""Provisioners: make each org's dedicated instance exist, run, and go away.

``base`` is the interface every backend implements and the data it speaks (``InstanceSpec``,
``InstanceStatus``, ``ProvisionerOptions``); ``registry`` finds backends by name in the
``orgplane.provisioners`` entry-point group; ``naming`` gives objects their names and labels;
``errors`` is the error tree. Backends: ``local`` (processes), ``docker`` and ``kubernetes``.
``traefik`` builds the routes the docker and kubernetes backends attach to their objects.

This package never imports the control plane; it shares only ``orgplane_wire.contract`` with the
instances it runs.
"""
