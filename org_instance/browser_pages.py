"""The few HTML pages an org instance shows a browser: who is signed in to which org, and
"signed out". Plain f-strings with every value escaped: a template engine would cost an idle
instance megabytes for two pages (the full web UI of an instance is another piece of work).
"""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape
from typing import Any, Final

from litestar import Response

from org_instance.branding import default_branding
from org_instance.browser_sessions import BrowserSession
from org_instance.runtime import InstanceRuntime

#: Nothing but the page's own inline style; no script at all; forms post to this host only.
POLICY: Final = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src https: http:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS: Final = {
    "Content-Security-Policy": POLICY,
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


def _page(instance: InstanceRuntime, title: str, body: str, status: int = 200) -> Response[Any]:
    brand = instance.branding or default_branding(instance.config.org_slug)
    color = brand["primary_color"] or "#334155"
    text = brand["text_color"] or "#ffffff"
    logo = brand["logo_url"]
    mark = f'<img src="{escape(logo)}" alt="" height="32"> ' if logo else ""
    name = escape(brand["display_name"] or instance.config.org_slug)
    html = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} · {name}</title>
<style>
body{{font-family:system-ui,sans-serif;margin:0;color:#111}}
header{{background:{color};color:{text};padding:1rem 1.5rem;display:flex;align-items:center}}
main{{padding:1.5rem;max-width:40rem}}
button{{font:inherit;padding:.4rem .9rem}}
</style></head>
<body><header><h1 style="margin:0;font-size:1.3rem">{mark}<span id="org-name">{name}</span></h1>
</header><main>{body}</main></body></html>
"""
    return Response(html, status_code=status, media_type="text/html", headers=HEADERS)


def landing_page(instance: InstanceRuntime, session: BrowserSession) -> Response[Any]:
    """What a signed-in browser sees at ``/``."""
    claims = session.claims
    who = escape(session.name or session.email or claims["sub"])
    email = escape(session.email)
    until = datetime.fromtimestamp(session.expires_at, UTC).strftime("%H:%M:%S UTC")
    body = f"""<h2>Signed in</h2>
<p>You are signed in as <strong id="user">{who}</strong>
{f'(<span id="email">{email}</span>)' if email and email != who else ""}
with the role <strong id="role">{escape(str(claims["org_role"]))}</strong>.</p>
<p>This session follows your sign-in at the control plane; it is renewed by itself after
<span id="until">{until}</span>.</p>
<form method="post" action="/auth/logout"><button type="submit">Sign out</button></form>"""
    return _page(instance, "Signed in", body)


def signed_out_page(instance: InstanceRuntime) -> Response[Any]:
    """What the browser sees after signing out of this org's host."""
    body = """<h2>Signed out</h2>
<p>You are signed out of this org on this browser.</p>
<p><a href="/auth/login">Sign in again</a></p>"""
    return _page(instance, "Signed out", body)
