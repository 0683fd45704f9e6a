"""Signing keys, JWKS, and the tokens the control plane issues."""
