"""Deployment configurations of the reference service (linked from the repository's deploy/)."""

from pathlib import Path

DIRECTORY = Path(__file__).resolve().parent
UWSGI_INI = DIRECTORY / "uwsgi.ini"
GUNICORN_CONF = DIRECTORY / "gunicorn.conf.py"
