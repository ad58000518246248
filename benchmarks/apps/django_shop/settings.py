import os

from postfork import parse_url

MODE = os.environ.get("SHOP_MODE", "postfork")
url = parse_url(os.environ["SHOP_DATABASE_URL"])

SECRET_KEY = "benchmarks-django-shop"
DEBUG = False
ALLOWED_HOSTS = ["localhost", "127.0.0.1"]
ROOT_URLCONF = "benchmarks.apps.django_shop.urls"
WSGI_APPLICATION = "benchmarks.apps.django_shop.wsgi.application"
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "benchmarks.apps.django_shop",
    *([] if MODE == "stock" else ["postfork.django"]),
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.mysql" if MODE == "stock" else "postfork.django",
        "NAME": url.database,
        "USER": url.user,
        "PASSWORD": url.password,
        "HOST": url.unix_socket or url.host,
        "PORT": "" if url.unix_socket else url.port,
    }
}
if MODE == "warm":
    POSTFORK_WARMUP_PATH = "/customers/1/"
USE_TZ = True
STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
