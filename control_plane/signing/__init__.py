"""Signing keys, JWS signing and verification, and the list of revoked access tokens that
verification consults: the bottom of everything that issues or checks a token."""
