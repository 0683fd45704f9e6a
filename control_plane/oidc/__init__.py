"""The control plane as an OAuth 2.1 / OpenID Connect provider: registered clients, the
authorization endpoint (code + PKCE S256), the authorization-code grant of the token endpoint,
ID tokens, userinfo and OIDC discovery (docs/identity.md, *Signing in to other applications*).

The endpoints are written by hand, signing with PyJWT and the same key ring as every
other token), not on authlib's server classes: those expect a framework adapter (Flask,
Django, Starlette's request model) and their own storage mixins, while here the request
parsing, OAuth error format and single-use spends already exist for the token endpoint
(``control_plane.tokens.oauth``) and the browser session is the UI's.
"""
