"""``postfork serve``: the server's command line and environment (``command``), a process
runner that starts it like ``postfork serve`` does (``runner``: the bench, the soak and the
end-to-end tests use it), and a development server without uWSGI or gunicorn (``devserver``)."""
