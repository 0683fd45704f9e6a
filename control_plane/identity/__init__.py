"""Signing in and the account: login and logout, passwords, MFA, recovery, known devices. The
user records these flows work on are in ``control_plane.users``."""
