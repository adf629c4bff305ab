"""The ``equiprop`` command line."""
