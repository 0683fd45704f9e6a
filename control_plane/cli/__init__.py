"""The ``orgplane`` command line."""
