"""Org instances as the control plane sees them: credentials and heartbeats."""
