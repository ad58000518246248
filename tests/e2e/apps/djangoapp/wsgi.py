"""The app as a server loads it; ``TimingMiddleware`` adds Server-Timing (db-connect shows
any connect paid on a request)."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.e2e.apps.djangoapp.settings")

from django.core.wsgi import get_wsgi_application

from postfork.wsgi import TimingMiddleware

application = TimingMiddleware(get_wsgi_application(), access_log_format="off")

if os.environ.get("DJANGO_QUERY_AT_IMPORT") == "true":  # e.g. a feature flag read at start-up
    from django.db import connection

    with connection.cursor() as cursor:  # the master's connection stays open after this
        cursor.execute("SELECT 1")
