"""Users, passwords, login and logout."""
