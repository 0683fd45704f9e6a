"""The append-only audit log: reading and exporting it. Recording an event is
``control_plane.audit_trail``'s, at the bottom of the layers, since every layer records."""
