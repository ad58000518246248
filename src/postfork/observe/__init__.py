"""What makes the tail visible, whatever the protocol: per-request timing and the access line,
sampled profiling, Prometheus metrics over a server's workers. The WSGI and ASGI middlewares
(``postfork.wsgi``, ``postfork.asgi``) are adapters around it."""
