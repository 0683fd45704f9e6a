"""Orgs: registry, hierarchy, access, lifecycle, the org timeline (``events``) and which image
an org runs (``images``)."""
