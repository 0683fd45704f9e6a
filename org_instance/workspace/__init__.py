"""The org's workspace API: sessions and messages, settings, runners, files, usage."""
