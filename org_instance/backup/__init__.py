"""Backup and restore of the instance's data (archives in the ``orgplane-backup/1`` format)."""
