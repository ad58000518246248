import os

from django.core.wsgi import get_wsgi_application

from ..worker_header import with_worker_header

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.apps.django_shop.settings")
application = with_worker_header(get_wsgi_application())
