"""Outgoing webhooks: platform events (instances failing, orgs created, deleted or suspended,
hostname conflicts, failed backups, security signals) delivered to operators' endpoints.

An event is a row written in the transaction of the change it reports (``events.emit``), so it
is as durable as the change and costs the writer one insert: nothing waits on a receiver. The
worker (``worker.py``, on every replica) fans events out to the endpoints subscribed to their
type, claims due deliveries with a lease, and POSTs them signed in the Standard Webhooks format
(``signing.py``), retrying with exponential backoff; every attempt is recorded. Destinations
that resolve to private, loopback or link-local addresses are refused (``destinations.py``).
"""
