"""The tokens the control plane issues: JWKS, the OAuth token endpoint, exchange, personal
access tokens, staff access. Keys, JWS and the revoked-token list are ``control_plane.signing``'s.
"""
