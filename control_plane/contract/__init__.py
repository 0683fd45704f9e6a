"""The control plane's side of the org-instance contract (``orgplane_wire/contract.py``):
which contract versions it speaks, and the JSON Schemas it publishes under ``docs/contract/``."""
