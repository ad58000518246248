# examples/asgi/gunicorn.conf.py: gunicorn with uvicorn's worker (or its own: worker_class = "asgi")
from postfork.gunicorn import post_fork, pre_fork, worker_exit  # noqa: F401

worker_class = "uvicorn_worker.UvicornWorker"
workers = 4
max_requests = 1000
max_requests_jitter = 100
