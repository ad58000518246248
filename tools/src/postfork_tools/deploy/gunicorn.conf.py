"""The postfork reference service under gunicorn.

    gunicorn -c deploy/gunicorn.conf.py             (DATABASE_URL must be set)
    postfork serve --server gunicorn ...            (uses this file; bind, workers and
                                                     max_requests come from its command line)

gunicorn calls the hooks below by their names (see postfork.gunicorn): pre_fork in the arbiter
before each fork (its pools keep no connection: no worker inherits one), post_fork in each new
worker (it connects right after its fork, before loading the app or accepting a request),
post_request after each response (the pool's upkeep, off the request path) and worker_exit
(its connections close cleanly). With preload_app = False the app loads inside each
worker and postfork.install() warms it at load time.
"""

import os

from postfork.gunicorn import (  # noqa: F401  (gunicorn calls these hooks by name)
    post_fork,
    post_request,
    pre_fork,
    worker_exit,
)

wsgi_app = "postfork_tools.service.wsgi:application"
bind = "127.0.0.1:8000"
workers = 4
worker_class = "sync"

# Load the app once in the arbiter: the driver is initialised there, no connection is kept,
# and every worker starts from that state. POSTFORK_PRELOAD=false loads it in each worker.
preload_app = os.environ.get("POSTFORK_PRELOAD", "true").lower() != "false"

# Recycling: each worker is replaced after max_requests plus a random 0..jitter requests, so
# workers that started together do not recycle together.
max_requests = 100
max_requests_jitter = 20

# gunicorn >= 27 opens a control socket at one fixed path (~/.gunicorn/gunicorn.ctl), so two
# servers on one machine fight over it; this service does not use it.
control_socket_disable = True

# The service answers every request within its deadline (POSTFORK_REQUEST_DEADLINE, 2.5 s by
# default: a JSON 503 when the database does not answer; docs/reliability.md). timeout is the
# last resort above it: a worker silent for longer (a request, or its boot with the warm-up:
# at most connect_timeout + the deadline) is killed and replaced.
timeout = 10
graceful_timeout = 10
keepalive = 2
