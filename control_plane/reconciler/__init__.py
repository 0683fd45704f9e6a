"""The reconciler: level-triggered convergence of org instances to the orgs' desired state (the
loop, its steps, its housekeeping jobs)."""
