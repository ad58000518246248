import os

from postfork import parse_url

url = parse_url(os.environ["DATABASE_URL"])


def _max_age(text: str) -> int | None:
    return None if text == "persistent" else int(text)


ENGINE = os.environ.get("DJANGO_ENGINE", "postfork.django")
ON_POSTFORK = ENGINE == "postfork.django"

SECRET_KEY = "postfork-e2e"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "tests.e2e.apps.djangoapp.urls"
WARM = ON_POSTFORK and os.environ.get("DJANGO_POSTFORK_APP", "true") == "true"  # false: control
INSTALLED_APPS = ["tests.e2e.apps.djangoapp", *(["postfork.django"] if WARM else [])]
MIDDLEWARE: list[str] = []
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DATABASES = {
    "default": {
        "ENGINE": ENGINE,
        "NAME": url.database,
        "USER": url.user,
        "PASSWORD": url.password,
        "HOST": url.unix_socket or url.host,
        "PORT": "" if url.unix_socket else url.port,
        "CONN_MAX_AGE": _max_age(os.environ.get("DJANGO_CONN_MAX_AGE", "0")),
        "CONN_HEALTH_CHECKS": os.environ.get("DJANGO_CONN_HEALTH_CHECKS") == "true",
        "ATOMIC_REQUESTS": os.environ.get("DJANGO_ATOMIC_REQUESTS") == "true",
        "OPTIONS": {"pool": {"max_size": 2}} if ON_POSTFORK else {},
    }
}
# REPLICA_URLS: the primary's replicas, read through postfork's router (TEST MIRROR says which
# database each one copies)
for number, replica_url in enumerate(filter(None, os.environ.get("REPLICA_URLS", "").split(","))):
    replica = parse_url(replica_url)
    DATABASES[f"replica{number + 1}"] = {
        **DATABASES["default"],
        "HOST": replica.unix_socket or replica.host,
        "PORT": "" if replica.unix_socket else replica.port,
        "TEST": {"MIRROR": "default"},
    }
if len(DATABASES) > 1:
    DATABASE_ROUTERS = ["postfork.django.router.ReplicaRouter"]
    POSTFORK_TOPOLOGY = {"check_interval": 0.2, "read_your_writes": 0.5}
POSTFORK_WARMUP_PATH = os.environ.get("DJANGO_WARMUP_PATH") or None
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "loggers": {
        "postfork": {
            "handlers": ["console"],
            "level": os.environ.get("DJANGO_POSTFORK_LOG_LEVEL", "INFO"),
        }
    },
}
