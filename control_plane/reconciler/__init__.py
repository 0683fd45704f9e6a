"""The reconciler: level-triggered convergence of org instances to the orgs' desired state."""
