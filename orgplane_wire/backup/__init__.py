"""The backup archive format (``orgplane-backup/1``) and the instance's backup protocol."""
