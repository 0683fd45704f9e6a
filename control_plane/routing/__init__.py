"""Routing: canonical hostnames and their owners, custom domains, Traefik's configuration, and
hibernation with the wake endpoint that ends it."""
