"""orgplane's control plane: identity, orgs, tokens, provisioning, routing, admin UI."""

__version__ = "0.1.0"
