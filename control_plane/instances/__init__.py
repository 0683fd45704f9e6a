"""Org instances as the control plane sees them: credentials and heartbeats; the user-facing
instance API (status, timeline, actions), instance logs, and per-org leases."""
