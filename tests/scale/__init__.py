"""Behaviour at scale: statement counts and bounded work, never timings."""
