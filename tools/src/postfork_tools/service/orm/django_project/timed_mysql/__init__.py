"""Django's stock MySQL backend with its connects timed for the bench (nothing else changed)."""
