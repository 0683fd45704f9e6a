"""Capacity for instance starts: admission control (at most ``max_concurrent_provisioning``
starts at once, the rest queued) and the warm pool (spares started ahead, claimed by new orgs).
The reconciler asks both; org creation claims a spare through the function its callers pass."""
