"""Backups of org data: the store, the instance calls, the API, export/import and the schedule."""
