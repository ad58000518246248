"""A small Django app (one model, read and write views) adopting postfork with two settings:
``ENGINE`` and ``INSTALLED_APPS``. ``DJANGO_ENGINE`` picks stock Django's MySQL backend for the
controls and the bench."""
