# The hooks postfork's gunicorn how-to adds (docs/how-to/gunicorn.md).
from postfork.gunicorn import post_fork, post_request, pre_fork, worker_exit  # noqa: F401

control_socket_disable = True
