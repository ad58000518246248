"""The app as an ASGI server loads it (uvicorn, gunicorn's ASGI workers, hypercorn);
``TimingMiddleware`` adds Server-Timing (db-connect shows any connect paid on a request)."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.e2e.apps.djangoapp.settings")

from django.core.asgi import get_asgi_application

from postfork.asgi import TimingMiddleware

application = TimingMiddleware(get_asgi_application(), access_log_format="off")
