"""Where an org's instance is reached by its members: ``{scheme}://{slug}.{base_domain}[:port]/``.

The UI's "Open" sends browsers there, ``GET /api/v1/me/orgs`` tells clients (the CLI) where it
is. The port is ``ORGPLANE_ORG_URL_PORT``, else in embedded mode (``ORGPLANE_EMBEDDED_ROUTING``,
where the control plane's own port answers org hosts) the control plane's port, else the
scheme's default.
"""

from __future__ import annotations

from control_plane.settings import Settings


def org_url(settings: Settings, slug: str) -> str:
    """Where an org's instance is reached: ``{scheme}://{slug}.{base_domain}[:port]/``."""
    return org_origin(settings, slug) + "/"


def org_origin(settings: Settings, label: str) -> str:
    """``{scheme}://{label}.{base_domain}[:port]``; ``label="*"`` gives every org's origin."""
    scheme = "https" if settings.routing.tls else "http"
    host = f"{label}.{settings.provisioning.base_domain.strip('.')}"
    port = settings.routing.org_url_port
    if not port and settings.routing.embedded_routing:
        port = settings.server.port  # the control plane's own port routes org hosts
    default = 443 if scheme == "https" else 80
    return f"{scheme}://{host}{f':{port}' if port and port != default else ''}"
