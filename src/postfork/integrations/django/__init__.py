"""Django on postfork: a database backend built on Django's own MySQL backend (``backend``),
the pool of each database alias (``pools``) and the app that warms them at start-up (``apps``).
Public paths: ``"ENGINE": "postfork.django"`` and ``INSTALLED_APPS += ["postfork.django"]``."""
