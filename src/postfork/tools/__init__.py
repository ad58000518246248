"""What the ``postfork`` command and the tests use around the library: a private MariaDB,
database selection, the fork-safety check, the demo, the doctor and ``postfork serve``."""
