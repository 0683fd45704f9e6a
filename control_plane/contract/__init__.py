"""The control plane's side of the org-instance contract (``org_instance/contract.py``):
which contract versions it speaks, and the JSON Schemas it publishes under ``docs/contract/``."""
