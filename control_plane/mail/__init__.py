"""Email: messages rendered from templates, a durable outbox and the SMTP sender.

Requests never talk to SMTP. They add an :class:`~control_plane.db.models.OutboxMail` row in
their own transaction (:func:`control_plane.mail.outbox.enqueue`); the sender of every replica
(:class:`control_plane.mail.sender.MailSender`) claims due rows with a lease and delivers them
with retries and backoff. See docs/identity.md.
"""
