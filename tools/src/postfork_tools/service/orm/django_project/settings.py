"""Settings from the environment: ``DATABASE_URL`` and ``POSTFORK_CONNECT`` (orm-django: stock,
a connection per request; orm-django-persistent: stock, ``CONN_MAX_AGE = 60``, health checks;
orm-django-postfork: postfork.django and its app). The same project serves WSGI and ASGI."""

from __future__ import annotations

from postfork import environment, parse_url
from postfork_tools.service.settings import WARMUP_PATH

_url = parse_url(environment.database_url() or "mysql://root@localhost/postfork")
_MODE = environment.text("POSTFORK_CONNECT", "orm-django-postfork")
_ON_POSTFORK = _MODE == "orm-django-postfork"

SECRET_KEY = "postfork-reference-service"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "postfork_tools.service.orm.django_project.urls"
INSTALLED_APPS = [
    "postfork_tools.service.orm.django_project",
    *(["postfork.django"] if _ON_POSTFORK else []),
]
MIDDLEWARE: list[str] = []
POSTFORK_WARMUP_PATH = WARMUP_PATH  # the warm-up request in each worker before its first
USE_TZ = False
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DATABASES = {
    "default": {
        # the stock backend with its connects reported to the timing middleware (timed_mysql)
        "ENGINE": (
            "postfork.django"
            if _ON_POSTFORK
            else "postfork_tools.service.orm.django_project.timed_mysql"
        ),
        "NAME": _url.database,
        "USER": _url.user,
        "PASSWORD": _url.password,
        "HOST": _url.unix_socket or _url.host,
        "PORT": "" if _url.unix_socket else _url.port,
        "CONN_MAX_AGE": 60 if _MODE == "orm-django-persistent" else 0,
        "CONN_HEALTH_CHECKS": _MODE == "orm-django-persistent",
        "OPTIONS": {"pool": {"max_size": 2}} if _ON_POSTFORK else {},
    }
}
