"""Routing: canonical hostnames and their owners, custom domains, and Traefik's configuration."""
